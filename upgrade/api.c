/* The public API: one handle, one upgrade; -1 plus a message at this boundary. */
#include "qemu-upgrade.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/execute.h"
#include "upgrade/io.h"
#include "upgrade/journal.h"
#include "upgrade/libvirtgate.h"
#include "upgrade/pvelock.h"
#include "upgrade/settle.h"
#include "upgrade/standby.h"
#include "upgrade/statedir.h"
#include "upgrade/testhooks.h"
#include "upgrade/launcher.h"
#include "upgrade/plan.h"
#include "upgrade/log.h"
#include "upgrade/memory.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/plan.h"
#include "upgrade/report.h"
#include "upgrade/sandbox.h"
#include "qemu-integration/vm.h"
#include "upgrade/inspect.h"
#include "upgrade/inspect-held.h"
#include "qemu-integration/disks.h"
#include "remote/agent.h"
#include "remote/client.h"
#include "remote/ssh/uri.h"
#include "remote/tcp/transport.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct qu_handle {
	pid_t pid;
	char new_binary[PATH_MAX];
	char qmp[QU_SUN_PATH_MAX];
	unsigned timeout_ms;
	unsigned flags;
	int done, inspected, planned, touched;
	int booked;              /* holds a booking in the memory ledger */
	unsigned long long booking; /* its token */
	int lock_fd;
	struct qu_pve_lock pve;
	struct qu_copy_options copy;
	char remote_host[256];
	char pki_dir[PATH_MAX]; /* "" : QU_PKI_DIR */
	struct qu_remote *remote;  /* the agent's connection, while the upgrade runs */
	struct qu_disks *disks;
	struct qu_vm vm;
	struct qu_plan plan;
	struct qu_report rep;
	struct qu_libvirt_gate libvirt; /* a VM libvirt runs: its daemon and status file */
	char *json;
};

static int fail(int err, const char *msg)
{
	qu_err(err, "%s", msg);
	errno = err < 0 ? -err : err;
	return -1;
}

struct qu_handle *qu_new(void)
{
	struct qu_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		qu_err(-ENOMEM, "out of memory");
		return NULL;
	}
	h->timeout_ms = 60000;
	h->lock_fd = -1;
	h->pve.fd = -1;
	return h;
}

void qu_free(struct qu_handle *h)
{
	if (!h)
		return;
	if (h->lock_fd >= 0) {
		char path[PATH_MAX];
		qu_state_path(h->pid, "lock", path, sizeof(path));
		unlink(path); /* still held: nobody can take a stale one */
		close(h->lock_fd);
	}
	qu_pve_lock_release(&h->pve);
	qu_vm_free(&h->vm);
	qu_plan_free(&h->plan);
	qu_remote_close(h->remote);
	free(h->disks);
	free(h->json);
	free(h);
}

int qu_set_pid(struct qu_handle *h, pid_t pid)
{
	if (pid <= 0)
		return fail(-EINVAL, "invalid PID: give the PID of a running QEMU");
	h->pid = pid;
	return 0;
}

int qu_set_new_binary(struct qu_handle *h, const char *path)
{
	if (!path || !*path || strlen(path) >= sizeof(h->new_binary))
		return fail(-EINVAL, "invalid new binary path");
	snprintf(h->new_binary, sizeof(h->new_binary), "%s", path);
	return 0;
}

int qu_set_qmp_socket(struct qu_handle *h, const char *path)
{
	if (!path || !*path || strlen(path) >= sizeof(h->qmp))
		return fail(-EINVAL, "invalid QMP socket path (at most 107 bytes)");
	snprintf(h->qmp, sizeof(h->qmp), "%s", path);
	return 0;
}

int qu_set_remote(struct qu_handle *h, const char *host, const char *pki_dir)
{
	char name[256];
	int port;
	if (qu_ssh_uri_is(host)) {
		/* Read here, before anything runs: a hostile URI never reaches ssh. */
		struct qu_ssh_uri u;
		if (qu_ssh_uri_parse(host, &u) < 0) {
			errno = EINVAL; /* the message is the parser's */
			return -1;
		}
		if (pki_dir)
			return fail(-EINVAL, "--pki-dir names the TLS agent's certificates; over ssh:// ssh's own keys "
					     "authenticate (give others with QEMU_UPGRADE_SSH, e.g. \"ssh -i FILE\")");
		snprintf(h->remote_host, sizeof(h->remote_host), "%s", host);
		h->pki_dir[0] = '\0';
		return 0;
	}
	if (!host || !*host || strlen(host) >= sizeof(h->remote_host) ||
	    qu_tcp_split(host, QU_AGENT_PORT, name, sizeof(name), &port) < 0 || !name[0] || port == 0)
		return fail(-EINVAL, "invalid remote host: give HOST, HOST:PORT or [IPV6]:PORT of a host where "
				     "`qemu-upgrade agent` runs");
	if (pki_dir && (!*pki_dir || strlen(pki_dir) >= sizeof(h->pki_dir) - 32))
		return fail(-EINVAL, "invalid certificate directory");
	snprintf(h->remote_host, sizeof(h->remote_host), "%s", host);
	snprintf(h->pki_dir, sizeof(h->pki_dir), "%s", pki_dir ? pki_dir : QU_PKI_DIR);
	return 0;
}

int qu_set_timeout_ms(struct qu_handle *h, unsigned ms)
{
	if (ms == 0)
		return fail(-EINVAL, "the timeout must be positive");
	h->timeout_ms = ms;
	return 0;
}

int qu_set_flags(struct qu_handle *h, unsigned flags)
{
	if (flags & ~(QU_FLAG_DRY_RUN | QU_FLAG_ALLOW_COPY | QU_FLAG_LOW_MEMORY | QU_FLAG_COPY_STORAGE |
		      QU_FLAG_SHARED_STORAGE | QU_FLAG_NO_TLS | QU_FLAG_DROP_PRIVILEGES | QU_FLAG_LIBVIRT_RESTART |
		      QU_FLAG_COPY_STORAGE_INC | QU_FLAG_VERIFY | QU_FLAG_KEEP_PID))
		return fail(-EINVAL, "unknown flags");
	if ((flags & QU_FLAG_KEEP_PID) && (flags & (QU_FLAG_ALLOW_COPY | QU_FLAG_LOW_MEMORY)))
		return fail(-EINVAL, "--keep-pid and --allow-copy/--low-memory exclude each other: cpr-exec keeps "
				     "guest RAM in place, it never copies it");
	if ((flags & (QU_FLAG_COPY_STORAGE | QU_FLAG_COPY_STORAGE_INC)) && (flags & QU_FLAG_SHARED_STORAGE))
		return fail(-EINVAL, "--copy-storage and --shared-storage exclude each other: the disks are either "
				     "copied or already there");
	if ((flags & QU_FLAG_COPY_STORAGE) && (flags & QU_FLAG_COPY_STORAGE_INC))
		return fail(-EINVAL, "--copy-storage and --copy-storage-inc exclude each other: pick how disks "
				     "with a backing chain move (whole, or only their top image)");
	h->flags = flags;
	return 0;
}

void qu_set_log_level(int level) { qu_log_set_level(level); }

int qu_set_copy_limits(struct qu_handle *h, unsigned max_downtime_ms, unsigned long long max_bandwidth)
{
	h->copy.max_downtime_ms = max_downtime_ms;
	h->copy.max_bandwidth = max_bandwidth;
	return 0;
}

int qu_set_progress(struct qu_handle *h, qu_progress_fn fn, void *arg)
{
	h->copy.progress = fn;
	h->copy.progress_arg = arg;
	return 0;
}

/* --remote: the agent's connection (the plan probes the new binary there) and the VM's disks. */
static int remote_prepare(struct qu_handle *h, struct qu_qmp *old, uint64_t deadline)
{
	int r;
	snprintf(h->rep.remote, sizeof(h->rep.remote), "%s", h->remote_host);
	if (!h->remote && (r = qu_remote_connect(h->remote_host, h->pki_dir[0] ? h->pki_dir : NULL, deadline, &h->remote)) < 0)
		return r;
	if (!h->disks && !(h->disks = calloc(1, sizeof(*h->disks))))
		return qu_err(-ENOMEM, "out of memory");
	if ((r = qu_disks_query(old, deadline, h->disks)) < 0)
		return qu_err_wrap(r, "listing the VM's disks");
	h->plan.remote = h->remote;
	h->plan.disks = h->disks;
	h->plan.copy_storage = !!(h->flags & QU_FLAG_COPY_STORAGE);
	h->plan.shared_storage = !!(h->flags & QU_FLAG_SHARED_STORAGE);
	h->plan.no_tls = !!(h->flags & QU_FLAG_NO_TLS);
	h->plan.copy_storage_inc = !!(h->flags & QU_FLAG_COPY_STORAGE_INC);
	h->plan.verify = !!(h->flags & QU_FLAG_VERIFY);
	qu_info("connected to the agent on %s", h->remote_host);
	return 0;
}

static void finish(struct qu_handle *h, const char *result, uint64_t start)
{
	/* The agent's session ends with the connection (a new QEMU it did not resume goes). */
	qu_remote_close(h->remote);
	h->remote = NULL;
	h->plan.remote = NULL;
	if (h->booked)
		qu_memory_unbook(h->booking);
	h->booked = 0;
	snprintf(h->rep.result, sizeof(h->rep.result), "%s", result);
	h->rep.total_ms = (double)(qu_now_us() - start) / 1000.0;
	if (strcmp(result, "upgraded") && strcmp(result, "planned"))
		snprintf(h->rep.error, sizeof(h->rep.error), "%s", qu_err_msg());
	h->done = 1;
}

static int pipeline(struct qu_handle *h, uint64_t start, uint64_t deadline);
static int pipeline_held(struct qu_handle *h, uint64_t start, uint64_t deadline);

int qu_upgrade(struct qu_handle *h)
{
	uint64_t start = qu_now_us(), deadline = start + (uint64_t)h->timeout_ms * 1000u;
	int r;

	if (h->done || h->pid <= 0)
		return fail(-EINVAL, h->done ? "this handle has run already: make a new one"
					     : "no VM given: set its PID");
	qu_err_clear();
	qu_cancel_enable(1);
	h->rep.start_us = start;
	h->rep.old_pid = h->pid;
	if (!(h->flags & QU_FLAG_DRY_RUN)) {
		h->lock_fd = qu_lock_vm(h->pid);
		if (h->lock_fd < 0) {
			r = h->lock_fd;
			finish(h, "failed", start);
			errno = -r;
			return -1;
		}
	}
	/* libvirt's daemon holds the monitor of its VMs: it is dealt with before inspect. */
	r = qu_libvirt_gate_open(h->pid, !!(h->flags & QU_FLAG_DRY_RUN), !!(h->flags & QU_FLAG_LIBVIRT_RESTART),
				 !!h->remote_host[0], deadline, &h->libvirt, &h->rep.libvirt);
	if (r == 1)
		return pipeline_held(h, start, deadline);
	if (r < 0) {
		int e = errno = -r;
		finish(h, r == -EOPNOTSUPP ? "refused" : "failed", start);
		qu_libvirt_gate_close(&h->libvirt, h->pid, 0, 0, &h->rep.libvirt);
		qu_err(r, "%s", h->rep.error);
		errno = e;
		return -1;
	}
	/* Proxmox's own lock of the VM, for the whole transaction (upgrade/pvelock.h says why). */
	if (!(h->flags & QU_FLAG_DRY_RUN) && (r = qu_pve_lock_take(h->pid, deadline, &h->pve)) < 0) {
		int e = errno = -r;
		finish(h, "failed", start); /* exit 2, as when another upgrade holds the VM */
		qu_libvirt_gate_close(&h->libvirt, h->pid, 0, 0, &h->rep.libvirt);
		qu_err(r, "%s", h->rep.error);
		errno = e;
		return -1;
	}
	int rc = pipeline(h, start, deadline);
	int e = errno;
	qu_pve_lock_release(&h->pve);
	/* Committed: the new QEMU runs the guest (a postcopy past its switch, too). */
	int committed = !strcmp(h->rep.result, "upgraded") || h->rep.unsettled;
	if (h->libvirt.lv.is && !(h->flags & QU_FLAG_DRY_RUN) &&
	    qu_libvirt_gate_close(&h->libvirt, h->pid, h->rep.new_pid, committed, &h->rep.libvirt) < 0 && rc == 0) {
		qu_info("WARNING: %s", h->rep.libvirt.error);
	}
	if (rc < 0 && h->rep.libvirt.error[0])
		qu_info("WARNING: %s", h->rep.libvirt.error);
	h->rep.total_ms = (double)(qu_now_us() - start) / 1000.0;
	errno = e;
	return rc;
}

/* The plan names every blocker: the message lists them all. -1 with errno EOPNOTSUPP. */
static int refused(struct qu_handle *h, uint64_t start)
{
	char *all = qu_refusals_join(&h->plan.refusals, "; ");
	unsigned n = qu_refusals_count(&h->plan.refusals);
	if (n == 1)
		qu_err(-EOPNOTSUPP, "cannot upgrade PID %d: %s", (int)h->pid, all ? all : h->plan.refusals.why[0]);
	else
		qu_err(-EOPNOTSUPP, "cannot upgrade PID %d, %u blockers: %s", (int)h->pid, n,
		       all ? all : h->plan.refusals.why[0]);
	free(all);
	finish(h, "refused", start);
	errno = EOPNOTSUPP;
	return -1;
}

/* A dry run while libvirt's daemon holds the VM's monitor: inspect without it
 * (upgrade/inspect-held.h), plan as always, and add libvirt's own blockers, so that every
 * blocker is named at once; the report says what could not be checked. */
static int pipeline_held(struct qu_handle *h, uint64_t start, uint64_t deadline)
{
	const struct qu_libvirt *lv = &h->libvirt.lv;
	int r = qu_inspect_held(h->pid, lv, h->libvirt.daemon.name, deadline, &h->vm, h->rep.unchecked,
				sizeof(h->rep.unchecked));
	if (r < 0)
		goto failed;
	h->inspected = 1;
	h->plan.allow_copy = !!(h->flags & QU_FLAG_ALLOW_COPY);
	h->plan.low_memory = !!(h->flags & QU_FLAG_LOW_MEMORY);
	r = qu_plan_make(&h->vm, h->new_binary[0] ? h->new_binary : h->vm.exe_path, deadline, &h->plan);
	qu_report_from_plan(&h->rep, &h->vm, r == 0 ? &h->plan : NULL);
	if (r < 0)
		goto failed;
	h->planned = 1;
	if (h->libvirt.refusal[0] || lv->async_job[0]) {
		/* libvirt's blockers first: they are what the operator meets first. */
		struct qu_refusals *plan_said = malloc(sizeof(*plan_said));
		if (!plan_said) {
			r = qu_err(-ENOMEM, "out of memory");
			goto failed;
		}
		*plan_said = h->plan.refusals;
		memset(&h->plan.refusals, 0, sizeof(h->plan.refusals));
		if (h->libvirt.refusal[0])
			qu_refusals_add(&h->plan.refusals, "%s", h->libvirt.refusal);
		if (lv->async_job[0])
			qu_refusals_add(&h->plan.refusals, "libvirt runs a job on domain %s ('%s', says %s): wait for "
					"it to end", lv->name, lv->async_job, lv->status);
		for (unsigned i = 0; i < plan_said->n; i++)
			qu_refusals_add(&h->plan.refusals, "%s", plan_said->why[i]);
		h->plan.refusals.more += plan_said->more;
		free(plan_said);
	}
	if (h->plan.refusals.n)
		return refused(h, start);
	finish(h, "planned", start);
	return 0;
failed:
	finish(h, "failed", start);
	errno = -r;
	return -1;
}

/* inspect -> plan -> execute; finish() sets the result. 0, or -1 with errno. */
static int pipeline(struct qu_handle *h, uint64_t start, uint64_t deadline)
{
	struct qu_qmp *old = NULL;
	int r;
	int rounds = 0;
inspect:
	r = qu_inspect(h->pid, h->qmp[0] ? h->qmp : NULL, h->libvirt.lv.is, deadline, &h->vm, &old);
	h->rep.old_pid = h->pid;
	if (r < 0) {
		finish(h, "failed", start);
		errno = -r;
		return -1;
	}
	h->inspected = 1;
	if ((h->flags & QU_FLAG_DROP_PRIVILEGES) && (r = qu_privs_drop(&h->vm.ctx, h->libvirt.daemon.stopped ? h->libvirt.daemon.cap_bnd : 0)) < 0)
		goto failed;
	qu_info("inspected PID %d: QEMU %d.%d.%d, machine %s, %s", (int)h->pid, h->vm.ver[0], h->vm.ver[1],
		h->vm.ver[2], h->vm.machine, h->vm.runstate);
	h->plan.allow_copy = !!(h->flags & QU_FLAG_ALLOW_COPY);
	h->plan.low_memory = !!(h->flags & QU_FLAG_LOW_MEMORY);
	h->plan.keep_pid = !!(h->flags & QU_FLAG_KEEP_PID);
	if (h->remote_host[0] && (r = remote_prepare(h, old, deadline)) < 0)
		goto failed;
	r = qu_plan_make(&h->vm, h->new_binary[0] ? h->new_binary : h->vm.exe_path, deadline, &h->plan);
	qu_report_from_plan(&h->rep, &h->vm, r == 0 ? &h->plan : NULL);
	if (r < 0)
		goto failed;
	h->planned = 1;
	if (h->plan.refusals.n) {
		qu_qmp_close(old);
		return refused(h, start);
	}
	if (h->flags & QU_FLAG_DRY_RUN) {
		qu_qmp_close(old);
		finish(h, "planned", start);
		return 0;
	}
	/* A copy books its memory in the host-wide ledger, so that copies side by side (--all,
	 * or other invocations) never overcommit the host; it may wait for others to finish. */
	if (h->plan.ram_copy_bytes && !h->plan.remote) {
		r = qu_memory_book(h->plan.memory_needed, &h->vm.ctx, &h->booking);
		if (r == -EBUSY && rounds++ < 100) {
			/* Wait without holding the VM's only QMP connection, then look at the VM and plan
			 * again: both may have changed meanwhile. */
			uint64_t t0 = qu_now_us();
			unsigned long long started = qu_proc_starttime(h->pid);
			qu_qmp_close(old);
			old = NULL;
			r = qu_memory_wait(h->plan.memory_needed, &h->vm.ctx, t0 + 3600ull * 1000000u);
			h->rep.memory_wait_ms += (double)(qu_now_us() - t0) / 1000.0;
			if (r == 0 && !qu_proc_alive(h->pid, started))
				r = qu_err(-ESRCH, "the VM's QEMU (PID %d) exited while its upgrade waited for memory", (int)h->pid);
			if (r < 0)
				goto failed;
			qu_vm_free(&h->vm);
			qu_plan_free(&h->plan);
			memset(&h->vm, 0, sizeof(h->vm));
			memset(&h->plan, 0, sizeof(h->plan));
			h->inspected = h->planned = 0;
			deadline = qu_now_us() + (uint64_t)h->timeout_ms * 1000u;
			goto inspect;
		}
		if (r < 0)
			goto failed;
		h->booked = 1;
	}
	/* The plan read more of /proc/PID: still the process inspect pinned? */
	if ((r = qu_pin_check(&h->vm.pin)) < 0)
		goto failed;
	h->touched = 1;
	r = qu_execute(&h->vm, &h->plan, old, h->lock_fd, &h->copy, deadline, &h->rep);
	if (r < 0)
		goto failed;
	qu_qmp_close(old);
	finish(h, "upgraded", start);
	return 0;
failed:
	qu_qmp_close(old);
	finish(h, h->rep.unsettled ? "unsettled" : "failed", start);
	errno = -r;
	return -1;
}

const char *qu_get_result(const struct qu_handle *h)
{
	return h->done ? h->rep.result : NULL;
}

int qu_was_touched(const struct qu_handle *h) { return h->touched; }

const char *qu_get_report_json(struct qu_handle *h)
{
	if (!h->done) {
		fail(-EINVAL, "no report yet: call qu_upgrade() first");
		return NULL;
	}
	free(h->json);
	h->json = qu_report_json(&h->rep, h->inspected ? &h->vm : NULL, h->planned ? &h->plan : NULL);
	return h->json;
}

int qu_print_report(const struct qu_handle *h, FILE *f)
{
	if (!h->done)
		return fail(-EINVAL, "no report yet: call qu_upgrade() first");
	qu_report_print_text(&h->rep, h->inspected ? &h->vm : NULL, h->planned ? &h->plan : NULL, f);
	return 0;
}

int qu_write_stream(const struct qu_handle *h, int fd)
{
	if (!h->planned)
		return fail(-EINVAL, "no plan to write: run qu_upgrade() with QU_FLAG_DRY_RUN first");
	struct qu_launch_fd fds[QU_MAX_CARRIED];
	size_t n = qu_launch_fds_of(h->plan.fds, h->plan.nfds, NULL, 0, fds);
	char **argv = qu_argv_flatten(&h->plan.argv);
	if (!argv)
		return fail(-ENOMEM, "out of memory");
	char *context = qu_context_encode(&h->vm.ctx);
	struct qu_launch spec = { .argv = argv, .envp = h->vm.env, .cwd = h->vm.cwd[0] ? h->vm.cwd : NULL,
				  .context = context, .fds = fds, .nfds = n };
	int r = qu_launch_send(fd, &spec);
	qu_strv_free(argv);
	free(context);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}


int qu_recover(FILE *out)
{
	DIR *d = opendir(qu_state_dir());
	int settled = 0, failed = 0, busy = 0;
	/* A journal whose lock is held belongs to a transaction that is still running (another
	 * tool, or its guardian): wait a while for it, then leave it alone. */
	const char *hook = qu_test_env("QEMU_UPGRADE_RECOVER_WAIT_MS");
	unsigned wait_ms = hook ? (unsigned)strtoul(hook, NULL, 10) : QU_RECOVER_WAIT_MS;
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return fail(-errno, "cannot read the state directory");
	}
	for (struct dirent *e; (e = readdir(d));) {
		char path[PATH_MAX], what[768];
		size_t l = strlen(e->d_name);
		if (l < 9 || strcmp(e->d_name + l - 8, ".journal"))
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		pid_t holder;
		int lock = qu_lock_vm_wait(pid, wait_ms, &holder);
		if (lock < 0) {
			fprintf(out, "PID %d: %s\n", (int)pid, qu_err_msg());
			busy += lock == -EBUSY;
			failed += lock != -EBUSY;
			continue;
		}
		struct qu_journal j;
		snprintf(path, sizeof(path), "%s/%s", qu_state_dir(), e->d_name);
		int r = qu_journal_read(path, &j);
		if (r == 0)
			r = qu_settle(&j, what, sizeof(what));
		else
			snprintf(what, sizeof(what), "%s", qu_err_msg());
		fprintf(out, "%s\n", what);
		failed += r < 0;
		settled++;
		qu_state_path(pid, "lock", path, sizeof(path));
		unlink(path);
		close(lock);
	}
	closedir(d);
	/* Protected VMs whose supervisor died: their primary is released (its output was held). */
	int sr = qu_standby_recover(out);
	if (sr < 0)
		failed++;
	else
		settled += sr;
	qu_memory_unbook(0); /* bookings of tools that died */
	/* After the VMs are settled: libvirt's daemon, stopped by a tool that died, reconnects
	 * to them as they now are. */
	char what[768];
	int lr = 0;
	if (busy) /* the running transaction starts it again itself, when it is done */
		fprintf(out, "libvirt's daemon, if a tool stopped it, is left to the upgrade still running (it starts "
			     "the daemon again when done); if that upgrade dies, run --recover again\n");
	else if (failed) /* started now, it would find a VM still between two QEMUs */
		fprintf(out, "libvirt's daemon, if a tool stopped it, stays stopped until the upgrades above are "
			     "settled: run --recover again then\n");
	else
		lr = qu_libvirtd_recover(what, sizeof(what));
	if (lr > 0) {
		fprintf(out, "%s\n", what);
		settled++;
	} else if (lr < 0) {
		fprintf(out, "%s\n", qu_err_msg());
		failed++;
	}
	if (busy)
		return fail(-EBUSY, "an upgrade is still running (see above): left as it is");
	if (failed)
		return fail(-EIO, "some upgrades could not be settled: see above");
	return settled;
}

/* Here, not in remote/: the public API sits above the remote floor (README, "Layout"). */
int qu_agent_run(const char *listen_addr, const char *pki_dir, unsigned flags)
{
	char port[16]; /* NULL: the agent's port on every address */
	if (flags & ~(QU_AGENT_ONCE | QU_AGENT_STDIO))
		return fail(-EINVAL, "unknown flags: give 0, QU_AGENT_ONCE or QU_AGENT_STDIO");
	if (flags & QU_AGENT_STDIO) {
		if (listen_addr || pki_dir || (flags & QU_AGENT_ONCE))
			return fail(-EINVAL, "--stdio serves one upgrade over ssh: no address, certificates or --once with it");
		return qu_agent_stdio();
	}
	snprintf(port, sizeof(port), "%d", QU_AGENT_PORT);
	return qu_agent_serve(listen_addr ? listen_addr : port, pki_dir ? pki_dir : QU_PKI_DIR,
			      !!(flags & QU_AGENT_ONCE));
}

const char *qu_get_error(void) { return qu_err_msg(); }
int qu_get_errno(void) { return qu_err_errno(); }
