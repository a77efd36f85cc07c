/* The public entry of `qemu-upgrade standby` (include/qemu-upgrade.h): -1 plus a message at
 * this boundary. The plan (start --dry-run) is here; protecting is upgrade/standby-run.c. */
#include "qemu-upgrade.h"
#include "qemu-integration/qmp.h"
#include "remote/ssh/uri.h"
#include "remote/standby/plan.h"
#include "remote/standby/report.h"
#include "remote/tcp/transport.h"
#include "upgrade/clock.h"
#include "upgrade/inspect.h"
#include "upgrade/log.h"
#include "upgrade/standby.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Inspecting, planning and asking the agent. */
#define STANDBY_PLAN_TIMEOUT_US (60ull * 1000 * 1000)

static int fail(int err)
{
	errno = err < 0 ? -err : err;
	return -1;
}

/* The destination, read as qu_set_remote() reads it: a hostile URI never reaches ssh. */
static int check_host(const char *host, const char *pki_dir)
{
	char name[256];
	int port;
	if (!host || !*host)
		return fail(qu_err(-EINVAL, "where should the secondary run? Give --remote ssh://[USER@]HOST[:PORT] or "
					    "--remote HOST[:PORT] (the TLS agent)"));
	if (qu_ssh_uri_is(host)) {
		struct qu_ssh_uri u;
		if (qu_ssh_uri_parse(host, &u) < 0)
			return fail(-EINVAL);
		if (pki_dir)
			return fail(qu_err(-EINVAL, "--pki-dir names the TLS agent's certificates; over ssh:// ssh's own "
						    "keys authenticate"));
		return 0;
	}
	if (strlen(host) >= 256 || qu_tcp_split(host, QU_AGENT_PORT, name, sizeof(name), &port) < 0 || !name[0] ||
	    port == 0)
		return fail(qu_err(-EINVAL, "invalid remote host '%s': give ssh://[USER@]HOST[:PORT], HOST, HOST:PORT or "
					    "[IPV6]:PORT of a host where `qemu-upgrade agent` runs", host));
	return 0;
}

int qu_standby_check_args(pid_t pid, const char *remote, const char *pki_dir, unsigned *interval_ms, unsigned flags)
{
	if (flags & ~(QU_OUT_JSON | QU_STANDBY_RENEW))
		return fail(qu_err(-EINVAL, "unknown flags 0x%x", flags & ~(QU_OUT_JSON | QU_STANDBY_RENEW)));
	if (pid <= 0)
		return fail(qu_err(-EINVAL, "which VM? Give the PID of its QEMU"));
	if (*interval_ms == 0)
		*interval_ms = QU_STANDBY_INTERVAL_DEFAULT_MS;
	if (*interval_ms < QU_STANDBY_INTERVAL_MIN_MS || *interval_ms > QU_STANDBY_INTERVAL_MAX_MS)
		return fail(qu_err(-EINVAL, "interval %u ms: give %u to %u ms (at 100 ms the guest was paused two thirds "
					    "of the time, docs/standby.md)", *interval_ms, QU_STANDBY_INTERVAL_MIN_MS,
				   QU_STANDBY_INTERVAL_MAX_MS));
	return check_host(remote, pki_dir);
}

int qu_standby_plan(pid_t pid, const char *remote, const char *pki_dir, unsigned interval_ms, unsigned flags,
		    FILE *out)
{
	if (qu_standby_check_args(pid, remote, pki_dir, &interval_ms, flags) < 0)
		return -1;
	uint64_t deadline = qu_now_us() + STANDBY_PLAN_TIMEOUT_US;
	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_standby_plan *p = calloc(1, sizeof(*p));
	struct qu_qmp *q = NULL;
	int r = vm && p ? 0 : qu_err(-ENOMEM, "out of memory"), inspected = r == 0;
	if (inspected)
		r = qu_inspect(pid, NULL, 0, deadline, vm, &q);
	if (r == 0) {
		snprintf(p->host, sizeof(p->host), "%s", remote);
		p->interval_ms = interval_ms;
		p->renew = !!(flags & QU_STANDBY_RENEW);
		r = qu_standby_plan_local(vm, q, deadline, p);
		qu_qmp_close(q);
	}
	if (inspected)
		qu_vm_free(vm); /* inspect set it up, also when it failed */
	free(vm);
	if (r < 0) {
		free(p);
		return fail(r);
	}
	qu_standby_plan_remote(p, pki_dir, deadline);
	if (flags & QU_OUT_JSON) {
		char *json = qu_standby_plan_json(p);
		if (json)
			fprintf(out, "%s\n", json);
		free(json);
	} else {
		qu_standby_plan_print(p, out);
	}
	r = qu_refusals_count(&p->refusals) ? 1 : 0;
	free(p);
	return r;
}
