/* The migration settings an upgrade changes on a QEMU (and puts back on rollback). */
#ifndef QU_MIGRATION_H
#define QU_MIGRATION_H

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

int qu_mig_get(struct qu_qmp *q, uint64_t deadline_us, struct qu_mig_settings *s);
int qu_mig_set(struct qu_qmp *q, const struct qu_mig_settings *s, uint64_t deadline_us);
/* The new QEMU's side: sets s, then `migrate-incoming uri`. */
int qu_mig_incoming(struct qu_qmp *q, const struct qu_mig_settings *s, const char *uri, uint64_t deadline_us);
/* The new QEMU has loaded the state when its incoming migration completes; if it exits
 * instead (pidfd readable), or the migration fails, the load failed: -errno with why. */
int qu_mig_wait_incoming(struct qu_qmp *q, int pidfd, uint64_t deadline_us);

#endif
