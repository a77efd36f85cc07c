/* The migration settings an upgrade changes on a QEMU (and puts back on rollback). */
#ifndef QU_MIGRATION_H
#define QU_MIGRATION_H

#include <stddef.h>
#include <stdint.h>

struct qu_qmp;

struct qu_mig_settings {
	int ignore_shared;     /* capability x-ignore-shared */
	int events;            /* capability events (MIGRATION events) */
	int postcopy;          /* capability postcopy-ram (--low-memory) */
	int release_ram;       /* capability release-ram: the source frees pages once sent */
	int pause_switchover;  /* capability pause-before-switchover: the source stops in
				* pre-switchover until migrate-continue (remote disk mirrors end there) */
	int64_t max_bandwidth; /* parameter max-bandwidth, bytes/s; <= 0: leave as it is */
	int64_t downtime_limit; /* parameter downtime-limit, ms; <= 0: leave as it is */
	char mode[24];         /* parameter mode (QEMU >= 10.0: normal, cpr-transfer); "": leave */
	int tls_set;           /* set parameter tls-creds to tls_creds ("" turns TLS off) */
	char tls_creds[64];    /* the id of a tls-creds object (--remote) */
};

/* The name under which the old QEMU gets the migration channel (QMP getfd), and the one
 * under which an undo closes it. */
#define QU_MIG_FDNAME "qemu-upgrade-mig"

/* The statuses a migration ends in (MIGRATION events and query-migrate), NULL-terminated. */
extern const char *const qu_mig_end[];

/* What query-migrate says; counters are 0 and downtime -1 when QEMU did not report them. */
struct qu_mig_status {
	char status[32];          /* "none", "setup", "active", "postcopy-active", "completed", ... */
	char error[256];          /* error-desc, printable, when it failed */
	unsigned long long transferred, remaining, total;
	unsigned long long copied; /* pages sent whole ("normal") times the page size */
	double mbps;
	long long downtime_ms;
};

/* The one parser of query-migrate. */
int qu_mig_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_status *s);
/* A migration runs (neither none nor ended): it can be cancelled. */
int qu_mig_running(const char *status);
/* The source handed the guest over by postcopy: it freed the pages it sent. (With the run
 * state: a "completed" that followed a postcopy counts too, see upgrade/settle.c.) */
int qu_mig_postcopy_status(const char *status);
/* Cancels a running migration and waits for its end: 1 when it cancelled one, 0 when none
 * ran, -errno. */
int qu_mig_cancel(struct qu_qmp *q, uint64_t deadline_us);

int qu_mig_get(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_settings *s);
/* migrate-set-capabilities of n capabilities, names[i] to states[i] (the others as they are). */
int qu_mig_capabilities(struct qu_qmp *q, size_t n, const char *const *names, const int *states,
			uint64_t deadline_us);
int qu_mig_set(struct qu_qmp *q, const struct qu_mig_settings *s, uint64_t deadline_us);
/* The new QEMU's side: sets s, then `migrate-incoming uri`. */
int qu_mig_incoming(struct qu_qmp *q, const struct qu_mig_settings *s, const char *uri, uint64_t deadline_us);
/* The new QEMU has loaded the state when its incoming migration completes; if it exits
 * instead (pidfd readable), or the migration fails, the load failed: -errno with why. */
int qu_mig_wait_incoming(struct qu_qmp *q, int pidfd, uint64_t deadline_us);

#endif
