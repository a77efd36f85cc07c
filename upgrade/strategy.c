#include "upgrade/strategy.h"
#include "upgrade/txn.h"

const char *qu_strategy_name(enum qu_strategy s)
{
	static const char *const names[] = {
		[QU_STRATEGY_NONE] = "none",
		[QU_STRATEGY_SHARED] = "shared-ram-handover",
		[QU_STRATEGY_CPR] = "cpr-transfer",
		[QU_STRATEGY_COPY] = "precopy",
		[QU_STRATEGY_STOP_COPY] = "stop-and-copy",
		[QU_STRATEGY_POSTCOPY] = "postcopy",
		[QU_STRATEGY_REMOTE] = "remote-precopy",
		[QU_STRATEGY_REMOTE_STOP] = "remote-stop-and-copy",
		[QU_STRATEGY_CPR_EXEC] = "cpr-exec",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) && names[s] ? names[s] : "?";
}

const struct qu_strategy_ops *qu_strategy_ops(enum qu_strategy s)
{
	switch (s) {
	case QU_STRATEGY_SHARED:
		return &qu_handover_ops;
	case QU_STRATEGY_CPR:
		return &qu_cpr_ops;
	case QU_STRATEGY_COPY:
	case QU_STRATEGY_STOP_COPY:
		return &qu_copy_ops;
	case QU_STRATEGY_POSTCOPY:
		return &qu_postcopy_ops;
	case QU_STRATEGY_REMOTE:
	case QU_STRATEGY_REMOTE_STOP:
		return &qu_remote_ops;
	case QU_STRATEGY_CPR_EXEC:
		return &qu_cpr_exec_ops;
	default:
		return NULL;
	}
}
