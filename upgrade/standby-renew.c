/* `standby start --renew`: the way back after a failover in one command. A QEMU that took over
 * as a COLO secondary is no sound primary (on 11.1.3 the guest was corrupt after the next
 * takeover: docs/standby.md, "Failback"), so the guest first moves into a new QEMU process on
 * this host, by the in-place upgrade everyone else gets (the binary it runs, its RAM copied
 * once into shared memory), and the new process, which never was a secondary, is protected. */
#include "qemu-upgrade.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/inspect.h"
#include "upgrade/log.h"
#include "upgrade/standby.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define RENEW_INSPECT_TIMEOUT_US (30ull * 1000 * 1000)

/* Whether the QEMU of pid took over as a COLO secondary and left COLO since: 1, 0, or -errno
 * with a message; its binary's path in exe (empty when it was replaced on disk). */
static int took_over(pid_t pid, char *exe, size_t len)
{
	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_qmp *q = NULL;
	json_object *st = NULL;
	if (!vm)
		return qu_err(-ENOMEM, "out of memory");
	int r = qu_inspect(pid, NULL, 0, qu_now_us() + RENEW_INSPECT_TIMEOUT_US, vm, &q);
	if (r == 0) {
		int asked = qu_qmp_execute(q, "query-colo-status", NULL, -1, qu_now_us() + RENEW_INSPECT_TIMEOUT_US, &st);
		if (asked < 0)
			qu_err_clear(); /* no COLO in it: nothing to renew; the plan says what it lacks */
		r = asked == 0 && st && !strcmp(qu_json_member_str(st, "mode"), "none") &&
		    !strcmp(qu_json_member_str(st, "last-mode"), "secondary");
		snprintf(exe, len, "%s", vm->exe_deleted ? "" : vm->exe_path);
		json_object_put(st);
		qu_qmp_close(q);
	}
	qu_vm_free(vm);
	free(vm);
	return r;
}

int qu_standby_renew(pid_t *pid, unsigned flags, FILE *out)
{
	char exe[4096];
	int r = took_over(*pid, exe, sizeof(exe));
	if (r <= 0)
		return r;
	if (!exe[0])
		return qu_err(-ENOENT, "--renew: the binary of QEMU PID %d was replaced on disk; move the guest into a "
				       "new QEMU first with `qemu-upgrade --pid %d --new-binary PATH --allow-copy`",
			      (int)*pid, (int)*pid);
	qu_info("standby: QEMU PID %d took over as a COLO secondary: the guest moves into a new QEMU first (%s)",
		(int)*pid, exe);
	struct qu_handle *h = qu_new();
	if (!h)
		return qu_err(-ENOMEM, "out of memory");
	r = qu_set_pid(h, *pid) < 0 || qu_set_new_binary(h, exe) < 0 || qu_set_flags(h, QU_FLAG_ALLOW_COPY) < 0 ? -1
														  : qu_upgrade(h);
	if (r < 0) {
		char why[1024];
		int e = qu_get_errno();
		snprintf(why, sizeof(why), "%s", qu_get_error()); /* the message is rewritten below */
		r = qu_err(e > 0 ? -e : -EIO,
			   "--renew: the guest could not move into a new QEMU (%s); it runs on in PID %d, unprotected", why,
			   (int)*pid);
		qu_free(h);
		return r;
	}
	json_object *rep = json_tokener_parse(qu_get_report_json(h) ?: "");
	json_object *v = NULL;
	pid_t fresh = rep && json_object_object_get_ex(rep, "new_pid", &v) ? (pid_t)json_object_get_int(v) : 0;
	double pause = rep && json_object_object_get_ex(rep, "pause_ms", &v) ? json_object_get_double(v) : -1;
	json_object_put(rep);
	qu_free(h);
	if (fresh <= 0)
		return qu_err(-EIO, "--renew: the upgrade of PID %d reported no new PID", (int)*pid);
	if (!(flags & QU_OUT_JSON))
		fprintf(out, "renewed: the guest took over as a COLO secondary in PID %d; it now runs in a new QEMU, "
			     "PID %d (in-place upgrade, paused %.1f ms)\n", (int)*pid, (int)fresh, pause);
	qu_info("standby: the guest runs in PID %d now (paused %.1f ms)", (int)fresh, pause);
	*pid = fresh;
	return 1;
}
