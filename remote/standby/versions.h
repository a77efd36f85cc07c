/* Which QEMU versions `standby` protects a VM on: an allow list of what was measured
 * (docs/standby-research.md), and for every other version the measured reason it is refused.
 * COLO cannot be tried and rolled back: on the versions that fail, the secondary aborts at the
 * first checkpoint and the primary's monitor hangs with its guest frozen, so the tool must
 * know before it starts. */
#ifndef QU_STANDBY_VERSIONS_H
#define QU_STANDBY_VERSIONS_H

/* NULL when COLO was measured to work on QEMU major.minor.micro; else why not, one sentence
 * naming the version and what to do. */
const char *qu_standby_version_refusal(const int ver[3]);

#endif
