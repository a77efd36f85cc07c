#include "remote/announce.h"
#include "qemu-integration/qmp.h"
#include "upgrade/log.h"

int qu_announce(struct qu_qmp *q, uint64_t deadline_us)
{
	/* QEMU's own defaults for the announce after an incoming migration: 5 rounds, the first
	 * after 50 ms, 100 ms more between each, at most 550 ms. All four are required. */
	json_object *args = json_object_new_object();
	json_object_object_add(args, "initial", json_object_new_int(50));
	json_object_object_add(args, "max", json_object_new_int(550));
	json_object_object_add(args, "rounds", json_object_new_int(5));
	json_object_object_add(args, "step", json_object_new_int(100));
	int r = qu_qmp_execute(q, "announce-self", args, -1, deadline_us, NULL);
	return r < 0 ? qu_err_wrap(r, "announcing the guest's MAC addresses") : 0;
}
