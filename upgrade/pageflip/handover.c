#include "upgrade/txn.h"

/* The shared-RAM handover: guest RAM is a memfd or a shared file the new QEMU maps too (its
 * descriptor carried with pidfd_getfd), x-ignore-shared on both sides, so the migration
 * sends the device state alone; the new QEMU loads it paused, and its `cont` is the commit
 * point. The pause is the device state's time, whatever the guest's size. */
const struct qu_strategy_ops qu_handover_ops = {
	.moving = "x-ignore-shared: RAM stays in place",
	.prepare = txn_prepare_target,
	.migrate = txn_start_migration,
	.hand_over = txn_precopy_finish,
};
