/* Per-thread cgroups: a management daemon (libvirt) puts each vCPU thread, I/O thread and the
 * emulator threads of a VM in cgroups of their own (v1: a directory per hierarchy, joined by
 * the thread's TID in its "tasks" file; v2: threaded cgroups, "cgroup.threads"). The new QEMU
 * starts with every thread in the old process's cgroups; after the commit each of its threads
 * joins, in every hierarchy, the cgroup of the old QEMU's thread of the same name. Only
 * existing cgroups are joined: nothing is created. Paths are those this tool's mount and
 * cgroup namespaces show. */
#ifndef QU_THREADCG_H
#define QU_THREADCG_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* Thread names are the kernel's comm (15 bytes and a NUL); set by the VM's QEMU: hostile. */
struct qu_thread {
	pid_t tid;
	char name[16];
};

/* A cgroup a thread must join: its hierarchy's /proc/PID/cgroup controllers field and the
 * cgroup's path in that hierarchy. */
struct qu_cgref {
	char controllers[128];
	char path[PATH_MAX];
};

#define QU_THREADCG_MAX_REFS 16

/* One "ID:controllers:path" line of /proc/PID/cgroup (without its newline). -EINVAL when it
 * is not one. */
int qu_threadcg_parse_line(const char *line, struct qu_cgref *ref);
/* The hierarchies (up to max) where a thread's cgroup file text differs from its process's:
 * what it must join. A hierarchy the process is not in is left out. Returns how many. */
int qu_threadcg_diff(const char *proc_text, const char *thread_text, struct qu_cgref *out, int max);
/* The file a thread's TID is written to, to join ref in the hierarchy mounted at mnt: "tasks"
 * (v1) or "cgroup.threads" (v2). -EINVAL for a path that is not absolute or holds a "." or
 * ".." component or a control character, -ENAMETOOLONG when out is too short. */
int qu_threadcg_target(const char *mnt, const struct qu_cgref *ref, char *out, size_t len);
/* For each of the nnew new threads, the index of the old thread it takes the cgroups of, or
 * -1: the k-th new thread of a name gets the k-th old thread of that name (both in TID
 * order). The main threads (index 0 of each, the thread whose TID is the PID) are paired
 * with each other; other threads that bear the main thread's name (QEMU without
 * debug-threads=on names none) are paired with nothing: which is which cannot be told. */
void qu_threadcg_match(const struct qu_thread *old, int nold, const struct qu_thread *neu, int nnew,
		       int *pair);
/* The threads of pid, main thread first, then in TID order (malloc'd array in *out). */
int qu_threadcg_list(pid_t pid, struct qu_thread **out);

/* After the commit, while both QEMUs exist: every thread of to joins the cgroups of from's
 * thread of the same name, where those differ from from's process cgroups. Returns the
 * threads moved; *failed counts threads that could not join one (each logged as a warning
 * naming the thread and the cgroup). -errno only when the threads cannot be listed. */
int qu_thread_cgroups_copy(pid_t from, pid_t to, int *failed);

#endif
