#include "upgrade/threadcg.h"
#include "upgrade/context.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* QEMU has a few threads per vCPU and I/O thread; more than this is not a QEMU we know. */
#define MAX_THREADS 8192

int qu_threadcg_parse_line(const char *line, struct qu_cgref *ref)
{
	const char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c2 || c1 == line || (size_t)(c2 - c1 - 1) >= sizeof(ref->controllers) ||
	    strlen(c2 + 1) >= sizeof(ref->path) || c2[1] != '/')
		return -EINVAL;
	memcpy(ref->controllers, c1 + 1, (size_t)(c2 - c1 - 1));
	ref->controllers[c2 - c1 - 1] = '\0';
	snprintf(ref->path, sizeof(ref->path), "%s", c2 + 1);
	return 0;
}

/* The line of text (a /proc/PID/cgroup file) for the hierarchy named by controllers. */
static int find_ref(const char *text, const char *controllers, struct qu_cgref *ref)
{
	for (const char *line = text; *line; line += strcspn(line, "\n") + !!line[strcspn(line, "\n")]) {
		char one[sizeof(ref->controllers) + PATH_MAX + 32];
		size_t n = strcspn(line, "\n");
		if (n >= sizeof(one))
			continue;
		memcpy(one, line, n);
		one[n] = '\0';
		if (qu_threadcg_parse_line(one, ref) == 0 && !strcmp(ref->controllers, controllers))
			return 0;
	}
	return -ENOENT;
}

int qu_threadcg_diff(const char *proc_text, const char *thread_text, struct qu_cgref *out, int max)
{
	int n = 0;
	for (const char *line = thread_text; *line && n < max;
	     line += strcspn(line, "\n") + !!line[strcspn(line, "\n")]) {
		char one[sizeof(out->controllers) + PATH_MAX + 32];
		struct qu_cgref proc;
		size_t len = strcspn(line, "\n");
		if (len >= sizeof(one))
			continue;
		memcpy(one, line, len);
		one[len] = '\0';
		if (qu_threadcg_parse_line(one, &out[n]) < 0 || find_ref(proc_text, out[n].controllers, &proc) < 0)
			continue;
		if (strcmp(proc.path, out[n].path))
			n++;
	}
	return n;
}

int qu_threadcg_target(const char *mnt, const struct qu_cgref *ref, char *out, size_t len)
{
	const char *p = ref->path;
	if (p[0] != '/')
		return -EINVAL;
	/* The kernel wrote the path, but the VM's user may name cgroups in a subtree delegated
	 * to it: the file written must stay inside the hierarchy's mount. */
	for (const char *s = p; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return -EINVAL;
	for (const char *c = p; *c;) {
		c += strspn(c, "/");
		size_t n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return -EINVAL;
		c += n;
	}
	int w = snprintf(out, len, "%s%s/%s", mnt, strcmp(p, "/") ? p : "",
			 ref->controllers[0] ? "tasks" : "cgroup.threads");
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

void qu_threadcg_match(const struct qu_thread *old, int nold, const struct qu_thread *neu, int nnew, int *pair)
{
	for (int i = 0; i < nnew; i++) {
		pair[i] = -1;
		if (i == 0) {
			pair[i] = nold > 0 ? 0 : -1;
			continue;
		}
		if (!strcmp(neu[i].name, neu[0].name))
			continue;
		int k = 0; /* how many new threads of this name come before it */
		for (int j = 1; j < i; j++)
			k += !strcmp(neu[j].name, neu[i].name);
		for (int j = 1; j < nold && pair[i] < 0; j++)
			if (!strcmp(old[j].name, neu[i].name) && strcmp(old[j].name, old[0].name) && k-- == 0)
				pair[i] = j;
	}
}

static int by_tid(const void *a, const void *b)
{
	pid_t x = ((const struct qu_thread *)a)->tid, y = ((const struct qu_thread *)b)->tid;
	return (x > y) - (x < y);
}

int qu_threadcg_list(pid_t pid, struct qu_thread **out)
{
	char path[64];
	int n = 0, cap = 0;
	struct qu_thread *t = NULL;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d)) && n < MAX_THREADS;) {
		char p[64], *comm = NULL;
		long tid = strtol(e->d_name, NULL, 10);
		if (tid <= 0)
			continue;
		if (n == cap) {
			struct qu_thread *more = realloc(t, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(*t));
			if (!more) {
				closedir(d);
				free(t);
				return -ENOMEM;
			}
			t = more;
		}
		snprintf(p, sizeof(p), "/proc/%d/task/%ld/comm", (int)pid, tid);
		if (qu_read_file(p, &comm, NULL) < 0)
			continue; /* it exited meanwhile */
		comm[strcspn(comm, "\n")] = '\0';
		t[n].tid = (pid_t)tid;
		snprintf(t[n].name, sizeof(t[n].name), "%s", comm);
		free(comm);
		n++;
	}
	closedir(d);
	qsort(t, (size_t)n, sizeof(*t), by_tid);
	/* The main thread first, even when TIDs wrapped around after the PID. */
	for (int i = 0; i < n; i++)
		if (t[i].tid == pid) {
			struct qu_thread main = t[i];
			memmove(t + 1, t, (size_t)i * sizeof(*t));
			t[0] = main;
			break;
		}
	if (n == 0 || t[0].tid != pid) {
		free(t);
		return -ESRCH;
	}
	*out = t;
	return n;
}

/* A thread name fit for a log line: it is the VM's. */
static void printable(const char *in, char *out, size_t len)
{
	size_t i = 0;
	for (; in[i] && i + 1 < len; i++)
		out[i] = (unsigned char)in[i] < 0x20 || (unsigned char)in[i] >= 0x7f ? '?' : in[i];
	out[i] = '\0';
}

/* Leaves out of refs the cgroups the new thread is in already (its /proc/.../cgroup text):
 * a join moves a thread even into its own cgroup, under the kernel's threadgroup lock.
 * Returns how many are left. */
static int drop_joined(const char *new_text, struct qu_cgref *refs, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		struct qu_cgref now;
		if (find_ref(new_text, refs[i].controllers, &now) == 0 && !strcmp(now.path, refs[i].path))
			continue;
		refs[k++] = refs[i];
	}
	return k;
}

/* new thread tid joins each of refs. Returns how many joins failed (each warned about). */
static int join(pid_t tid, const char *name, const struct qu_cgref *refs, int nrefs)
{
	char shown[sizeof(((struct qu_thread *)0)->name)], num[24];
	int failed = 0;
	printable(name, shown, sizeof(shown));
	snprintf(num, sizeof(num), "%d", (int)tid);
	for (int i = 0; i < nrefs; i++) {
		char mnt[PATH_MAX], file[PATH_MAX + 32];
		int r = qu_cgroup_mount(refs[i].controllers, mnt, sizeof(mnt));
		if (r == 0)
			r = qu_threadcg_target(mnt, &refs[i], file, sizeof(file));
		if (r == 0) {
			int fd = open(file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
			r = fd < 0 ? -errno : qu_write_full(fd, num, strlen(num));
			if (fd >= 0)
				close(fd);
		}
		if (r < 0) {
			char where[64];
			printable(refs[i].path, where, sizeof(where)); /* bounded in the log, too */
			qu_info("warning: thread '%s' (TID %d) of the new QEMU cannot join the cgroup %s%s "
				"(hierarchy '%s') of the old one's: %s", shown, (int)tid, where,
				strlen(refs[i].path) >= sizeof(where) ? "..." : "", refs[i].controllers[0] ? refs[i].controllers : "v2",
				strerror(-r));
			failed++;
		}
	}
	return failed;
}

int qu_thread_cgroups_copy(pid_t from, pid_t to, int *failed)
{
	struct qu_thread *old = NULL, *neu = NULL;
	struct qu_cgref *refs = NULL; /* QU_THREADCG_MAX_REFS of them: too big for the stack */
	char path[64], *proc_text = NULL;
	int nold, nnew, moved = 0, unnamed = 0, *pair = NULL;
	*failed = 0;
	if ((nold = qu_threadcg_list(from, &old)) < 0)
		return nold;
	if ((nnew = qu_threadcg_list(to, &neu)) < 0) {
		free(old);
		return nnew;
	}
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)from);
	int r = qu_read_file(path, &proc_text, NULL);
	if (r < 0 || !(pair = calloc((size_t)nnew, sizeof(*pair))) ||
	    !(refs = calloc(QU_THREADCG_MAX_REFS, sizeof(*refs)))) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	qu_threadcg_match(old, nold, neu, nnew, pair);
	for (int i = 1; i < nnew; i++) {
		char *text = NULL;
		if (pair[i] < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/cgroup", (int)from, (int)old[pair[i]].tid);
		if (qu_read_file(path, &text, NULL) < 0)
			continue; /* the old thread exited: nothing to follow */
		int nrefs = qu_threadcg_diff(proc_text, text, refs, QU_THREADCG_MAX_REFS);
		free(text);
		if (nrefs == 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/cgroup", (int)to, (int)neu[i].tid);
		if (qu_read_file(path, &text, NULL) == 0) {
			nrefs = drop_joined(text, refs, nrefs);
			free(text);
		}
		if (nrefs == 0) {
			moved++; /* where it belongs already */
			continue;
		}
		int bad = join(neu[i].tid, neu[i].name, refs, nrefs);
		*failed += bad != 0;
		moved += bad == 0;
	}
	/* Threads QEMU did not name: if such an old one had cgroups of its own, say why it was
	 * not carried. */
	for (int j = 1; j < nold; j++) {
		char *text = NULL;
		if (strcmp(old[j].name, old[0].name))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/cgroup", (int)from, (int)old[j].tid);
		if (qu_read_file(path, &text, NULL) == 0)
			unnamed += qu_threadcg_diff(proc_text, text, refs, 1) > 0;
		free(text);
	}
	if (unnamed)
		qu_info("warning: %d threads of the old QEMU were in cgroups of their own but have no name of "
			"their own (-name ...,debug-threads=on names them): their new ones stay in the VM's cgroups",
			unnamed);
	r = moved;
out:
	free(refs);
	free(pair);
	free(proc_text);
	free(old);
	free(neu);
	return r;
}
