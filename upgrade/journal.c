#include "upgrade/journal.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/run.h"
#include "upgrade/clock.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static const char *const phase_names[] = {
	[QU_PH_PLANNED] = "planned",
	[QU_PH_TARGET_STARTING] = "target-starting",
	[QU_PH_TARGET_STARTED] = "target-started",
	[QU_PH_MIGRATING] = "migrating",
	[QU_PH_POSTCOPY] = "postcopy",
	[QU_PH_SOURCE_COMPLETED] = "source-completed",
	[QU_PH_RESUMING] = "resuming",
	[QU_PH_COMMITTED] = "committed",
	[QU_PH_RETIRED] = "retired",
	[QU_PH_ROLLED_BACK] = "rolled-back",
};

const char *qu_phase_name(enum qu_phase p)
{
	return p >= QU_PH_PLANNED && p <= QU_PH_ROLLED_BACK ? phase_names[p] : "?";
}

static enum qu_phase phase_from_name(const char *s)
{
	for (int p = QU_PH_PLANNED; p <= QU_PH_ROLLED_BACK; p++)
		if (!strcmp(s, phase_names[p]))
			return (enum qu_phase)p;
	return 0;
}

static int ensure_dir(void)
{
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "cannot create the state directory %s: %s", qu_state_dir(), strerror(errno));
	return 0;
}

int qu_lock_vm(pid_t pid)
{
	char path[PATH_MAX];
	int r = ensure_dir();
	if (r < 0)
		return r;
	qu_state_path(pid, "lock", path, sizeof(path));
	/* The holder unlinks the lock file when done (its guardian too, later): a lock taken on
	 * a file that is no longer at the path locks nothing, so check and try again. */
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return qu_err(-errno, "cannot open the lock %s: %s", path, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			close(fd);
			if (e == EWOULDBLOCK)
				return qu_err(-EBUSY, "another upgrade of PID %d is running (lock %s held); wait for it, "
					      "or run qemu-upgrade --recover if it died", (int)pid, path);
			return qu_err(-e, "cannot lock %s: %s", path, strerror(e));
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
}

pid_t qu_flock_holder(const char *path)
{
	struct stat st;
	char line[256];
	pid_t holder = 0;
	if (stat(path, &st) < 0)
		return 0;
	FILE *f = fopen("/proc/locks", "re");
	if (!f)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's line has "->" after the
	 * number and is not a holder. The device is MAJOR:MINOR in hex. */
	while (!holder && fgets(line, sizeof(line), f)) {
		char type[16], mode[16], how[16];
		int pid;
		unsigned maj, min;
		unsigned long long ino;
		if (sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%llu", type, mode, how, &pid, &maj, &min, &ino) == 7 &&
		    !strcmp(type, "FLOCK") && maj == major(st.st_dev) && min == minor(st.st_dev) &&
		    ino == (unsigned long long)st.st_ino && pid > 0)
			holder = (pid_t)pid;
	}
	fclose(f);
	return holder;
}

int qu_lock_vm_wait(pid_t pid, unsigned wait_ms, pid_t *holder)
{
	uint64_t deadline = qu_now_us() + (uint64_t)wait_ms * 1000u;
	char path[PATH_MAX];
	int said = 0;
	*holder = 0;
	for (;;) {
		int fd = qu_lock_vm(pid);
		if (fd != -EBUSY || qu_now_us() >= deadline) {
			if (fd != -EBUSY)
				return fd;
			break;
		}
		if (!said++)
			qu_info("waiting up to %u ms for the upgrade of PID %d that holds its lock", wait_ms, (int)pid);
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	qu_state_path(pid, "lock", path, sizeof(path));
	*holder = qu_flock_holder(path);
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/%d", (int)*holder);
	if (*holder > 0 && access(proc, F_OK) < 0)
		/* /proc/locks names the process that took the lock; its guardian (a child holding
		 * the same lock) outlives it while it settles the upgrade. */
		return qu_err(-EBUSY, "the upgrade of PID %d is still being settled (its lock %s, taken by process %d, "
			      "now gone, is held by its guardian): left as it is; run qemu-upgrade --recover again when "
			      "the lock is free", (int)pid, path, (int)*holder);
	if (*holder > 0)
		return qu_err(-EBUSY, "an upgrade of PID %d is still running in process %d (it holds the lock %s): left as "
			      "it is; let it finish, or if that process hangs, stop it (kill %d) and run qemu-upgrade "
			      "--recover again", (int)pid, (int)*holder, path, (int)*holder);
	return qu_err(-EBUSY, "an upgrade of PID %d is still running (its lock %s is held by a process /proc/locks "
		      "does not name here): left as it is; let it finish, then run qemu-upgrade --recover again",
		      (int)pid, path);
}

static json_object *to_json(const struct qu_journal *j)
{
	json_object *o = json_object_new_object(), *l = json_object_new_array();
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "phase", json_object_new_string(qu_phase_name(j->phase)));
	json_object_object_add(o, "tool_pid", json_object_new_int(j->tool_pid));
	json_object_object_add(o, "old_pid", json_object_new_int(j->old_pid));
	json_object_object_add(o, "old_start", json_object_new_uint64(j->old_start));
	json_object_object_add(o, "new_pid", json_object_new_int(j->new_pid));
	json_object_object_add(o, "new_start", json_object_new_uint64(j->new_start));
	json_object_object_add(o, "was_running", json_object_new_boolean(j->was_running));
	json_object_object_add(o, "kill_old", json_object_new_boolean(j->kill_old));
	json_object_object_add(o, "qmp_root", json_object_new_boolean(j->qmp_root));
	json_object_object_add(o, "postcopy", json_object_new_boolean(j->postcopy));
	json_object_object_add(o, "postcopy_asked", json_object_new_boolean(j->postcopy_asked));
	json_object_object_add(o, "remote", json_object_new_string(j->remote));
	json_object_object_add(o, "mirrors", json_object_new_boolean(j->mirrors));
	json_object_object_add(o, "tls", json_object_new_boolean(j->tls));
	json_object_object_add(o, "qmp", json_object_new_string(j->qmp));
	json_object_object_add(o, "vm_uid", json_object_new_int64(j->vm_user.uid));
	json_object_object_add(o, "vm_gid", json_object_new_int64(j->vm_user.gid));
	json_object *g = json_object_new_array();
	for (int i = 0; i < j->vm_user.ngroups; i++)
		json_object_array_add(g, json_object_new_int64(j->vm_user.groups[i]));
	json_object_object_add(o, "vm_groups", g);
	json_object_object_add(o, "ctl", json_object_new_string(j->ctl));
	json_object_object_add(o, "pidfile", json_object_new_string(j->pidfile));
	for (size_t i = 0; i < j->nlisteners; i++)
		json_object_array_add(l, json_object_new_string(j->listeners[i]));
	json_object_object_add(o, "listeners", l);
	json_object *rb = json_object_new_array();
	for (size_t i = 0; i < j->nrebound; i++)
		json_object_array_add(rb, json_object_new_string(j->rebound[i]));
	json_object_object_add(o, "rebound", rb);
	json_object_object_add(o, "cpr_exec", json_object_new_boolean(j->cpr_exec));
	json_object_object_add(o, "cpr_fdset", json_object_new_int(j->cpr_fdset));
	json_object_object_add(o, "caps_saved", json_object_new_boolean(j->caps_saved));
	json_object *tq = json_object_new_array();
	for (size_t i = 0; i < j->ntapq; i++) {
		json_object *q = json_object_new_object();
		json_object_object_add(q, "old_fd", json_object_new_int(j->tapq_old[i]));
		json_object_object_add(q, "new_fd", json_object_new_int(j->tapq_new[i]));
		json_object_object_add(q, "tap", json_object_new_string(j->tapq_name[i]));
		json_object_array_add(tq, q);
	}
	json_object_object_add(o, "tap_queues_attached", tq);
	json_object_object_add(o, "tap_steered", json_object_new_boolean(j->tap_steered));
	json_object_object_add(o, "old_ignore_shared", json_object_new_boolean(j->old_settings.ignore_shared));
	json_object_object_add(o, "old_events", json_object_new_boolean(j->old_settings.events));
	json_object_object_add(o, "old_postcopy", json_object_new_boolean(j->old_settings.postcopy));
	json_object_object_add(o, "old_release_ram", json_object_new_boolean(j->old_settings.release_ram));
	json_object_object_add(o, "old_bandwidth", json_object_new_int64(j->old_settings.max_bandwidth));
	json_object_object_add(o, "old_downtime_limit", json_object_new_int64(j->old_settings.downtime_limit));
	json_object_object_add(o, "old_mode", json_object_new_string(j->old_settings.mode));
	json_object_object_add(o, "old_tls_set", json_object_new_boolean(j->old_settings.tls_set));
	json_object_object_add(o, "old_tls_creds", json_object_new_string(j->old_settings.tls_creds));
	return o;
}

int qu_journal_write(const struct qu_journal *j)
{
	char path[PATH_MAX];
	int r = ensure_dir();
	if (r < 0)
		return r;
	qu_state_path(j->old_pid, "journal", path, sizeof(path));
	json_object *o = to_json(j);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	char *line = NULL;
	if (!text || asprintf(&line, "%s\n", text) < 0) {
		json_object_put(o);
		return qu_err(-ENOMEM, "cannot write the journal %s: out of memory", path);
	}
	/* Replaced whole but not synced: the journal is for the tool's death (its guardian, or
	 * --recover, settles the upgrade from it), not the host's. After a host crash no QEMU it
	 * names still runs, and a journal that survived would only name dead processes (settle
	 * checks PID and start time first). With an fsync of the file and of the directory a
	 * write took 2-7 ms (median; 0.1 ms without), measured with /run on ext4 on a loaded
	 * host; 8 writes per upgrade, source-completed and resuming inside the guest's pause.
	 * What must survive the host stays durable: libvirt's status and PID files
	 * (upgrade/libvirt.c), the daemon's restart record (upgrade/libvirtd.c). */
	r = qu_replace_file(path, line, strlen(line));
	free(line);
	json_object_put(o);
	if (r < 0) {
		return qu_err(r, "cannot write the journal %s: %s (the upgrade needs it to be safe)", path,
			      strerror(-r));
	}
	return 0;
}

static void get_str(json_object *o, const char *k, char *buf, size_t len)
{
	json_object *v;
	snprintf(buf, len, "%s", json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "");
}

static long long get_int(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

int qu_journal_read(const char *path, struct qu_journal *j)
{
	char phase[32];
	json_object *o = json_object_from_file(path), *l;
	memset(j, 0, sizeof(*j));
	if (!o)
		return qu_err(-EBADMSG, "cannot read the journal %s", path);
	get_str(o, "phase", phase, sizeof(phase));
	j->phase = phase_from_name(phase);
	j->tool_pid = (pid_t)get_int(o, "tool_pid");
	j->old_pid = (pid_t)get_int(o, "old_pid");
	j->new_pid = (pid_t)get_int(o, "new_pid");
	j->old_start = (unsigned long long)get_int(o, "old_start");
	j->new_start = (unsigned long long)get_int(o, "new_start");
	j->was_running = (int)get_int(o, "was_running");
	j->kill_old = (int)get_int(o, "kill_old");
	j->qmp_root = (int)get_int(o, "qmp_root");
	j->postcopy = (int)get_int(o, "postcopy");
	j->postcopy_asked = (int)get_int(o, "postcopy_asked");
	get_str(o, "remote", j->remote, sizeof(j->remote));
	j->mirrors = (int)get_int(o, "mirrors");
	j->tls = (int)get_int(o, "tls");
	get_str(o, "qmp", j->qmp, sizeof(j->qmp));
	/* A journal without them (an older tool's): nobody, whom no VM's socket trusts more. */
	json_object *g;
	struct qu_ident *who = &j->vm_user;
	who->uid = json_object_object_get_ex(o, "vm_uid", NULL) ? (uid_t)get_int(o, "vm_uid") : QU_NOBODY;
	who->gid = json_object_object_get_ex(o, "vm_gid", NULL) ? (gid_t)get_int(o, "vm_gid") : QU_NOBODY;
	who->umask = 077;
	if (json_object_object_get_ex(o, "vm_groups", &g) && json_object_is_type(g, json_type_array))
		for (size_t i = 0; i < json_object_array_length(g) && i < QU_CTX_MAX_GROUPS; i++)
			who->groups[who->ngroups++] = (gid_t)json_object_get_int64(json_object_array_get_idx(g, i));
	get_str(o, "ctl", j->ctl, sizeof(j->ctl));
	get_str(o, "pidfile", j->pidfile, sizeof(j->pidfile));
	if (json_object_object_get_ex(o, "listeners", &l) && json_object_is_type(l, json_type_array))
		for (size_t i = 0; i < json_object_array_length(l) && i < QU_MAX_LISTENERS; i++)
			snprintf(j->listeners[j->nlisteners++], QU_SUN_PATH_MAX, "%s",
				 json_object_get_string(json_object_array_get_idx(l, i)));
	if (json_object_object_get_ex(o, "rebound", &l) && json_object_is_type(l, json_type_array))
		for (size_t i = 0; i < json_object_array_length(l) && i < QU_MAX_REBOUND; i++)
			snprintf(j->rebound[j->nrebound++], QU_SUN_PATH_MAX, "%s",
				 json_object_get_string(json_object_array_get_idx(l, i)));
	j->cpr_exec = (int)get_int(o, "cpr_exec");
	j->cpr_fdset = json_object_object_get_ex(o, "cpr_fdset", NULL) ? (int)get_int(o, "cpr_fdset") : -1;
	j->caps_saved = (int)get_int(o, "caps_saved");
	if (json_object_object_get_ex(o, "tap_queues_attached", &l) && json_object_is_type(l, json_type_array))
		for (size_t i = 0; i < json_object_array_length(l) && j->ntapq < QU_JOURNAL_MAX_TAPQ; i++) {
			json_object *q = json_object_array_get_idx(l, i);
			long long of = get_int(q, "old_fd"), nf = get_int(q, "new_fd");
			char name[IFNAMSIZ + 1];
			get_str(q, "tap", name, sizeof(name));
			/* An entry that names no tap, or no descriptor either process could have, is
			 * left out: settling it would touch something else. */
			if (of < 0 || of > INT_MAX || nf < 0 || nf > INT_MAX || !name[0] || strlen(name) >= IFNAMSIZ)
				continue;
			j->tapq_old[j->ntapq] = (int)of;
			j->tapq_new[j->ntapq] = (int)nf;
			memcpy(j->tapq_name[j->ntapq++], name, strlen(name) + 1);
		}
	j->tap_steered = (int)get_int(o, "tap_steered");
	j->old_settings.ignore_shared = (int)get_int(o, "old_ignore_shared");
	j->old_settings.events = (int)get_int(o, "old_events");
	j->old_settings.postcopy = (int)get_int(o, "old_postcopy");
	j->old_settings.release_ram = (int)get_int(o, "old_release_ram");
	j->old_settings.max_bandwidth = get_int(o, "old_bandwidth");
	j->old_settings.downtime_limit = get_int(o, "old_downtime_limit");
	get_str(o, "old_mode", j->old_settings.mode, sizeof(j->old_settings.mode));
	j->old_settings.tls_set = (int)get_int(o, "old_tls_set");
	get_str(o, "old_tls_creds", j->old_settings.tls_creds, sizeof(j->old_settings.tls_creds));
	json_object_put(o);
	if (!j->phase || j->old_pid <= 0)
		return qu_err(-EBADMSG, "the journal %s is damaged (no phase or PID)", path);
	return 0;
}

void qu_journal_remove(pid_t old_pid)
{
	char path[PATH_MAX];
	qu_state_path(old_pid, "journal", path, sizeof(path));
	unlink(path);
	/* cpr-exec's saved device state, needed until the upgrade is settled. */
	qu_state_path(old_pid, "cprstate", path, sizeof(path));
	unlink(path);
}
