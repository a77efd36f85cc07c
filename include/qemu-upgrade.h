/* qemu-upgrade: put a new QEMU binary under a running VM.
 *
 * One handle per upgrade. Set the VM and options, call qu_upgrade(), read the report.
 * Every call returns 0 (or a pointer) on success and -1 (or NULL) on failure; the calling
 * thread's qu_get_error() then says what went wrong and what to do, qu_get_errno() why:
 *   ESRCH       no such process
 *   EINVAL      bad argument, or the process is not QEMU
 *   ENOENT      the VM has no QMP monitor we can find, or a resource is missing
 *   EACCES      the new binary is not executable
 *   EOPNOTSUPP  the VM cannot be upgraded (the plan refused it; the VM was not touched)
 *   ETIMEDOUT   a wait ran past the timeout (the VM was rolled back)
 *   other       the upgrade failed and was rolled back: the old QEMU runs the guest
 * The library is not thread-safe per handle; separate handles may run in separate threads. */
#ifndef QEMU_UPGRADE_H
#define QEMU_UPGRADE_H

#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct qu_handle;

/* Only plan: inspect the VM, decide, and report the plan with result "planned". */
#define QU_FLAG_DRY_RUN 0x1u
/* Allow the copy path (QEMU precopy) for RAM that cannot be handed over. Off by default:
 * see README, "Copying guest RAM". */
#define QU_FLAG_ALLOW_COPY 0x2u
/* Copy such RAM with postcopy and release-ram: the host needs little memory beyond one copy
 * of the guest, but from the switch on, a QEMU that dies takes the guest with it. Implies
 * QU_FLAG_ALLOW_COPY; without it, postcopy is still chosen when a precopy would not fit. */
#define QU_FLAG_LOW_MEMORY 0x4u
/* With qu_set_remote(): copy the VM's writable disks to the other host (into new images at
 * the same paths, which must not exist there), or rely on them being there already (shared
 * storage). A VM with writable disks needs one of the two. */
#define QU_FLAG_COPY_STORAGE 0x8u
#define QU_FLAG_SHARED_STORAGE 0x10u
/* With qu_set_remote(): QEMU's migration stream and the disk copy go over plain TCP instead of
 * TLS (a key both sides derive from the authenticated session). For trusted networks only. */
#define QU_FLAG_NO_TLS 0x20u
/* Once the VM is inspected, this process (if root) drops every capability the rest of the
 * upgrade does not need (docs/security.md lists them). For a process that does nothing else
 * afterwards, as the qemu-upgrade command: the capabilities do not come back. */
#define QU_FLAG_DROP_PRIVILEGES 0x40u

struct qu_handle *qu_new(void);
void qu_free(struct qu_handle *h);

int qu_set_pid(struct qu_handle *h, pid_t pid);
/* Default: the binary now on disk at the running QEMU's executable path. */
int qu_set_new_binary(struct qu_handle *h, const char *path);
/* Default: the QMP socket found in the VM's command line. */
int qu_set_qmp_socket(struct qu_handle *h, const char *path);
/* Upgrade onto another host: `qemu-upgrade agent` runs there (HOST, HOST:PORT or
 * [IPV6]:PORT; port 4779 by default) with the same key file as key_path here (NULL:
 * /etc/qemu-upgrade/agent.key). The new binary is the path on that host. Guest RAM is
 * copied over TCP, disks per QU_FLAG_COPY_STORAGE or QU_FLAG_SHARED_STORAGE, and the guest's
 * MACs are announced there after the switch. */
int qu_set_remote(struct qu_handle *h, const char *host, const char *key_path);
/* Deadline for the whole upgrade; default 60000 ms. */
int qu_set_timeout_ms(struct qu_handle *h, unsigned ms);
/* QU_FLAG_*; unknown bits are EINVAL. */
int qu_set_flags(struct qu_handle *h, unsigned flags);

/* For upgrades that copy guest RAM (strategy "precopy"): QEMU's downtime-limit in ms (0: its
 * default) and max-bandwidth in bytes/s (0: unlimited, the default here; QEMU's own default
 * is 128 MiB/s). The old QEMU's settings are restored if the upgrade rolls back. */
int qu_set_copy_limits(struct qu_handle *h, unsigned max_downtime_ms, unsigned long long max_bandwidth);

/* Progress of a copy, about every half second while QEMU sends guest RAM. */
struct qu_progress {
	unsigned long long transferred;  /* bytes sent so far */
	unsigned long long remaining;    /* RAM bytes still to send (QEMU's estimate) */
	unsigned long long total;        /* guest RAM bytes */
	double mbps;                     /* QEMU's current rate, megabits/s */
	double eta_s;                    /* remaining at that rate, seconds; -1 unknown */
};
typedef void (*qu_progress_fn)(const struct qu_progress *p, void *arg);
int qu_set_progress(struct qu_handle *h, qu_progress_fn fn, void *arg);

/* Runs inspect -> plan -> execute -> report. Takes the VM's upgrade lock (one upgrade per VM
 * at a time: EBUSY) and journals each step under /run/qemu-upgrade (or
 * $QEMU_UPGRADE_STATE_DIR); a guardian process settles the upgrade if the caller dies. */
int qu_upgrade(struct qu_handle *h);

/* Async-signal-safe: asks a running qu_upgrade() to stop. Before the commit point it rolls
 * back (ECANCELED); after it, the upgrade finishes. Call it from SIGINT/SIGTERM handlers. */
void qu_cancel(void);

/* Settles every upgrade left behind by a tool and guardian that both died: finishes it if
 * the new QEMU runs the guest, else rolls it back. One line per upgrade goes to out.
 * Returns the number settled (0: nothing to do), or -1 if one could not be settled. */
int qu_recover(FILE *out);

/* After qu_upgrade(): "upgraded", "planned", "refused", "failed" (rolled back, or nothing was
 * touched) or "unsettled" (past the point of no return: a postcopy that switched, or a
 * --remote resume whose answer was lost; the error says where the guest is); NULL before. */
const char *qu_get_result(const struct qu_handle *h);
/* After a failure: 1 if the upgrade had begun changing things (and was rolled back), 0 if it
 * failed while inspecting or planning, before anything was touched. */
int qu_was_touched(const struct qu_handle *h);
/* The report as one JSON object; valid until qu_free(). */
const char *qu_get_report_json(struct qu_handle *h);
int qu_print_report(const struct qu_handle *h, FILE *f);

/* After a planned (dry-run) or refused upgrade: writes the handover stream the launcher would
 * receive (argv, environment, descriptors with FD_ELIDED) to fd, for `dump-stream`. */
int qu_write_stream(const struct qu_handle *h, int fd);

const char *qu_get_error(void);
int qu_get_errno(void);

/* Verbosity of progress lines on stderr: 0 quiet, 1 phases (default), 2 debug (QMP traffic). */
void qu_set_log_level(int level);

#ifdef __cplusplus
}
#endif

#endif
