/* cpr-exec: the saved state's file and the one process's monitor (upgrade/pageflip/cprexec.h). */
#include "upgrade/pageflip/cprexec.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/vm.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/log.h"
#include "upgrade/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* How often the tool knocks at the VM's QMP path while the exec runs: each try that lands
 * before the new image listens costs nothing, and every millisecond here is in the pause. */
#define RECONNECT_EVERY_US 2000u

/* add-fd: QEMU gets fd in a new descriptor set; returns the set's id, or -errno. */
int cpr_exec_add_fd(struct qu_qmp *q, int fd, uint64_t deadline)
{
	json_object *ret = NULL, *v;
	int r = qu_qmp_execute(q, "add-fd", NULL, fd, deadline, &ret);
	if (r < 0)
		return r;
	long long id = json_object_object_get_ex(ret, "fdset-id", &v) ? json_object_get_int64(v) : -1;
	json_object_put(ret);
	if (id < 0 || id > QU_MAX_FDSET_ID)
		return qu_err(-EPROTO, "add-fd: QEMU's answer has no usable fdset-id");
	return (int)id;
}

void cpr_exec_remove_fdset(struct qu_qmp *q, int id, uint64_t deadline)
{
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdset-id", json_object_new_int(id));
	qu_qmp_execute(q, "remove-fd", args, -1, deadline, NULL);
}

/* The state file, opened by root in the state directory (0700): QEMU never opens a path of
 * ours, it gets descriptors (add-fd, then file:/dev/fdset/N). */
void cpr_exec_state_path(const struct qu_journal *j, char *path, size_t len)
{
	qu_state_path(j->old_pid, "cprstate", path, len);
}

int cpr_exec_open_state(const struct qu_journal *j, int flags)
{
	char path[PATH_MAX];
	cpr_exec_state_path(j, path, sizeof(path));
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return qu_err(-errno, "cannot open the cpr-exec state file %s: %s", path, strerror(errno));
	/* The VM's user owns its state: a QEMU started again for a rollback opens it through
	 * /proc/self/fd (the directory stays root's alone). */
	if ((flags & O_CREAT) && fchown(fd, j->vm_user.uid, j->vm_user.gid) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot give %s to the VM's user: %s", path, strerror(e));
	}
	return fd;
}

/* The VM's monitor, as inspect reached it, tried every few milliseconds: the old image's
 * listening socket resets a connection it still held, and the new image binds anew. pidfd
 * (or, at -1, the journal's PID) says whether the process still lives. */
static int alive(const struct qu_journal *j, struct qu_hold *h, int pidfd)
{
	return pidfd >= 0 ? qu_pidfd_wait_exit(pidfd, qu_now_us()) != 0 : qu_old_alive(j, h);
}

int cpr_exec_reconnect(const struct qu_journal *j, struct qu_hold *h, int pidfd, uint64_t deadline, struct qu_qmp **q)
{
	if (j->qmp_root)
		return qu_connect_old(j, deadline, q); /* libvirt's, checked to be this PID's */
	int r;
	do {
		int fd = qu_connect_as(&j->vm_user, j->qmp);
		uint64_t soon = qu_now_us() + 2000000u;
		r = fd < 0 ? fd : qu_qmp_connected(fd, j->qmp, soon < deadline ? soon : deadline, q);
		if (r == 0 || !alive(j, h, pidfd))
			break;
	} while (qu_now_us() < deadline && usleep(RECONNECT_EVERY_US) == 0);
	if (r < 0 && !alive(j, h, pidfd))
		return qu_err(-ECHILD, "the QEMU process is gone");
	return r < 0 ? qu_err_wrap(r, "the VM's monitor %s", j->qmp) : 0;
}

/* The new image loads the saved state (exit-on-error off: a failed load leaves it alive and
 * says why) and, the guest having run before, resumes it by itself: *resumed gets the wall
 * clock time QEMU stamped on its RESUME. */
int cpr_exec_load_state(const struct qu_journal *j, struct qu_qmp *q, int pidfd, uint64_t deadline, int64_t *resumed,
		      int inherited)
{
	int set = -1;
	char uri[48];
	/* A process of our own start inherited the file at a number; the exec'd image gets it
	 * in a descriptor set (a fresh QEMU in cpr-exec mode looks a set's members up in the
	 * CPR state it does not have, and reads nothing). */
	if (inherited >= 0) {
		snprintf(uri, sizeof(uri), "file:/proc/self/fd/%d", inherited); /* fd: takes no file */
	} else {
		int fd = cpr_exec_open_state(j, O_RDONLY);
		if (fd < 0)
			return fd;
		set = cpr_exec_add_fd(q, fd, deadline);
		close(fd);
		if (set < 0)
			return set;
		snprintf(uri, sizeof(uri), "file:/dev/fdset/%d", set);
	}
	struct qu_mig_settings want = { .events = 1 };
	json_object *args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	json_object_object_add(args, "exit-on-error", json_object_new_boolean(0));
	int r = qu_mig_set(q, &want, deadline);
	r = r ?: qu_qmp_execute(q, "migrate-incoming", args, -1, deadline, NULL);
	if (r == 0 && (r = qu_mig_wait_incoming(q, pidfd, deadline)) < 0) {
		struct qu_mig_status m;
		char said[256];
		snprintf(said, sizeof(said), "%s", qu_err_msg());
		if (qu_mig_query(q, deadline, &m) == 0 && m.error[0])
			r = qu_err(r, "%s: %s", said, m.error);
		else
			r = qu_err(r, "%s", said);
	}
	if (set >= 0)
		cpr_exec_remove_fdset(q, set, deadline);
	if (r < 0 || !j->was_running)
		return r;
	r = qu_qmp_event_time(q, "RESUME", deadline, resumed);
	char state[32] = "";
	if (r == 0 && (r = qu_qmp_query_string(q, "query-status", "status", deadline, state, sizeof(state))) == 0 &&
	    strcmp(state, "running"))
		r = qu_err(-EIO, "the new image is in run state '%s' after loading, expected 'running'", state);
	return r;
}
