#include "upgrade/sandbox.h"
#include "upgrade/log.h"
#include "upgrade/run.h"

#include <errno.h>
#include <grp.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

/* What a process that only reads and writes descriptors it was given, allocates memory and
 * logs needs. */
static const int preauth_calls[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(recvfrom),
	SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(sendmsg), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(close), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(brk), SCMP_SYS(mmap),
	SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(clock_gettime),
	SCMP_SYS(gettimeofday), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(getpid),
	SCMP_SYS(gettid), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(futex),
	SCMP_SYS(getrandom), SCMP_SYS(restart_syscall),
	/* The TLS agent's relay: non-blocking descriptors, and the session told of the tool's end. */
	SCMP_SYS(fcntl), SCMP_SYS(shutdown),
};

int qu_sandbox_preauth(void)
{
	if (getuid() == 0 && (setgroups(0, NULL) < 0 || setresgid(QU_NOBODY, QU_NOBODY, QU_NOBODY) < 0 ||
			      setresuid(QU_NOBODY, QU_NOBODY, QU_NOBODY) < 0))
		return qu_err(-errno, "cannot become nobody: %s", strerror(errno));
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return qu_err(-ENOMEM, "seccomp_init failed");
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(preauth_calls) / sizeof(preauth_calls[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, preauth_calls[i], 0);
	/* libseccomp sets no_new_privs first (SCMP_FLTATR_CTL_NNP). */
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r < 0 ? qu_err(r, "cannot install the seccomp filter: %s", strerror(-r)) : 0;
}

int qu_sandbox_available(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int ok = ctx && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
	seccomp_release(ctx);
	return ok;
}

/* What the rest of an upgrade needs, after inspection. */
static const struct {
	cap_value_t cap;
	const char *name, *why;
} kept[] = {
	{ CAP_SYS_PTRACE, "sys_ptrace", "pidfd_getfd of the old QEMU's descriptors; its /proc entries" },
	{ CAP_KILL, "kill", "signals to the QEMUs of other users (retire, roll back)" },
	{ CAP_SETUID, "setuid", "the new QEMU's user; connecting and probing as the VM's user" },
	{ CAP_SETGID, "setgid", "the new QEMU's groups; the same" },
	{ CAP_SETPCAP, "setpcap", "the new QEMU's bounding set and ambient capabilities" },
	{ CAP_SYS_ADMIN, "sys_admin", "setns() into the old QEMU's namespaces" },
	{ CAP_SYS_CHROOT, "sys_chroot", "its mount namespace and root directory" },
	{ CAP_DAC_OVERRIDE, "dac_override", "the VM's files (pidfile, sockets), cgroup.procs, the journal" },
	{ CAP_DAC_READ_SEARCH, "dac_read_search", "the same, in directories root may not search" },
	{ CAP_FOWNER, "fowner", "the pidfile's copy keeps its owner and mode" },
	{ CAP_CHOWN, "chown", "the same" },
	{ CAP_SYS_RESOURCE, "sys_resource", "the new QEMU's resource limits and oom_score_adj" },
	{ CAP_SYS_NICE, "sys_nice", "its scheduling, nice value and vCPU affinity" },
	{ CAP_NET_ADMIN, "net_admin", "tap queues (TUNSETQUEUE, vnet header size)" },
	{ CAP_MAC_ADMIN, "mac_admin", "the LSM label of the new QEMU" },
};

const char *qu_privs_kept_names(void)
{
	static char names[512];
	if (!names[0])
		for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "," : "", kept[i].name);
	return names;
}

int qu_privs_drop(const struct qu_context *c, unsigned long long also_bounding)
{
	if (geteuid() != 0)
		return 0;
	unsigned long long keep = 0;
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		keep |= 1ULL << kept[i].cap;
	/* What the new QEMU gets from us: a root one, its permitted set again at its exec (from
	 * our bounding set); another, ambient ones (from our permitted and inheritable sets). */
	keep |= c->cap_prm | c->cap_inh | c->cap_amb;
	/* The bounding set is the new QEMU's too (the launcher narrows it to the old QEMU's, and
	 * cannot widen it): only what neither needs leaves it. */
	unsigned long long keep_bounding = keep | c->cap_bnd | also_bounding;
	cap_t caps = cap_get_proc();
	if (!caps)
		return qu_err(-errno, "cap_get_proc: %s", strerror(errno));
	int last = (int)cap_max_bits() - 1, r = 0;
	for (int cap = 0; cap <= last && cap < 64; cap++) {
		if (keep & (1ULL << cap))
			continue;
		cap_value_t v = cap;
		r |= cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_CLEAR);
		r |= cap_set_flag(caps, CAP_PERMITTED, 1, &v, CAP_CLEAR);
		r |= cap_set_flag(caps, CAP_INHERITABLE, 1, &v, CAP_CLEAR);
		if (!(keep_bounding & (1ULL << cap)) && CAP_IS_SUPPORTED(cap) && cap_drop_bound(v) < 0 && errno != EINVAL)
			r = -1;
	}
	if (r == 0 && cap_set_proc(caps) < 0)
		r = -1;
	int e = errno;
	cap_free(caps);
	return r < 0 ? qu_err(-e, "cannot drop capabilities: %s", strerror(e)) : 0;
}
