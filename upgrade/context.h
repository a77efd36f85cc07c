/* The process context a VM's QEMU runs in, read from the old QEMU and reproduced for the new
 * one by the launcher just before it executes QEMU: cgroups (every hierarchy, v1 and v2),
 * resource limits, CPU affinity, scheduling policy and nice value, oom_score_adj, umask,
 * the capability bounding set, supplementary groups, group and user, and the capabilities
 * (ambient ones survive the execve of a non-root QEMU, as they did for the old one); and its
 * confinement: no_new_privs, the LSM label (AppArmor, SELinux), the user namespace's own IDs
 * (the namespaces, root and working directories themselves travel as descriptors), and the
 * seccomp mode, which the plan checks. It travels as a CONTEXT record of the handover stream,
 * "key=value" lines (docs/stream.md). */
#ifndef QU_CONTEXT_H
#define QU_CONTEXT_H

#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#define QU_CTX_MAX_GROUPS 64
#define QU_CTX_MAX_CGROUPS 16

struct qu_context {
	uid_t uid;
	gid_t gid;
	gid_t groups[QU_CTX_MAX_GROUPS];
	int ngroups;
	mode_t umask;
	int nice;
	int policy, sched_priority;
	int oom_score_adj;
	struct rlimit rlim[RLIM_NLIMITS];
	cpu_set_t affinity;
	/* Capability sets as /proc/PID/status shows them (bit N = capability N). */
	unsigned long long cap_inh, cap_prm, cap_eff, cap_amb, cap_bnd;
	char cgroup_procs[QU_CTX_MAX_CGROUPS][PATH_MAX + 32]; /* cgroup.procs files to join */
	int ncgroups;
	int nnp;                 /* no_new_privs: it may gain nothing by an exec */
	int seccomp;             /* 0 none, 1 strict, 2 filters */
	int seccomp_filters;     /* filters it runs under (a parent's, and QEMU's own -sandbox) */
	char lsm[16];            /* "apparmor" or "selinux": the label below is that module's */
	char label[256];         /* its LSM label, "" when none applies (AppArmor "unconfined") */
	int userns;              /* in a user namespace other than ours: ns_uid/ns_gid are its IDs
				  * there, uid/gid/groups the same IDs as this host sees them */
	uid_t ns_uid;
	gid_t ns_gid;
};

int qu_context_read(pid_t pid, struct qu_context *c);
/* Text for the CONTEXT record (malloc'd), and back. */
char *qu_context_encode(const struct qu_context *c);
int qu_context_decode(const char *text, struct qu_context *c);
/* In the launcher's child, before execve, in two steps: what needs this host's view (cgroups,
 * limits, scheduling, the LSM label for the exec, the supplementary groups) before it enters
 * the old QEMU's namespaces, and the identity, capabilities and no_new_privs after (in its user
 * namespace, if it has one). -errno with what names the step that failed. */
int qu_context_apply(const struct qu_context *c, char *what, size_t len);
int qu_context_apply_identity(const struct qu_context *c, char *what, size_t len);
/* Where the cgroup hierarchy with these controllers (a /proc/PID/cgroup field: "" for v2,
 * "cpu,cpuacct", "name=systemd") is mounted in this tool's mount namespace; -ENOENT if not. */
int qu_cgroup_mount(const char *controllers, char *out, size_t len);
/* vCPU and other named threads: the new QEMU's thread gets the CPU affinity of the old
 * QEMU's thread of the same name ("CPU 0/KVM", "CPU 1/TCG", ...). Returns threads matched. */
int qu_thread_affinity_copy(pid_t from, pid_t to);

#endif
