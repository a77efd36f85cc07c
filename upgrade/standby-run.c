/* `qemu-upgrade standby start|status|stop` (docs/standby.md): protecting a VM with a COLO
 * secondary on another host, its supervisor, and the end of protection. The start runs in
 * the supervisor itself (upgrade/spawn.h: a process in a session of its own), so that the agent's session and
 * the primary's monitor it opens are its own: `standby start` waits for its word (protected,
 * or why not) and returns; the supervisor stays, holding both, until `standby stop`, the
 * primary's end (the secondary takes over: failover), the other host's silence (this host's
 * QEMU is stopped: fencing) or the secondary's loss. */
#include "qemu-upgrade.h"
#include "qemu-integration/disks.h"
#include "qemu-integration/qmp.h"
#include "remote/client.h"
#include "remote/standby/enter.h"
#include "remote/standby/plan.h"
#include "remote/standby/replication.h"
#include "remote/standby/secondary.h"
#include "remote/standby/state.h"
#include "remote/standby/traffic.h"
#include "remote/standby/wiring.h"
#include "remote/tls.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/inspect.h"
#include "upgrade/io.h"
#include "upgrade/log.h"
#include "upgrade/plan.h"
#include "upgrade/spawn.h"
#include "upgrade/standby.h"
#include "upgrade/statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Building the secondary and entering COLO (the initial copy included). */
#define STANDBY_START_TIMEOUT_US (300ull * 1000000u)
/* The supervisor's word to the agent, this often: the agent takes over after the heartbeat
 * timeout of silence, and the supervisor stops its own QEMU after half of it without an
 * answer (never two guests: docs/standby.md, "Failover and fencing"). */
#define HEARTBEAT_EVERY_US (1000000u)
/* The end of protection: failover on the primary, the filters removed. */
#define LEAVE_TIMEOUT_US (30ull * 1000000u)
/* `standby stop` waits this long for the supervisor to end protection. */
#define STOP_WAIT_US (90ull * 1000000u)
/* Events read in one turn of the watch. */
#define EVENTS_PER_TURN 256
/* A switchover's checkpoint, asked for at once, must come within this. */
#define SWITCH_CHECKPOINT_US (30ull * 1000000u)
/* `standby switchover` waits this long for the guest to run on the other host. */
#define SWITCH_WAIT_US (180ull * 1000000u)
/* Between a dying QEMU's monitor closing and its pidfd saying it exited. */
#define PRIMARY_EXIT_WAIT_US (5ull * 1000000u)
/* The primary's monitor lost (closed, unreadable) with the QEMU still there: this long for it
 * to exit (a SIGKILLed QEMU closes its files first), heartbeats going on meanwhile, before
 * protection counts as broken. */
#define MONITOR_LOST_WAIT_US (15ull * 1000000u)
/* One turn's reading of the primary's events takes at most this: a message QEMU has not
 * finished writing is read on in a later turn, after the heartbeat's. */
#define EVENTS_TURN_US 200000u
/* The supervisor's word to `standby start`: a tag and a message or the state's JSON. */
#define WORD_MAX 8192

static int fail(int err)
{
	errno = err < 0 ? -err : err;
	return -1;
}

/* What the supervisor holds while it protects the VM. */
struct guard {
	struct qu_vm *vm;
	struct qu_qmp *q;           /* the primary's monitor */
	struct qu_remote *rm;       /* the agent's session: the secondary lives as long as it */
	struct qu_plan *up;         /* the secondary's launch (as --remote makes it) */
	struct qu_standby_plan *p;
	struct qu_colo_entry entry;
	struct qu_tls tls;
	int pidfd;
	int wired;                  /* the primary's filters may be there */
	int disk;                   /* the primary's disk may be mirrored or replicated */
	uint64_t deadline;          /* the start's */
	unsigned hb_timeout_ms;
	struct qu_standby_state st;
	double pauses[QU_STANDBY_PAUSES];
	size_t npauses;
	/* The migration connection (traffic_known 0: not found) and its count of bytes
	 * acknowledged at the last checkpoint, for the bytes each checkpoint carried. */
	struct qu_colo_traffic traffic;
	int traffic_known;
	unsigned long long traffic_at_start, traffic_last;
	double bytes[QU_STANDBY_PAUSES];
	size_t nbytes;
	/* A switchover asked for: the checkpoint count then, and until when the checkpoint
	 * it asked QEMU for may take (0: none under way); killed once the primary was. */
	unsigned long long switch_after;
	uint64_t switch_deadline;
	uint64_t switch_asked_us;   /* this host's monotonic clock */
	int switch_killed;
	int traffic_skip;           /* the next checkpoint's bytes are not one checkpoint's */
	/* The primary's monitor closed or unreadable (0: it is fine), and why. */
	uint64_t monitor_lost_us;
	char monitor_error[256];
};

static void guard_free(struct guard *g)
{
	qu_remote_close(g->rm); /* the agent stops its secondary and removes what it made */
	g->rm = NULL;
	if (g->up) {
		g->up->remote = NULL;
		free((void *)g->up->disks);
		qu_plan_free(g->up);
		free(g->up);
	}
	qu_qmp_close(g->q);
	if (g->vm) {
		qu_vm_free(g->vm);
		free(g->vm);
	}
	free(g->p);
	qu_close(&g->pidfd);
}

/* Protection ends on the primary: COLO left, the filters and the key removed, the guest
 * running alone as before. */
static int release_primary(struct guard *g)
{
	uint64_t deadline = qu_now_us() + LEAVE_TIMEOUT_US;
	int left = qu_colo_leave(g->q, &g->entry, deadline);
	if (g->disk)
		left += qu_colo_disk_unwire(g->q, deadline);
	if (g->wired)
		left += qu_colo_primary_unwire(g->q, deadline);
	if (g->tls.added)
		qu_tls_remove(g->q, &g->tls, deadline);
	return left;
}

/* The primary's monitor, connected as the VM's user: 1 when the PID is another process's
 * now (the VM is gone; *q may be set all the same). */
static int primary_connect(const struct qu_standby_state *st, uint64_t deadline_us, struct qu_vm *vm,
			   struct qu_qmp **q)
{
	int r = qu_inspect(st->pid, NULL, 0, deadline_us, vm, q);
	return r == 0 && vm->pin.start != st->pid_start ? 1 : r;
}

/* The primary's monitor lost while its QEMU lives: a new connection to it (QEMU's socket
 * monitor accepts the next one), for the release. */
static int monitor_reconnect(struct guard *g)
{
	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_qmp *q = NULL;
	if (!vm)
		return qu_err(-ENOMEM, "out of memory");
	int r = primary_connect(&g->st, qu_now_us() + 10000000u, vm, &q);
	if (r > 0)
		r = qu_err(-ESRCH, "PID %d is another process now", (int)g->st.pid);
	qu_vm_free(vm);
	free(vm);
	if (r < 0) {
		qu_qmp_close(q);
		return r;
	}
	qu_qmp_close(g->q);
	g->q = q;
	return 0;
}

/* Everything that blocks a real start, at once: the plan's refusals and what is not built. */
static int refused(struct guard *g, char *why, size_t len)
{
	if (g->p->nnics != 1)
		qu_refusals_add(&g->p->refusals, "the VM has %zu NICs: standby protects a VM with exactly one NIC "
						 "(its network output is what COLO compares)", g->p->nnics);
	if (!qu_refusals_count(&g->p->refusals))
		return 0;
	char *all = qu_refusals_join(&g->p->refusals, "\n  - ");
	snprintf(why, len, "cannot protect PID %d (%u blocker%s, each to resolve):\n  - %s", (int)g->p->pid,
		 qu_refusals_count(&g->p->refusals), qu_refusals_count(&g->p->refusals) > 1 ? "s" : "",
		 all ? all : g->p->refusals.why[0]);
	free(all);
	return 1;
}

/* A disk under the quorum: the secondary's copy of its image is made and filled as
 * --copy-storage does (the agent creates it at the same path and exports it over NBD with
 * TLS), under the id of the secondary's parent drive, which the export is named after. */
static int secondary_disk_copy(struct guard *g)
{
	struct qu_disks *disks = (struct qu_disks *)g->up->disks;
	if (!g->p->ndisks)
		return 0;
	const struct qu_standby_disk *sd = &g->p->disks[0];
	qu_colo_drop_graph_disks(disks);
	for (size_t i = 0; i < disks->n; i++) {
		struct qu_disk *d = &disks->d[i];
		if (strcmp(d->device, sd->device))
			continue;
		memset(d, 0, sizeof(*d));
		snprintf(d->device, sizeof(d->device), "%s", QU_COLO_PARENT_ID);
		snprintf(d->file, sizeof(d->file), "%s", sd->file);
		snprintf(d->format, sizeof(d->format), "%s", sd->format);
		d->size = sd->size;
		g->up->copy_storage = 1;
		return 0;
	}
	return qu_err(-ENOENT, "disk %s is not among the VM's block devices any more", sd->device);
}

/* The secondary's disk graph on its command line, with the active and hidden images the
 * agent makes at two descriptor numbers above every other it gets. */
static int secondary_disk_graph(struct guard *g)
{
	if (!g->p->ndisks)
		return 0;
	const struct qu_standby_disk *sd = &g->p->disks[0];
	int top = 3, r; /* the agent's private monitor is 3 */
	for (size_t i = 0; i < g->up->nfds; i++)
		if (g->up->fds[i].target > top)
			top = g->up->fds[i].target;
	if (top + 2 > 258)
		return qu_err(-E2BIG, "the secondary gets descriptors up to %d: no room for its disk images", top);
	if ((r = qu_colo_secondary_drives(&g->up->argv, sd->device, sd->file, sd->format, top + 1, top + 2)) < 0 ||
	    (r = qu_remote_colo_disk(g->rm, top + 1, top + 2, sd->size)) < 0)
		return qu_err_wrap(r, "the secondary's disk");
	return 0;
}

/* The secondary on the other host: the same launch as an upgrade there (remote/target.h:
 * the same binary and paths, descriptors re-created from their specs), then its filters. */
static int start_secondary(struct guard *g, const char *pki_dir, uint64_t deadline, char *mirror, char *compare,
			   size_t len)
{
	int r;
	if ((r = qu_remote_connect(g->p->host, pki_dir, deadline, &g->rm)) < 0)
		return r;
	if (!(g->up = calloc(1, sizeof(*g->up))) || !(g->up->disks = calloc(1, sizeof(struct qu_disks))))
		return qu_err(-ENOMEM, "out of memory");
	g->up->remote = g->rm;
	if ((r = qu_disks_query(g->q, deadline, (struct qu_disks *)g->up->disks)) < 0 ||
	    (r = secondary_disk_copy(g)) < 0 || (r = qu_plan_make(g->vm, g->vm->exe_path, deadline, g->up)) < 0)
		return r;
	if (!g->rm->standby) /* the agent would refuse op=colo: nothing is started there */
		qu_refusals_add(&g->up->refusals, "%s", g->rm->standby_refused);
	if (qu_refusals_count(&g->up->refusals)) {
		char *all = qu_refusals_join(&g->up->refusals, "; ");
		r = qu_err(-EOPNOTSUPP, "the secondary cannot be started on %s: %s", g->p->host, all ? all : "");
		free(all);
		return r;
	}
	if (memcmp(g->up->target.ver, g->vm->ver, sizeof(g->vm->ver)))
		return qu_err(-EOPNOTSUPP, "%s on %s is QEMU %d.%d.%d, the VM runs %d.%d.%d: COLO needs the same QEMU",
			      g->vm->exe_path, g->p->host, g->up->target.ver[0], g->up->target.ver[1],
			      g->up->target.ver[2], g->vm->ver[0], g->vm->ver[1], g->vm->ver[2]);
	if ((r = qu_colo_private_ram(&g->up->argv, g->up->fds, &g->up->nfds)) < 0)
		return qu_err_wrap(r, "the secondary's RAM");
	if ((r = secondary_disk_graph(g)) < 0)
		return r;
	if ((r = qu_remote_send(g->vm, g->up, deadline, NULL, 0)) < 0)
		return qu_err_wrap(r, "starting the secondary on %s", g->p->host);
	qu_info("standby: secondary QEMU started on %s: PID %d, waiting at %s", g->p->host, (int)g->rm->new_pid,
		g->rm->migrate_uri);
	if ((r = qu_remote_colo(g->rm, g->p->nics[0].netdev, g->hb_timeout_ms, deadline, mirror, compare, len)) < 0)
		return qu_err_wrap(r, "wiring the secondary on %s", g->p->host);
	return 0;
}

/* Before the initial copy's switch-over, the guest stopped: the disk's copy ends exact and
 * its replication child is added (remote/standby/replication.h). */
static int disk_switchover(void *arg)
{
	struct guard *g = arg;
	return qu_colo_disk_switch(g->q, g->p->disks[0].device, QU_COLO_PARENT_ID, g->rm->nbd_addr, QU_TLS_ID,
				   g->deadline);
}

/* The migration connection, once protection began: what the initial copy sent. Without it
 * (not found: QEMU changed how it connects) the bytes per checkpoint are unknown, and the
 * status says so; protection does not depend on it. */
static void traffic_begin(struct guard *g)
{
	int r = qu_colo_traffic_find(g->st.pid, g->rm->migrate_uri, &g->traffic);
	if (r < 0 || (r = qu_colo_traffic_bytes(&g->traffic, &g->traffic_last)) < 0) {
		qu_info("standby: the migration connection of PID %d to %s: %s: bytes per checkpoint unknown",
			(int)g->st.pid, g->rm->migrate_uri, r == -ENOENT ? "not found" : strerror(-r));
		return;
	}
	g->traffic_known = 1;
	g->traffic_at_start = g->traffic_last;
	g->st.initial_copy_bytes = (long long)g->traffic_last;
}

/* The whole start, in the supervisor. 0 protected; 1 refused (why says all); -errno. */
static int protect(struct guard *g, pid_t pid, const char *host, const char *pki_dir, unsigned interval_ms,
		   char *why, size_t len)
{
	uint64_t deadline = qu_now_us() + STANDBY_START_TIMEOUT_US;
	char mirror[160], compare[160];
	int r;
	if (!(g->vm = calloc(1, sizeof(*g->vm))) || !(g->p = calloc(1, sizeof(*g->p))))
		return qu_err(-ENOMEM, "out of memory");
	if ((r = qu_inspect(pid, NULL, 0, deadline, g->vm, &g->q)) < 0)
		return r;
	snprintf(g->p->host, sizeof(g->p->host), "%s", host);
	g->p->interval_ms = interval_ms;
	if ((r = qu_standby_plan_local(g->vm, g->q, deadline, g->p)) < 0)
		return r;
	if (refused(g, why, len))
		return 1;
	/* The process inspect pinned: not one that took its PID since. */
	g->pidfd = fcntl(g->vm->pin.pidfd, F_DUPFD_CLOEXEC, 3);
	if (g->pidfd < 0)
		return qu_err(-errno, "the VM's pidfd: %s", strerror(errno));
	g->st.pid = pid;
	g->st.pid_start = g->vm->pin.start;
	g->st.supervisor = getpid();
	g->st.supervisor_start = qu_proc_starttime(getpid());
	snprintf(g->st.state, sizeof(g->st.state), "syncing");
	snprintf(g->st.host, sizeof(g->st.host), "%s", host);
	g->st.interval_ms = interval_ms;
	g->st.heartbeat_timeout_ms = g->hb_timeout_ms;
	g->st.initial_pause_ms = g->st.pause_median_ms = g->st.pause_max_ms = -1;
	g->st.initial_copy_bytes = g->st.checkpoint_bytes_median = g->st.checkpoint_bytes_max = -1;
	g->st.paused_total_ms = 0;
	g->st.switchover_capable = 1; /* SIGUSR1 is blocked from the supervisor's start */
	qu_standby_state_write(&g->st);
	if ((r = start_secondary(g, pki_dir, deadline, mirror, compare, sizeof(mirror))) < 0)
		return r;
	g->st.standby_pid = g->rm->new_pid;
	/* The primary's end of QEMU's TLS: the key is read when the object is made. */
	if ((r = qu_tls_add(g->q, &g->rm->psk, "client", g->vm->ctx.uid, g->vm->ctx.gid, NULL, NULL, deadline, &g->tls)) < 0)
		return r;
	qu_tls_remove(NULL, &g->tls, deadline);
	g->tls.added = 1;
	g->wired = 1;
	/* The settings to put back, in the state file too: a release without this process
	 * (standby stop, --recover) needs them. */
	if ((r = qu_colo_save(g->q, deadline, &g->entry.saved)) < 0)
		return r;
	g->st.saved_read = 1;
	g->st.saved_return_path = g->entry.saved.return_path;
	g->st.saved_events = g->entry.saved.events;
	g->st.saved_pause_before_switchover = g->entry.saved.pause_before_switchover;
	g->st.saved_max_bandwidth = g->entry.saved.max_bandwidth;
	g->st.saved_checkpoint_delay = g->entry.saved.checkpoint_delay;
	qu_standby_state_write(&g->st);
	if ((r = qu_colo_primary_wire(g->q, g->p->nics[0].netdev, mirror, compare, QU_TLS_ID, deadline)) < 0)
		return r;
	if (g->p->ndisks) {
		/* The disk first, in step and write-blocking while the guest runs; its copy ends,
		 * and replication begins, with the guest stopped before the switch-over. */
		g->disk = 1;
		qu_info("standby: filters wired; copying disk %s to %s", g->p->disks[0].device, host);
		if ((r = qu_colo_disk_mirror(g->q, g->p->disks[0].device, QU_COLO_PARENT_ID, g->rm->nbd_addr, QU_TLS_ID,
					     deadline)) < 0)
			return r;
		g->entry.switchover = disk_switchover;
		g->entry.switchover_arg = g;
		g->deadline = deadline;
	}
	qu_info("standby: filters wired; copying the guest to %s", host);
	if ((r = qu_colo_enter(g->q, g->pidfd, g->rm->migrate_uri, interval_ms, QU_TLS_ID, deadline, &g->entry)) < 0)
		return r;
	g->st.initial_pause_ms = g->entry.pause_ms;
	traffic_begin(g);
	g->st.since_us = qu_wall_us();
	snprintf(g->st.state, sizeof(g->st.state), "protecting");
	qu_standby_state_write(&g->st);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* v into the ring of the last QU_STANDBY_PAUSES values; their median. */
static __attribute__((noinline)) double ring_median(double *ring, size_t *count, double v)
{
	ring[(*count)++ % QU_STANDBY_PAUSES] = v;
	size_t n = *count < QU_STANDBY_PAUSES ? *count : QU_STANDBY_PAUSES;
	double sorted[QU_STANDBY_PAUSES];
	memcpy(sorted, ring, n * sizeof(double));
	qsort(sorted, n, sizeof(double), cmp_double);
	return sorted[n / 2];
}

static void add_pause(struct guard *g, double ms)
{
	g->st.pause_median_ms = ring_median(g->pauses, &g->npauses, ms);
	g->st.paused_total_ms += ms;
	if (ms > g->st.pause_max_ms)
		g->st.pause_max_ms = ms;
}

/* A checkpoint ended (RESUME): what it carried. The primary resumes once the secondary said
 * it loaded the checkpoint, so every byte of it has been acknowledged by then. */
static void add_checkpoint_bytes(struct guard *g)
{
	unsigned long long now;
	if (!g->traffic_known)
		return;
	/* Read late (more events wait behind this one), the count would give this checkpoint
	 * the bytes of the next ones too: no sample until the events are caught up with. */
	if (qu_qmp_buffered(g->q)) {
		g->traffic_skip = 1;
		return;
	}
	if (qu_colo_traffic_bytes(&g->traffic, &now) < 0 || now < g->traffic_last) {
		g->traffic_known = 0; /* the connection closed: COLO ends, and the events say why */
		return;
	}
	double b = (double)(now - g->traffic_last);
	g->traffic_last = now;
	g->st.protected_bytes = now - g->traffic_at_start;
	if (g->traffic_skip) {
		g->traffic_skip = 0;
		return;
	}
	g->st.checkpoint_bytes_median = (long long)ring_median(g->bytes, &g->nbytes, b);
	if ((long long)b > g->st.checkpoint_bytes_max)
		g->st.checkpoint_bytes_max = (long long)b;
}

static void broken(struct guard *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void broken(struct guard *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->st.reason, sizeof(g->st.reason), fmt, ap);
	va_end(ap);
	snprintf(g->st.state, sizeof(g->st.state), "broken");
	qu_info("standby: protection of PID %d broken: %s", (int)g->st.pid, g->st.reason);
}

/* The checkpoints, from the primary's events: each is a STOP and a RESUME. Returns 1 when
 * COLO ended on its own (COLO_EXIT, a failed migration), 3 when the VM shut down (SHUTDOWN:
 * the guest powered off, QMP quit, SIGTERM): an end someone wanted, which no secondary may
 * undo by running the guest on. A monitor that closed or cannot be read is noted
 * (monitor_lost_us), for the watch to wait for the QEMU's exit. */
static int read_events(struct guard *g, int64_t *t_stop)
{
	/* At most this many, and this long, at a time: a monitor that floods events or
	 * trickles them (the VM owner's QEMU) must not keep the heartbeat and the fencing from
	 * their turn. */
	uint64_t turn_end = qu_now_us() + EVENTS_TURN_US;
	for (int n = 0; !g->monitor_lost_us && n < EVENTS_PER_TURN &&
			(qu_qmp_buffered(g->q) || qu_poll_one(qu_qmp_fd(g->q), POLLIN, 0) > 0);
	     n++) {
		char name[64];
		int64_t at = 0;
		json_object *data = NULL;
		int r = qu_qmp_next_event(g->q, -1, turn_end, name, sizeof(name), &at, &data);
		if (r == -ETIMEDOUT) /* a message half written: the rest in a later turn */
			return 0;
		if (r < 0) {
			/* A QEMU that dies closes its monitor before its pidfd says so. The failover
			 * waits for that: by then the dead QEMU's sockets are closed, and the secondary
			 * has seen the end of its stream (a takeover asked for while it was still
			 * connected to a dying primary was followed once by a corrupt guest:
			 * docs/standby.md, "Failover and fencing"). The watch waits with its heartbeat
			 * going: a QEMU that lives on must not find the secondary taken over. */
			g->monitor_lost_us = qu_now_us();
			snprintf(g->monitor_error, sizeof(g->monitor_error), "%s", qu_err_msg());
			qu_info("standby: the primary's monitor: %s; waiting for the QEMU (PID %d) to exit", g->monitor_error,
				(int)g->st.pid);
			return 0;
		}
		int ended = 0;
		if (!strcmp(name, "STOP")) {
			*t_stop = at;
		} else if (!strcmp(name, "RESUME") && *t_stop) {
			add_pause(g, (double)(at - *t_stop) / 1000.0);
			add_checkpoint_bytes(g);
			g->st.checkpoints++;
			g->st.last_checkpoint_us = at;
			*t_stop = 0;
		} else if (!strcmp(name, "COLO_EXIT")) {
			broken(g, "COLO ended on the primary (reason: %s)", qu_json_member_str(data, "reason"));
			ended = 1;
		} else if (!strcmp(name, "MIGRATION") && !strcmp(qu_json_member_str(data, "status"), "failed")) {
			broken(g, "the primary's COLO migration failed");
			ended = 1;
		} else if (!strcmp(name, "SHUTDOWN")) {
			snprintf(g->st.state, sizeof(g->st.state), "stopped");
			snprintf(g->st.reason, sizeof(g->st.reason), "the VM shut down (reason: %s): protection ended "
				 "without a failover, and the secondary on %s was stopped",
				 qu_json_member_str(data, "reason"), g->st.host);
			qu_info("standby: %s", g->st.reason);
			ended = 3;
		}
		json_object_put(data);
		if (ended)
			return ended;
	}
	return 0;
}

/* The primary died: the secondary takes over. */
static void fail_over(struct guard *g)
{
	if (qu_remote_failover(g->rm, qu_now_us() + 120ull * 1000000u) < 0) {
		broken(g, "the primary QEMU (PID %d) exited, and the secondary on %s could not take over: %s",
		       (int)g->st.pid, g->st.host, qu_err_msg());
		return;
	}
	snprintf(g->st.state, sizeof(g->st.state), "failed-over");
	snprintf(g->st.reason, sizeof(g->st.reason), "%s; the guest runs on %s in PID %d%s",
		 g->switch_killed ? "switchover: the primary QEMU was stopped (SIGKILL) right after the checkpoint "
				    "asked for"
				  : "the primary QEMU exited",
		 g->st.host, (int)g->st.standby_pid,
		 g->rm->announced ? ", its MAC addresses announced" : " (its MAC addresses were not announced)");
	g->st.failed_over_us = g->rm->resumed_us;
	if (g->switch_killed) {
		/* On this host's clock alone: the request to the agent's word that the guest runs
		 * there (the other host's clock may differ from this one's). */
		snprintf(g->st.switchover, sizeof(g->st.switchover), "done");
		g->st.switchover_ms = (double)(qu_now_us() - g->switch_asked_us) / 1000.0;
	}
	qu_info("standby: %s", g->st.reason);
}

/* No answer from the agent for half the heartbeat timeout: the other host may take over
 * soon, so this guest stops now. SIGKILL, since a primary whose peer vanished does not
 * answer its monitor (docs/standby-research.md). */
static void fence(struct guard *g, const char *why)
{
	int k = qu_pidfd_kill(g->pidfd, SIGKILL);
	snprintf(g->st.state, sizeof(g->st.state), "fenced");
	snprintf(g->st.reason, sizeof(g->st.reason), "no answer from the agent on %s (%s) within %u ms: the primary QEMU "
		 "(PID %d) was %s so that the secondary can take over alone", g->st.host, why, g->hb_timeout_ms / 2,
		 (int)g->st.pid, k < 0 ? "to be stopped, but SIGKILL failed" : "stopped (SIGKILL)");
	qu_info("standby: %s", g->st.reason);
}

/* What the heartbeat says; 1 when protection ended (the state says how). */
static int heartbeat(struct guard *g, uint64_t *last_ok)
{
	uint64_t deadline = *last_ok + (uint64_t)g->hb_timeout_ms * 500u;
	int r = qu_now_us() >= deadline ? -ETIMEDOUT : qu_remote_heartbeat(g->rm, deadline);
	if (r == 0) {
		*last_ok = qu_now_us();
		return 0;
	}
	if (r == -ETIMEDOUT) {
		fence(g, "silence");
		return 1;
	}
	if (r == -EOWNERDEAD) {
		fence(g, "it says its secondary took over");
		return 1;
	}
	if (g->rm->agent_said)
		broken(g, "the secondary on %s is gone: %s", g->st.host, qu_err_msg());
	else
		broken(g, "the agent on %s ended the session: %s", g->st.host, qu_err_msg());
	return 1;
}

/* `standby switchover` asked (SIGUSR1): a checkpoint now, and once it is taken the primary
 * stops, so that the secondary, in step with it, takes over the usual way (the failover
 * above: nothing the guest did after that checkpoint was let out by colo-compare). */
static void switch_ask(struct guard *g, uint64_t last_ok)
{
	g->st.switchover_asks++; /* one asked while another is under way shares its end */
	if (g->switch_deadline || g->switch_killed) {
		qu_standby_state_write(&g->st);
		return;
	}
	g->switch_asked_us = qu_now_us();
	g->switch_after = g->st.checkpoints;
	g->st.switchover_ms = -1;
	qu_info("standby: switchover of PID %d to %s asked: a checkpoint first", (int)g->st.pid, g->st.host);
	/* The monitor's answer is the VM owner's to delay, and no heartbeat goes while it is
	 * awaited: it must come before this host would fence itself (half the timeout after
	 * the last answer), with half a second to spare. */
	uint64_t now = qu_now_us(), deadline = last_ok + (uint64_t)g->hb_timeout_ms * 500u;
	deadline = deadline > now + 700000u ? deadline - 500000u : now + 200000u;
	if (deadline > now + 10000000u)
		deadline = now + 10000000u;
	if (qu_colo_checkpoint_now(g->q, g->st.interval_ms, deadline) < 0) {
		snprintf(g->st.switchover, sizeof(g->st.switchover), "failed: %s; the guest runs here, still protected",
			 qu_err_msg());
		qu_info("standby: switchover %s", g->st.switchover);
		qu_standby_state_write(&g->st);
		return;
	}
	snprintf(g->st.switchover, sizeof(g->st.switchover), "asked");
	g->switch_deadline = qu_now_us() + SWITCH_CHECKPOINT_US;
	qu_standby_state_write(&g->st);
}

/* The switchover's checkpoint taken, and no other begun (t_stop: a STOP without its RESUME
 * yet): the primary goes, and 1 says the failover follows at once. From the SIGKILL on
 * nothing may release the primary or end the session (a `standby stop`, a word of the
 * agent's): the secondary is the guest's only home. Not taken in time: the switchover
 * fails, and protection goes on. */
static int switch_step(struct guard *g, int64_t t_stop)
{
	if (!g->switch_deadline)
		return 0;
	if (g->st.checkpoints > g->switch_after && !t_stop) {
		int k = qu_pidfd_kill(g->pidfd, SIGKILL);
		qu_info("standby: switchover: checkpoint %llu taken; the primary QEMU (PID %d) %s", g->st.checkpoints,
			(int)g->st.pid, k < 0 ? "could not be stopped (SIGKILL failed)" : "stopped (SIGKILL)");
		g->switch_deadline = 0;
		if (k < 0) {
			snprintf(g->st.switchover, sizeof(g->st.switchover), "failed: SIGKILL of the primary QEMU failed "
				 "(%s); the guest runs here, still protected", strerror(-k));
			qu_standby_state_write(&g->st);
			return 0;
		}
		g->switch_killed = 1;
		/* Its sockets closed, as at any failover (read_events); a SIGKILLed QEMU runs no
		 * more guest code even if its exit takes longer. */
		if (qu_poll_one(g->pidfd, POLLIN, qu_now_us() + PRIMARY_EXIT_WAIT_US) <= 0)
			qu_info("standby: switchover: the primary QEMU (PID %d) has not exited %llu s after its SIGKILL; "
				"the secondary takes over", (int)g->st.pid, PRIMARY_EXIT_WAIT_US / 1000000);
		return 1;
	}
	if (qu_now_us() >= g->switch_deadline) {
		g->switch_deadline = 0;
		snprintf(g->st.switchover, sizeof(g->st.switchover), "failed: QEMU took no checkpoint within %llu s of the "
			 "request; the guest runs here, still protected", SWITCH_CHECKPOINT_US / 1000000);
		qu_info("standby: switchover %s", g->st.switchover);
		qu_standby_state_write(&g->st);
	}
	return 0;
}

/* The supervisor's watch, until protection ends. */
static void supervise(struct guard *g)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC), release = 1;
	int64_t t_stop = 0;
	uint64_t last_ok = qu_now_us(), next_beat = last_ok + HEARTBEAT_EVERY_US, next_write = 0;
	for (;;) {
		int lost = g->monitor_lost_us != 0;
		uint64_t wake = next_beat;
		if (lost && g->monitor_lost_us + MONITOR_LOST_WAIT_US < wake)
			wake = g->monitor_lost_us + MONITOR_LOST_WAIT_US;
		struct pollfd p[4] = { { .fd = lost ? -1 : qu_qmp_fd(g->q), .events = POLLIN },
				       { .fd = g->pidfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN },
				       { .fd = g->rm->sock, .events = POLLIN } };
		int n = poll(p, 4, !lost && qu_qmp_buffered(g->q) ? 0 : qu_ms_left(wake));
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents) {
			/* What the monitor said before the exit first: a VM that shut down is not
			 * taken over. */
			release = 0;
			if (read_events(g, &t_stop) != 3)
				fail_over(g);
			break;
		}
		if (p[2].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1) {
				switch_ask(g, last_ok);
			} else {
				snprintf(g->st.state, sizeof(g->st.state), "stopped");
				qu_info("standby: asked to stop protecting PID %d", (int)g->st.pid);
				break;
			}
		}
		if (p[3].revents) {
			/* The agent speaks unasked only to say its secondary took over: this guest
			 * must stop at once. Anything else ends the session, and its secondary. */
			char words[256] = "";
			int r = qu_remote_pending(g->rm, qu_now_us() + 1000000u);
			if (r == -EOWNERDEAD) {
				release = 0;
				fence(g, "it says its secondary took over");
				break;
			}
			qu_remote_last_words(g->rm, words, sizeof(words));
			broken(g, "the agent on %s ended the session: %s%s%s", g->st.host, qu_err_msg(), words[0] ? "; " : "",
			       words);
			break;
		}
		int ev = read_events(g, &t_stop);
		if (ev == 3) /* a QEMU left running (-no-shutdown) is released; an exiting one is not */
			release = qu_poll_one(g->pidfd, POLLIN, qu_now_us() + PRIMARY_EXIT_WAIT_US) <= 0;
		if (ev)
			break;
		if (g->monitor_lost_us && qu_now_us() >= g->monitor_lost_us + MONITOR_LOST_WAIT_US) {
			broken(g, "the primary's monitor: %s, and its QEMU (PID %d) did not exit within %llu s", g->monitor_error,
			       (int)g->st.pid, MONITOR_LOST_WAIT_US / 1000000);
			break;
		}
		if (switch_step(g, t_stop)) {
			release = 0;
			fail_over(g);
			break;
		}
		if (qu_now_us() >= next_beat) {
			if (heartbeat(g, &last_ok)) {
				release = strcmp(g->st.state, "fenced") != 0;
				break;
			}
			next_beat = qu_now_us() + HEARTBEAT_EVERY_US;
		}
		if (qu_now_us() >= next_write) {
			qu_standby_state_write(&g->st);
			next_write = qu_now_us() + 1000000u;
		}
	}
	if (release && g->monitor_lost_us && monitor_reconnect(g) < 0)
		qu_info("standby: the primary's monitor cannot be reached again (%s): its release fails", qu_err_msg());
	if (release) {
		int left = release_primary(g);
		if (left)
			qu_info("standby: %d step(s) of the primary's release failed (listed above)", left);
	}
	qu_remote_close(g->rm);
	g->rm = NULL;
	qu_standby_state_write(&g->st);
	qu_close(&sfd);
}

/* The supervisor's log, STATE_DIR/standby-PID.log: its stderr from its start on. */
static void detach_output(pid_t pid)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/standby-%d.log", qu_state_dir(), (int)pid);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
	}
	if (log >= 0 || null >= 0)
		dup2(log >= 0 ? log : null, 2);
	if (null > 2)
		close(null);
	if (log > 2)
		close(log);
}

/* What the supervisor is started with. */
struct supervisor_args {
	pid_t pid;
	const char *remote, *pki_dir;
	unsigned interval_ms, heartbeat_timeout_ms;
};

/* The supervisor (upgrade/spawn.h: a session of its own, its word pipe at fd 3 and nothing
 * else open): the start, its word to `standby start`, then the watch. */
static __attribute__((noinline)) int supervisor_main(void *arg)
{
	const struct supervisor_args *a = arg;
	pid_t pid = a->pid;
	int wfd = 3;
	/* From here on the supervisor writes to its log alone: the processes it starts (the
	 * TLS relay, ssh) inherit no terminal and no caller's pipe, so that `standby start`
	 * ends when it has said its word, whatever stays behind. */
	detach_output(pid);
	/* A switchover's signal before the watch reads it waits; it must not end the process. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	struct guard *g = calloc(1, sizeof(*g));
	char why[4096] = "";
	int r = g ? 0 : -ENOMEM;
	if (g) {
		g->pidfd = -1;
		g->hb_timeout_ms = a->heartbeat_timeout_ms;
		r = protect(g, pid, a->remote, a->pki_dir, a->interval_ms, why, sizeof(why));
	}
	if (r != 0) {
		if (r < 0)
			snprintf(why, sizeof(why), "%s", qu_err_msg()[0] ? qu_err_msg() : strerror(-r));
		if (g && g->q && g->st.pid)
			release_primary(g);
		/* Released: nothing is protected, and nothing is left to stop. */
		if (g && g->st.pid)
			qu_standby_state_remove(g->st.pid);
		char tag = r > 0 ? 'R' : 'E';
		qu_write_full(wfd, &tag, 1);
		qu_write_full(wfd, why, strlen(why) + 1);
		if (g)
			guard_free(g);
		return r > 0 ? 3 : 1;
	}
	char *json = qu_standby_state_json(&g->st);
	qu_write_full(wfd, "P", 1);
	if (json)
		qu_write_full(wfd, json, strlen(json));
	free(json);
	qu_write_full(wfd, "", 1);
	close(wfd);
	supervise(g);
	guard_free(g);
	free(g);
	return 0;
}

/* Another supervisor protecting pid, alive: its PID; else 0. */
static pid_t running_supervisor(pid_t pid, struct qu_standby_state *st)
{
	if (qu_standby_state_read(pid, st) < 0 || st->supervisor <= 0)
		return 0;
	return qu_proc_alive(st->supervisor, st->supervisor_start) ? st->supervisor : 0;
}

int qu_standby_start(pid_t pid, const char *remote, const char *pki_dir, unsigned interval_ms,
		     unsigned heartbeat_timeout_ms, unsigned flags, FILE *out)
{
	struct qu_standby_state st;
	int pfd[2];
	if (qu_standby_check_args(pid, remote, pki_dir, &interval_ms, flags) < 0)
		return -1;
	if (heartbeat_timeout_ms == 0)
		heartbeat_timeout_ms = QU_COLO_TIMEOUT_DEFAULT_MS;
	if (heartbeat_timeout_ms < QU_COLO_TIMEOUT_MIN_MS || heartbeat_timeout_ms > QU_COLO_TIMEOUT_MAX_MS)
		return fail(qu_err(-EINVAL, "heartbeat timeout %u ms: give %u to %u ms", heartbeat_timeout_ms,
				   QU_COLO_TIMEOUT_MIN_MS, QU_COLO_TIMEOUT_MAX_MS));
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return fail(qu_err(-errno, "cannot create %s: %s", qu_state_dir(), strerror(errno)));
	if (flags & QU_STANDBY_RENEW) {
		/* Every blocker is said before the guest is moved: the plan first, as if renewed. */
		char *plan = NULL;
		size_t plan_len = 0;
		FILE *mem = open_memstream(&plan, &plan_len);
		int planned = mem ? qu_standby_plan(pid, remote, pki_dir, interval_ms, flags, mem) : -1;
		int e = mem ? errno : ENOMEM;
		if (mem)
			fclose(mem);
		if (planned == 1)
			fputs(plan, out);
		free(plan);
		if (planned != 0)
			return planned == 1 ? 1 : fail(e);
		int renewed = qu_standby_renew(&pid, flags, out);
		if (renewed < 0)
			return fail(renewed);
	}
	pid_t other = running_supervisor(pid, &st);
	if (other && strcmp(st.state, "stopped"))
		return fail(qu_err(-EALREADY, "PID %d is protected already (supervisor PID %d, state %s, secondary on %s): "
					      "`qemu-upgrade standby stop --pid %d` first", (int)pid, (int)other, st.state,
				   st.host, (int)pid));
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return fail(qu_err(-errno, "pipe: %s", strerror(errno)));
	struct supervisor_args args = { .pid = pid, .remote = remote, .pki_dir = pki_dir, .interval_ms = interval_ms,
					.heartbeat_timeout_ms = heartbeat_timeout_ms };
	struct qu_spawn sp = { .fds = &pfd[1], .nfds = 1, .name = "qu-standby" };
	pid_t child;
	fflush(NULL);
	if (qu_spawn_detached(&sp, supervisor_main, &args, &child) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return fail(-EAGAIN); /* the message says why */
	}
	close(pfd[1]);
	char *text = calloc(1, WORD_MAX + 1);
	size_t len = 0;
	int r = text ? 0 : -ENOMEM;
	while (r == 0 && len < WORD_MAX) {
		ssize_t n = read(pfd[0], text + len, WORD_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		/* The word ends with a NUL: what the supervisor started may keep the pipe open. */
		if (memchr(text + len - (size_t)n, '\0', (size_t)n))
			break;
	}
	close(pfd[0]);
	if (r < 0 || len == 0) {
		free(text);
		return fail(qu_err(-EIO, "the supervisor (PID %d) ended without a word: see %s/standby-%d.log", (int)child,
				   qu_state_dir(), (int)pid));
	}
	if (text[0] == 'P') {
		struct qu_standby_state now;
		if (flags & QU_OUT_JSON) {
			fprintf(out, "%s\n", text + 1);
		} else if (qu_standby_state_read(pid, &now) == 0) {
			fprintf(out, "protected: PID %d, secondary PID %d on %s, a checkpoint every %u ms\n"
				     "initial copy's pause: %.1f ms\nsupervisor: PID %d (standby status --pid %d), "
				     "its log %s/standby-%d.log\n",
				(int)pid, (int)now.standby_pid, now.host, now.interval_ms, now.initial_pause_ms,
				(int)now.supervisor, (int)pid, qu_state_dir(), (int)pid);
		}
		free(text);
		return 0;
	}
	int refused_ = text[0] == 'R';
	if (refused_)
		fprintf(out, "%s\n", text + 1);
	else
		qu_err(-EIO, "%s", text + 1);
	free(text);
	return refused_ ? 1 : fail(-EIO);
}

/* The states in which the primary may be wired: a supervisor protects it, or is starting to. */
static int protecting(const char *state)
{
	return !strcmp(state, "syncing") || !strcmp(state, "protecting");
}

/* A state whose supervisor is gone cannot be trusted: it says so. */
static void judge(struct qu_standby_state *st)
{
	if (protecting(st->state) && !qu_proc_alive(st->supervisor, st->supervisor_start)) {
		snprintf(st->reason, sizeof(st->reason), "the supervisor (PID %d) is gone while %s: run `qemu-upgrade "
			 "standby stop --pid %d` to end protection cleanly", (int)st->supervisor, st->state, (int)st->pid);
		snprintf(st->state, sizeof(st->state), "broken");
	}
}

static void print_state(const struct qu_standby_state *st, unsigned flags, FILE *out)
{
	if (flags & QU_OUT_JSON) {
		char *json = qu_standby_state_json(st);
		if (json)
			fprintf(out, "%s\n", json);
		free(json);
		return;
	}
	fprintf(out, "state: %s%s%s\nvm: PID %d\nhost: %s\nstandby_pid: %d\ninterval: %u ms\ncheckpoints: %llu\n",
		st->state, st->reason[0] ? ": " : "", st->reason, (int)st->pid, st->host, (int)st->standby_pid,
		st->interval_ms, st->checkpoints);
	if (st->last_checkpoint_us)
		fprintf(out, "last_checkpoint: %lld ms ago\n", (long long)((qu_wall_us() - st->last_checkpoint_us) / 1000));
	if (st->checkpoints)
		fprintf(out, "pause per checkpoint: median %.1f ms, max %.1f ms\n", st->pause_median_ms, st->pause_max_ms);
	if (st->checkpoints && qu_standby_paused_share(st) >= 0)
		fprintf(out, "time paused: %.0f%% since protected (%.1f s in %llu checkpoints)\n",
			100.0 * qu_standby_paused_share(st), st->paused_total_ms / 1000.0, st->checkpoints);
	if (st->checkpoint_bytes_median >= 0)
		fprintf(out, "bytes per checkpoint: median %.1f KiB, max %.1f KiB (%.1f MiB since protected)\n",
			st->checkpoint_bytes_median / 1024.0, st->checkpoint_bytes_max / 1024.0,
			st->protected_bytes / 1048576.0);
	else if (st->checkpoints)
		fprintf(out, "bytes per checkpoint: unknown (the migration connection was not found)\n");
	if (st->initial_copy_bytes >= 0)
		fprintf(out, "initial copy: %.1f MiB\n", st->initial_copy_bytes / 1048576.0);
	fprintf(out, "initial copy's pause: %.1f ms\nheartbeat timeout: %u ms\nsupervisor: PID %d\n",
		st->initial_pause_ms, st->heartbeat_timeout_ms, (int)st->supervisor);
	if (st->switchover[0])
		fprintf(out, "switchover: %s\n", st->switchover);
}

/* The state of a protected VM, judged (a supervisor gone reads as broken), for status, stop
 * and switchover: 0, or -errno with a message. */
static int read_state(pid_t pid, struct qu_standby_state *st)
{
	if (pid <= 0)
		return qu_err(-EINVAL, "which VM? Give the PID of its QEMU");
	int r = qu_standby_state_read(pid, st);
	if (r == -ENOENT)
		return qu_err(-ENOENT, "PID %d is not protected (no standby was started for it on this host)", (int)pid);
	if (r < 0)
		return qu_err(r, "the state file of PID %d cannot be read", (int)pid);
	judge(st);
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return x < y ? -1 : x > y;
}

/* The VMs with a state file here (STATE_DIR/standby-PID.json), in PID order: how many
 * (at most max), or -errno. */
static int state_pids(pid_t *pids, int max)
{
	DIR *d = opendir(qu_state_dir());
	int n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	for (struct dirent *e; n < max && (e = readdir(d));) {
		int pid = 0, len = 0;
		if (sscanf(e->d_name, "standby-%d.json%n", &pid, &len) == 1 && !e->d_name[len] && pid > 0)
			pids[n++] = pid;
	}
	closedir(d);
	qsort(pids, (size_t)n, sizeof(*pids), cmp_pid);
	return n;
}

#define STATES_MAX 4096

/* `standby status` without --pid: every VM protected here, or that was. */
static int status_all(unsigned flags, FILE *out)
{
	static pid_t pids[STATES_MAX];
	int n = state_pids(pids, STATES_MAX), shown = 0;
	if (n < 0)
		return fail(qu_err(n, "cannot read %s: %s", qu_state_dir(), strerror(-n)));
	if (flags & QU_OUT_JSON)
		fputc('[', out);
	for (int i = 0; i < n; i++) {
		struct qu_standby_state st;
		if (read_state(pids[i], &st) < 0)
			continue; /* one being written or removed now */
		if (flags & QU_OUT_JSON) {
			char *json = qu_standby_state_json(&st);
			fprintf(out, "%s%s", shown ? "," : "", json ? json : "null");
			free(json);
		} else {
			fputs(shown ? "\n" : "", out);
			print_state(&st, flags, out);
		}
		shown++;
	}
	if (flags & QU_OUT_JSON)
		fputs("]\n", out);
	else if (!shown)
		fprintf(out, "no VM is protected on this host (no standby state in %s)\n", qu_state_dir());
	qu_err_clear();
	return 0;
}

int qu_standby_status(pid_t pid, unsigned flags, FILE *out)
{
	if (pid <= 0)
		return status_all(flags, out);
	struct qu_standby_state st;
	int r = read_state(pid, &st);
	if (r < 0)
		return fail(r);
	print_state(&st, flags, out);
	return 0;
}

/* A supervisor that died left the primary wired: the release it would have made. */
static int release_orphan(struct qu_standby_state *st)
{
	uint64_t deadline = qu_now_us() + LEAVE_TIMEOUT_US;
	if (!qu_proc_alive(st->pid, st->pid_start))
		return 0;
	struct guard *g = calloc(1, sizeof(*g));
	if (!g || !(g->vm = calloc(1, sizeof(*g->vm)))) {
		free(g);
		return qu_err(-ENOMEM, "out of memory");
	}
	g->pidfd = -1;
	int r = primary_connect(st, deadline, g->vm, &g->q);
	if (r == 0) {
		g->entry.saved = (struct qu_colo_saved){ .read = st->saved_read, .return_path = st->saved_return_path,
							 .events = st->saved_events,
							 .pause_before_switchover = st->saved_pause_before_switchover,
							 .max_bandwidth = st->saved_max_bandwidth,
							 .checkpoint_delay = st->saved_checkpoint_delay };
		g->entry.migrating = 1;
		g->wired = 1;
		g->disk = 1;
		g->entry.held = 1; /* pause-before-switchover as it was, whatever the start reached */
		g->tls.added = 1;
		r = release_primary(g) ? qu_err(-EIO, "the primary could not be released completely (see above)") : 0;
	}
	guard_free(g);
	free(g);
	return r > 0 ? 0 : r;
}

int qu_standby_stop(pid_t pid, unsigned flags, FILE *out)
{
	struct qu_standby_state st;
	int r = read_state(pid, &st);
	if (r < 0)
		return fail(r);
	if (qu_proc_alive(st.supervisor, st.supervisor_start)) {
		int pfd = qu_pidfd_open(st.supervisor);
		if (pfd < 0 || qu_pidfd_kill(pfd, SIGTERM) < 0) {
			qu_close(&pfd);
			return fail(qu_err(-ESRCH, "cannot signal the supervisor (PID %d)", (int)st.supervisor));
		}
		int p = qu_poll_one(pfd, POLLIN, qu_now_us() + STOP_WAIT_US);
		qu_close(&pfd);
		if (p <= 0)
			return fail(qu_err(-ETIMEDOUT, "the supervisor (PID %d) did not end protection within %llu s",
					   (int)st.supervisor, STOP_WAIT_US / 1000000));
		if ((r = qu_standby_state_read(pid, &st)) < 0)
			return fail(qu_err(r, "the state file of PID %d cannot be read after the stop", (int)pid));
	} else if (protecting(st.state) || !strcmp(st.state, "broken")) {
		qu_info("standby: the supervisor (PID %d) is gone: releasing the primary here", (int)st.supervisor);
		if ((r = release_orphan(&st)) < 0)
			return fail(r);
		snprintf(st.state, sizeof(st.state), "stopped");
		snprintf(st.reason, sizeof(st.reason), "released by `standby stop` after its supervisor was gone");
		qu_standby_state_write(&st);
	}
	print_state(&st, flags, out);
	return 0;
}

int qu_standby_switchover(pid_t pid, unsigned flags, FILE *out)
{
	struct qu_standby_state st;
	int r = read_state(pid, &st);
	if (r < 0)
		return fail(r);
	unsigned asks = st.switchover_asks;
	if (!strcmp(st.state, "protecting") && !st.switchover_capable)
		return fail(qu_err(-EOPNOTSUPP, "the supervisor of PID %d (PID %d) was started by an older qemu-upgrade, "
				   "which takes no switchover (its signal would end it): run `qemu-upgrade standby "
				   "stop --pid %d`, then start protection again", (int)pid, (int)st.supervisor, (int)pid));
	if (strcmp(st.state, "protecting"))
		return fail(qu_err(-EINVAL, "PID %d is not protected now (state %s%s%s): a switchover needs its standby "
				   "protecting it (see `qemu-upgrade standby status --pid %d`)", (int)pid, st.state,
				   st.reason[0] ? ": " : "", st.reason, (int)pid));
	int pfd = qu_pidfd_open(st.supervisor);
	if (pfd < 0 || qu_proc_starttime(st.supervisor) != st.supervisor_start || qu_pidfd_kill(pfd, SIGUSR1) < 0) {
		qu_close(&pfd);
		return fail(qu_err(-ESRCH, "cannot signal the supervisor (PID %d)", (int)st.supervisor));
	}
	/* The supervisor ends once the guest runs there; a switchover that fails leaves it
	 * protecting, and says why in the state. */
	uint64_t deadline = qu_now_us() + SWITCH_WAIT_US;
	int ended = 0;
	while (!ended && qu_now_us() < deadline) {
		ended = qu_poll_one(pfd, POLLIN, qu_now_us() + 100000u) > 0;
		if ((r = qu_standby_state_read(pid, &st)) < 0) {
			qu_close(&pfd);
			return fail(qu_err(r, "the state file of PID %d cannot be read during the switchover", (int)pid));
		}
		if (st.switchover_asks > asks && !strncmp(st.switchover, "failed", 6)) {
			qu_close(&pfd);
			return fail(qu_err(-EIO, "the switchover of PID %d to %s %s", (int)pid, st.host, st.switchover));
		}
	}
	qu_close(&pfd);
	if (!ended)
		return fail(qu_err(-ETIMEDOUT, "the guest of PID %d did not run on %s within %llu s of the switchover "
				   "(state %s%s%s)", (int)pid, st.host, SWITCH_WAIT_US / 1000000, st.state,
				   st.reason[0] ? ": " : "", st.reason));
	if (strcmp(st.state, "failed-over"))
		return fail(qu_err(-EIO, "the switchover of PID %d ended in state %s: %s", (int)pid, st.state, st.reason));
	if (!(flags & QU_OUT_JSON))
		fprintf(out, "switched over: the guest runs on %s in PID %d (%.0f ms from the request)\n", st.host,
			(int)st.standby_pid, st.switchover_ms);
	print_state(&st, flags, out);
	return 0;
}

int qu_standby_recover(FILE *out)
{
	static pid_t pids[STATES_MAX];
	int released = 0, failed = 0, n = state_pids(pids, STATES_MAX);
	for (int i = 0; i < n; i++) {
		struct qu_standby_state st;
		pid_t pid = pids[i];
		if (qu_standby_state_read(pid, &st) < 0)
			continue;
		if (!protecting(st.state) || qu_proc_alive(st.supervisor, st.supervisor_start))
			continue;
		if (release_orphan(&st) < 0) {
			fprintf(out, "PID %d: protected, its standby supervisor (PID %d) is gone, and its release failed: %s\n",
				(int)pid, (int)st.supervisor, qu_err_msg());
			failed++;
			continue;
		}
		snprintf(st.state, sizeof(st.state), "stopped");
		snprintf(st.reason, sizeof(st.reason), "released by --recover after its supervisor (PID %d) was gone",
			 (int)st.supervisor);
		qu_standby_state_write(&st);
		fprintf(out, "PID %d: its standby supervisor (PID %d) was gone: protection ended, the VM runs alone\n",
			(int)pid, (int)st.supervisor);
		released++;
	}
	return failed ? -1 : released;
}
