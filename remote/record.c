#include "remote/record.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/statedir.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The text: "qemu=", "qemu_start=", "resumed=", "ctl=", the VM's user ("uid=", "gid=",
 * "groups="), then a line a file, "created=" the VM user's or "own=" the agent's. */
static void record_path(pid_t session, char *buf, size_t len)
{
	snprintf(buf, len, "%s/agent-%d.session", qu_state_dir(), (int)session);
}

void qu_session_record_write(const struct qu_session_record *r)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	record_path(getpid(), path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	mkdir(qu_state_dir(), 0700); /* the images may come before anything else made it */
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "qemu=%d\nqemu_start=%llu\nresumed=%d\nctl=%s\n", (int)r->qemu, r->qemu > 0 ? r->qemu_start : 0ULL,
		r->resumed, r->ctl);
	fprintf(f, "uid=%u\ngid=%u\ngroups=", (unsigned)r->who.uid, (unsigned)r->who.gid);
	for (int i = 0; i < r->who.ngroups; i++)
		fprintf(f, "%s%u", i ? "," : "", (unsigned)r->who.groups[i]);
	fprintf(f, "\n");
	for (size_t i = 0; i < r->nfiles; i++)
		fprintf(f, "%s=%s\n", r->files[i].own ? "own" : "created", r->files[i].path);
	if (fclose(f) == 0)
		rename(tmp, path);
}

void qu_session_record_add_file(struct qu_session_record *r, const char *path, int own)
{
	if (r->nfiles < QU_SESSION_MAX_FILES) {
		r->files[r->nfiles].own = own;
		snprintf(r->files[r->nfiles++].path, sizeof(r->files[0].path), "%s", path);
	}
	qu_session_record_write(r);
}

/* The VM's user a record names (nobody for what it leaves out). */
static void parse_ident(const char *text, struct qu_ident *who)
{
	char groups[1024];
	memset(who, 0, sizeof(*who));
	who->uid = (uid_t)qu_kv_num(text, "uid", 65534);
	who->gid = (gid_t)qu_kv_num(text, "gid", 65534);
	if (qu_kv_get(text, "groups", groups, sizeof(groups)) == 0)
		for (char *s = NULL, *g = strtok_r(groups, ",", &s); g && who->ngroups < QU_CTX_MAX_GROUPS;
		     g = strtok_r(NULL, ",", &s))
			who->groups[who->ngroups++] = (gid_t)strtoul(g, NULL, 10);
}

int qu_session_record_read(pid_t session, struct qu_session_record **out)
{
	char path[PATH_MAX], *text = NULL;
	record_path(session, path, sizeof(path));
	int e = qu_read_file(path, &text, NULL);
	if (e < 0)
		return e;
	struct qu_session_record *r = calloc(1, sizeof(*r));
	if (!r) {
		free(text);
		return -ENOMEM;
	}
	r->qemu = (pid_t)qu_kv_num(text, "qemu", 0);
	r->qemu_start = (unsigned long long)qu_kv_num(text, "qemu_start", 0);
	r->resumed = (int)qu_kv_num(text, "resumed", 0);
	qu_kv_get(text, "ctl", r->ctl, sizeof(r->ctl));
	parse_ident(text, &r->who);
	for (char *s = NULL, *line = strtok_r(text, "\n", &s); line && r->nfiles < QU_SESSION_MAX_FILES;
	     line = strtok_r(NULL, "\n", &s)) {
		int own = !strncmp(line, "own=", 4);
		if (own || !strncmp(line, "created=", 8)) {
			r->files[r->nfiles].own = own;
			snprintf(r->files[r->nfiles++].path, sizeof(r->files[0].path), "%s", strchr(line, '=') + 1);
		}
	}
	free(text);
	*out = r;
	return 0;
}

void qu_session_record_remove_files(const struct qu_session_record *r, const struct qu_ident *who)
{
	for (size_t i = 0; i < r->nfiles; i++)
		if (r->files[i].own)
			remove(r->files[i].path);
		else
			qu_remove_as(who, r->files[i].path);
}

void qu_session_record_remove(void)
{
	char path[PATH_MAX];
	record_path(getpid(), path, sizeof(path));
	unlink(path);
}

int qu_session_record_cleanup(pid_t session, char *what, size_t len)
{
	struct qu_session_record *r = NULL;
	char path[PATH_MAX];
	if (qu_session_record_read(session, &r) < 0)
		return 0;
	int killed = 0;
	if (!r->resumed && r->qemu > 0 && qu_proc_alive(r->qemu, r->qemu_start)) {
		int pfd = qu_pidfd_open(r->qemu);
		if (pfd >= 0 && qu_proc_alive(r->qemu, r->qemu_start) && qu_pidfd_kill(pfd, SIGKILL) == 0)
			killed = qu_pidfd_wait_exit(pfd, qu_now_us() + 10000000u) == 0;
		qu_close(&pfd);
	}
	if (!r->resumed) {
		/* The monitor socket, the files, then the directories they were in: the VM's as
		 * its user, ours as root. */
		if (r->ctl[0])
			remove(r->ctl);
		qu_session_record_remove_files(r, &r->who);
	}
	snprintf(what, len, "session %d ended without cleaning up: %s", (int)session,
		 r->resumed ? "its QEMU runs the guest, left as it is"
		 : killed   ? "its new QEMU stopped, its files removed"
			    : "its files removed");
	free(r);
	record_path(session, path, sizeof(path));
	unlink(path);
	return 1;
}

void qu_session_record_sweep(void)
{
	DIR *d = opendir(qu_state_dir());
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		int pid;
		char tail[16], what[256];
		if (sscanf(e->d_name, "agent-%d.%15s", &pid, tail) == 2 && !strcmp(tail, "session") &&
		    (kill(pid, 0) < 0 && errno == ESRCH) && qu_session_record_cleanup(pid, what, sizeof(what)) > 0)
			qu_info("agent: %s", what);
	}
	closedir(d);
}
