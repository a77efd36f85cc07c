/* The primary's side of COLO's start and end (docs/standby.md): the migration that makes the
 * secondary, stopped for the end of its initial copy (the measured workaround for the
 * corruption a live copy leaves), the wait for COLO, and the way out again, which leaves the
 * primary running alone with its settings as they were. */
#ifndef QU_STANDBY_ENTER_H
#define QU_STANDBY_ENTER_H

#include <stdint.h>

struct qu_qmp;

/* The primary's migration settings before protection, put back when it ends. */
struct qu_colo_saved {
	int read;                 /* the fields below were read */
	int return_path, events;  /* capabilities */
	int pause_before_switchover;
	long long max_bandwidth;
	long long checkpoint_delay;
};

/* What runs while the initial copy waits before its switch-over (the guest stopped, the
 * device state not yet sent): 0, or -errno with a message (the start fails). */
typedef int (*qu_colo_switchover_fn)(void *arg);

struct qu_colo_entry {
	struct qu_colo_saved saved;
	/* With a disk: set before qu_colo_enter. The migration is held before its switch-over
	 * (capability pause-before-switchover) and this runs there (remote/standby/replication.h). */
	qu_colo_switchover_fn switchover;
	void *switchover_arg;
	int held;                 /* pause-before-switchover was switched on */
	int migrating;            /* migrate was sent */
	int stopped;              /* we stopped the guest for the end of the initial copy */
	int entered;              /* query-colo-status says primary */
	double pause_ms;          /* the initial copy's pause (STOP to RESUME events), -1 unknown */
};

/* Starts COLO towards uri (the secondary's incoming migration, TLS with tls_id), the settings
 * to put back read into e->saved first (qu_colo_save): capabilities
 * x-colo, return-path and events, x-checkpoint-delay interval_ms, migrate, the guest stopped
 * once the copy's second pass begins (MIGRATION_PASS 2), then waits for COLO and for the
 * guest to run again. With e->switchover, the migration is held before its switch-over and
 * it runs there, the guest stopped. A copy that ends before the stop is not trusted: -EAGAIN. pidfd
 * (the primary QEMU) ends the waits when it dies. 0, or -errno with a message; e says how
 * far it got (for qu_colo_leave). */
int qu_colo_enter(struct qu_qmp *q, int pidfd, const char *uri, unsigned interval_ms, const char *tls_id,
		  uint64_t deadline_us, struct qu_colo_entry *e);
/* The primary's migration settings as they are: what qu_colo_leave puts back. */
int qu_colo_save(struct qu_qmp *q, uint64_t deadline_us, struct qu_colo_saved *saved);

/* A checkpoint now, not at the end of the interval: setting x-checkpoint-delay (to the same
 * interval) makes QEMU's COLO thread take one at once (migration/colo.c,
 * colo_checkpoint_delay_set). 0, or -errno with a message. */
int qu_colo_checkpoint_now(struct qu_qmp *q, unsigned interval_ms, uint64_t deadline_us);

/* Ends protection on the primary, whatever e says was reached: COLO left by failover on this
 * side (x-colo-lost-heartbeat) or the migration cancelled, the guest running (cont only if
 * we stopped it or COLO left it stopped), the settings put back. Returns how many steps
 * failed (each logged); the filters are qu_colo_primary_unwire()'s. */
int qu_colo_leave(struct qu_qmp *q, const struct qu_colo_entry *e, uint64_t deadline_us);

#endif
