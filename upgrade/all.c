/* qu_upgrade_all(), `qemu-upgrade --all`: every running QEMU whose executable was replaced on
 * disk (a package upgrade) moves to the binary now at its path; all others are left alone.
 * Each upgrade runs in a child process of its own (isolated state, a crash costs one VM's
 * upgrade, not the others'), N at a time. */
#include "qemu-upgrade.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/binary.h"
#include "upgrade/clock.h"
#include "qemu-integration/opts.h"
#include "upgrade/config.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/libvirtgate.h"
#include "upgrade/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_VMS 1024

struct all_options {
	const char *binary;   /* only VMs running this path (NULL: any QEMU) */
	int jobs;             /* 0: from the config file */
	int dry_run;
	int allow_copy;       /* also from the config's allow_copy */
	int low_memory;       /* also from the config's low_memory */
	int json;
	int from_hook;        /* the package hook: obey `enabled`, log to syslog, never fail */
	int libvirt_restart;  /* stop libvirt's daemon once for the batch, start it after */
	unsigned timeout_ms;  /* per VM */
};

struct vm_entry {
	pid_t pid;
	char exe_path[PATH_MAX];
	char name[64];
	const char *skip;        /* why --all leaves it alone, or NULL (often skip_why) */
	char skip_why[512];
	uid_t uid;               /* the VM's user: probes of its new binary run as that user */
	gid_t gid;
	json_object *report;     /* the child's report */
	pid_t child;
	int pipe;
	char *out;
	size_t outlen;
};

/* The guest name from -name NAME or -name guest=NAME,... */
static void vm_name(pid_t pid, char *buf, size_t len)
{
	char path[64], *text = NULL;
	size_t n;
	struct qu_argv argv;
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (qu_read_file(path, &text, &n) < 0)
		return;
	if (qu_argv_from_cmdline(text, n, &argv) == 0) {
		long i = qu_argv_find(&argv, "name", 0);
		struct qu_opts o;
		if (i >= 0 && qu_opts_parse(argv.a[i].val, "guest", &o) == 0) {
			const char *g = qu_opts_get(&o, "guest");
			snprintf(buf, len, "%s", g ? g : "");
			qu_opts_free(&o);
		}
		qu_argv_free(&argv);
	}
	free(text);
}

/* Replaced: the exe link says "(deleted)" and a file is at the path again, or the file at
 * the path is another inode than the one running. */
static const char *replacement_state(pid_t pid, char *exe_path, size_t len)
{
	char link[PATH_MAX];
	struct stat running;
	if (qu_proc_readlink(pid, "exe", link, sizeof(link)) < 0)
		return "cannot read its executable";
	snprintf(exe_path, len, "%s", link);
	char *del = strstr(exe_path, " (deleted)");
	if (del && del[10] == '\0')
		*del = '\0';
	char proc_exe[64];
	snprintf(proc_exe, sizeof(proc_exe), "/proc/%d/exe", (int)pid);
	if (stat(proc_exe, &running) < 0)
		return "cannot read its executable";
	/* The path is walked as root only through root's directories (qu_binary_open): a VM's
	 * owner may run a binary of their own from a directory they can change. One that is not
	 * root's is named by untrusted_binary(). */
	dev_t dev;
	ino_t ino;
	int fd = qu_binary_open(exe_path, (uid_t)-1, NULL, &dev, &ino);
	if (fd == -ENOENT)
		return "its binary was removed and nothing replaced it";
	if (fd < 0)
		return NULL;
	close(fd);
	if (ino == running.st_ino && dev == running.st_dev)
		return "runs the binary on disk";
	return NULL;
}

/* The package hook runs as root after every dpkg run: it considers only binaries root could
 * have installed (root's, in directories only root can write), and, when the configuration
 * lists some, only those. Anything else is named with the reason and never executed: a user
 * can start a program called qemu-system-x86_64 of their own. */
static const char *untrusted_binary(const struct qu_config *c, struct vm_entry *x)
{
	if (c->nbinaries && !qu_config_allows_binary(c, x->exe_path)) {
		snprintf(x->skip_why, sizeof(x->skip_why), "its binary %.200s is not among the binaries listed in %.200s",
			 x->exe_path, c->path);
		return x->skip_why;
	}
	int fd = qu_binary_open(x->exe_path, (uid_t)-1, NULL, NULL, NULL);
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(x->skip_why, sizeof(x->skip_why), "not a binary root installed, never run by --all: %.440s", qu_err_msg());
	return x->skip_why;
}

/* The effective user and group, as the VM's QEMU acts. */
static void vm_user(pid_t pid, struct vm_entry *x)
{
	char path[64], *text = NULL;
	unsigned u = QU_NOBODY, g = QU_NOBODY;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (qu_read_file(path, &text, NULL) == 0) {
		char *a = strstr(text, "\nUid:"), *b = strstr(text, "\nGid:");
		if (!a || sscanf(a + 5, "%*u %u", &u) != 1)
			u = QU_NOBODY;
		if (!b || sscanf(b + 5, "%*u %u", &g) != 1)
			g = QU_NOBODY;
		free(text);
	}
	x->uid = u;
	x->gid = g;
}

static int find_vms(const struct all_options *o, const struct qu_config *c, struct vm_entry *v, int *n)
{
	DIR *d = opendir("/proc");
	if (!d)
		return qu_err(-errno, "cannot read /proc: %s", strerror(errno));
	*n = 0;
	for (struct dirent *e; (e = readdir(d)) && *n < MAX_VMS;) {
		char link[PATH_MAX];
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || qu_proc_readlink(pid, "exe", link, sizeof(link)) < 0)
			continue;
		const char *base = strrchr(link, '/');
		if (!base || strncmp(base + 1, "qemu-system-", 12) || !qu_proc_alive(pid, qu_proc_starttime(pid)))
			continue;
		struct vm_entry *x = &v[(*n)++];
		memset(x, 0, sizeof(*x));
		x->pid = pid;
		x->pipe = -1;
		vm_name(pid, x->name, sizeof(x->name));
		x->skip = replacement_state(pid, x->exe_path, sizeof(x->exe_path));
		if (!x->skip && o->binary && strcmp(o->binary, x->exe_path))
			x->skip = "runs another binary than --binary";
		if (!x->skip && qu_config_excludes(c, x->name, pid))
			x->skip = "excluded in the configuration";
		if (!x->skip)
			x->skip = untrusted_binary(c, x);
		vm_user(pid, x);
	}
	closedir(d);
	return 0;
}

static void run_child(const struct all_options *o, const struct vm_entry *x, int fd)
{
	struct qu_handle *h = qu_new();
	qu_set_log_level(0);
	qu_set_pid(h, x->pid);
	qu_set_new_binary(h, x->exe_path);
	/* A real batch stopped libvirt's daemon itself, once (libvirt_batch_stop): the children
	 * find it stopped. A dry run's children say what they would do. */
	qu_set_flags(h, (o->dry_run ? QU_FLAG_DRY_RUN : 0) | (o->allow_copy ? QU_FLAG_ALLOW_COPY : 0) |
			(o->low_memory ? QU_FLAG_LOW_MEMORY : 0) | QU_FLAG_DROP_PRIVILEGES |
			(o->libvirt_restart && o->dry_run ? QU_FLAG_LIBVIRT_RESTART : 0));
	if (o->timeout_ms)
		qu_set_timeout_ms(h, o->timeout_ms);
	int r = qu_upgrade(h);
	const char *json = qu_get_result(h) ? qu_get_report_json(h) : NULL;
	if (json) {
		qu_write_full(fd, json, strlen(json));
	} else {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "result", json_object_new_string("failed"));
		json_object_object_add(e, "error", json_object_new_string(qu_get_error()));
		json = json_object_to_json_string(e);
		qu_write_full(fd, json, strlen(json));
		json_object_put(e);
	}
	qu_free(h);
	_exit(r < 0 ? 1 : 0);
}

static int start(const struct all_options *o, struct vm_entry *x)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	x->child = fork();
	if (x->child < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (x->child == 0) {
		close(p[0]);
		run_child(o, x, p[1]);
	}
	close(p[1]);
	x->pipe = p[0];
	return 0;
}

/* Reads a finished child's report (it is small: read until EOF). */
static void collect(struct vm_entry *x)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(x->pipe, buf, sizeof(buf))) > 0) {
		char *nb = realloc(x->out, x->outlen + (size_t)n + 1);
		if (!nb)
			break;
		x->out = nb;
		memcpy(x->out + x->outlen, buf, (size_t)n);
		x->outlen += (size_t)n;
		x->out[x->outlen] = '\0';
	}
	qu_close(&x->pipe);
	waitpid(x->child, NULL, 0);
	x->report = x->out ? json_tokener_parse(x->out) : NULL;
	if (!x->report) {
		x->report = json_object_new_object();
		json_object_object_add(x->report, "result", json_object_new_string("failed"));
		json_object_object_add(x->report, "error", json_object_new_string("the upgrade process died without a report"));
	}
	free(x->out);
	x->out = NULL;
}

static void run_all(const struct all_options *o, struct vm_entry *v, int n, int jobs)
{
	int running = 0, next = 0;
	while (next < n || running) {
		while (running < jobs && next < n) {
			struct vm_entry *x = &v[next++];
			if (x->skip)
				continue;
			if (start(o, x) == 0)
				running++;
			else
				x->skip = "could not start its upgrade (fork failed)";
		}
		if (!running)
			break;
		/* The oldest running child first: its pipe reaches EOF when it is done. */
		for (int i = 0; i < next; i++) {
			if (v[i].pipe >= 0) {
				collect(&v[i]);
				running--;
				break;
			}
		}
	}
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static double jnum(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_double(v) : 0;
}

/* The table's last column: the new PID, or why not. A refused VM shows its first blocker and
 * how many more there are ("(+2 more)", kept when the line is cut): `--pid PID --dry-run`
 * lists them all, and syslog and --json get them all. */
static void table_reason(json_object *r, int ok, const char *why, char *out, size_t len)
{
	json_object *list;
	size_t n = json_object_object_get_ex(r, "refusals", &list) && json_object_is_type(list, json_type_array)
			   ? json_object_array_length(list) : 0;
	if (ok || n < 2) {
		snprintf(out, len, "%s", ok ? jstr(r, "new_pid") : why);
		return;
	}
	char more[32];
	int w = snprintf(more, sizeof(more), " (+%zu more)", n - 1 + (size_t)jnum(r, "refusals_not_listed"));
	snprintf(out, len, "%.*s%s", (int)(len - 1) - w, json_object_get_string(json_object_array_get_idx(list, 0)), more);
}

/* Prints a summary table (or one JSON object) to out. Returns 0 when every replaced VM was
 * upgraded (or planned), 1 when any failed or was refused, -1 (message set) when it could not
 * begin. */
/* --libvirt-restart: libvirt's daemon holds the monitors of its VMs; when one of the batch
 * is libvirt's, the daemon is stopped once here, before any upgrade, and started again after
 * the last (docs/libvirt.md). What happened goes into the batch's report. */
static void libvirt_batch_stop(const struct all_options *o, struct vm_entry *v, int n, struct qu_libvirtd *d,
			       json_object *rep)
{
	struct qu_libvirt lv;
	int mine = 0;
	for (int i = 0; i < n; i++)
		mine += !v[i].skip && qu_libvirt_detect_pid(v[i].pid, &lv) > 0;
	if (!mine || o->dry_run)
		return;
	/* Held for the batch; its children inherit it. */
	int r = qu_libvirt_lock(qu_now_us() + 600ull * 1000000u);
	if (r == 0)
		r = qu_libvirtd_find(d);
	if (r > 0)
		r = qu_libvirtd_stop(d, qu_now_us() + 60ull * 1000000u);
	if (r > 0 || (r == 0 && d->stopped)) {
		json_object_object_add(rep, "daemon", json_object_new_string(d->name));
		json_object_object_add(rep, "daemon_pid", json_object_new_int(d->pid));
		json_object_object_add(rep, "stopped", json_object_new_boolean(1));
	}
	json_object_object_add(rep, "domains", json_object_new_int(mine));
	if (r < 0)
		json_object_object_add(rep, "error", json_object_new_string(qu_err_msg()));
}

static void libvirt_batch_start(struct qu_libvirtd *d, json_object *rep)
{
	if (!d->stopped) {
		qu_libvirt_unlock();
		return;
	}
	int r = qu_libvirtd_start(d, qu_now_us() + 60ull * 1000000u);
	json_object_object_add(rep, "restarted", json_object_new_boolean(r == 0));
	struct qu_libvirtd now;
	if (r == 0 && qu_libvirtd_find(&now) > 0)
		json_object_object_add(rep, "daemon_new_pid", json_object_new_int(now.pid));
	if (r < 0)
		json_object_object_add(rep, "error", json_object_new_string(qu_err_msg()));
	qu_libvirt_unlock();
}

static int all(const struct all_options *o, FILE *out)
{
	/* Large (paths, tables): on the heap, not the stack. */
	struct qu_config *confp = calloc(1, sizeof(*confp));
	struct qu_binary *bin = calloc(1, sizeof(*bin));
	struct vm_entry *v = calloc(MAX_VMS, sizeof(*v));
	int n = 0, failed = 0, done = 0, left = 0, rc = -1;
	if (!v || !confp || !bin) {
		qu_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (qu_config_load(confp) < 0 || find_vms(o, confp, v, &n) < 0)
		goto out;
	const struct qu_config *conf = confp;
	if (o->from_hook) {
		openlog("qemu-upgrade", LOG_PID, LOG_DAEMON);
		if (!conf->enabled) {
			syslog(LOG_INFO, "package hook disabled in %s", conf->path);
			rc = 0;
			goto out;
		}
	}
	struct all_options opts = *o;
	opts.allow_copy |= conf->allow_copy;
	opts.low_memory |= conf->low_memory;
	o = &opts;
	/* Probe each new binary once, here: the forked upgrades inherit the answers. */
	for (int i = 0; i < n; i++) {
		if (!v[i].skip && qu_binary_probe(v[i].exe_path, (uid_t)-1, v[i].uid, v[i].gid, qu_now_us() + 30000000u,
						  bin) == 0)
			qu_binary_has_machine(bin, "", qu_now_us() + 30000000u);
	}
	/* Copies book their memory in a host-wide ledger and wait for each other when it is
	 * short (upgrade/memory.c): upgrades run side by side whatever their strategy. */
	int jobs = o->jobs > 0 ? o->jobs : conf->jobs;
	struct qu_libvirtd *lvd = calloc(1, sizeof(*lvd)); /* 12 KiB: its command line */
	json_object *lvrep = json_object_new_object();
	if (o->libvirt_restart && lvd)
		libvirt_batch_stop(o, v, n, lvd, lvrep);
	run_all(o, v, n, jobs);
	if (lvd)
		libvirt_batch_start(lvd, lvrep);
	free(lvd);
	json_object *all = json_object_new_object(), *list = json_object_new_array(), *alone = json_object_new_array();
	if (!o->json)
		fprintf(out, "%-8s %-16s %-9s %-9s %-9s %9s %9s  %s\n", "PID", "NAME", "FROM", "TO", "RESULT",
			"PAUSE", "TOTAL", "NEW PID / REASON");
	for (int i = 0; i < n; i++) {
		struct vm_entry *x = &v[i];
		if (x->skip) {
			json_object *s = json_object_new_object();
			json_object_object_add(s, "pid", json_object_new_int(x->pid));
			json_object_object_add(s, "name", json_object_new_string(x->name));
			json_object_object_add(s, "left_alone", json_object_new_string(x->skip));
			json_object_array_add(alone, s);
			left++;
			if (!strcmp(x->skip, "its binary was removed and nothing replaced it"))
				failed++;
			continue;
		}
		json_object *r = x->report;
		const char *result = jstr(r, "result");
		int ok = !strcmp(result, "upgraded") || !strcmp(result, "planned");
		failed += !ok;
		done += ok;
		const char *why = jstr(r, "refusal")[0] ? jstr(r, "refusal") : jstr(r, "error");
		char newpid[160];
		table_reason(r, ok, why, newpid, sizeof(newpid));
		if (!o->json)
			fprintf(out, "%-8d %-16.16s %-9s %-9s %-9s %7.1fms %7.0fms  %s\n", (int)x->pid,
				x->name[0] ? x->name : "-", jstr(r, "old_version"), jstr(r, "new_version"), result,
				jnum(r, "pause_ms"), jnum(r, "total_ms"), newpid);
		if (o->from_hook)
			syslog(ok ? LOG_INFO : LOG_ERR, "VM PID %d (%s): %s%s%s", (int)x->pid, x->name, result,
			       ok ? "" : ": ", ok ? "" : why);
		json_object_object_add(r, "name", json_object_new_string(x->name));
		json_object_array_add(list, json_object_get(r));
	}
	if (!o->json)
		fprintf(out, "%d upgraded%s, %d failed or refused, %d left alone (not replaced on disk, or excluded)\n",
			done, o->dry_run ? " (planned)" : "", failed, left);
	json_object_object_add(all, "result", json_object_new_string(failed ? "failed" : done ? (o->dry_run ? "planned" : "upgraded") : "nothing"));
	json_object_object_add(all, "vms", list);
	json_object_object_add(all, "left_alone", alone);
	if (json_object_object_length(lvrep)) {
		if (!o->json)
			fprintf(out, "libvirt: %s\n", json_object_to_json_string_ext(lvrep, JSON_C_TO_STRING_PLAIN));
		json_object_object_add(all, "libvirt", json_object_get(lvrep));
	}
	json_object_put(lvrep);
	if (o->json)
		fprintf(out, "%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN));
	json_object_put(all);
	for (int i = 0; i < n; i++)
		json_object_put(v[i].report);
	rc = failed ? 1 : 0;
out:
	if (o->from_hook)
		closelog();
	free(v);
	free(confp);
	free(bin);
	return rc;
}

int qu_upgrade_all(const char *binary, unsigned jobs, unsigned timeout_ms, unsigned flags, FILE *out)
{
	const unsigned known = QU_FLAG_DRY_RUN | QU_FLAG_ALLOW_COPY | QU_FLAG_LOW_MEMORY | QU_OUT_JSON | QU_ALL_FROM_HOOK |
			       QU_FLAG_LIBVIRT_RESTART;
	int err = 0;
	if (flags & ~known)
		err = qu_err(-EINVAL, "unknown flags 0x%x", flags & ~known);
	else if (jobs > 64)
		err = qu_err(-EINVAL, "jobs %u: give 1 to 64, or 0 for the configuration's", jobs);
	else if (!out)
		err = qu_err(-EINVAL, "no stream to print to");
	if (err)
		return -1;
	struct all_options o = {
		.binary = binary, .jobs = (int)jobs, .timeout_ms = timeout_ms,
		.dry_run = !!(flags & QU_FLAG_DRY_RUN), .allow_copy = !!(flags & QU_FLAG_ALLOW_COPY),
		.low_memory = !!(flags & QU_FLAG_LOW_MEMORY), .json = !!(flags & QU_OUT_JSON),
		.from_hook = !!(flags & QU_ALL_FROM_HOOK), .libvirt_restart = !!(flags & QU_FLAG_LIBVIRT_RESTART),
	};
	return all(&o, out);
}
