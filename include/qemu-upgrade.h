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
/* A VM that libvirt runs: while libvirt's daemon (libvirtd or virtqemud) runs it holds the
 * VM's monitor, and the upgrade is refused (EOPNOTSUPP). With this flag the daemon is stopped
 * (its VMs keep running), the VM upgraded, libvirt's status file made to name the new QEMU,
 * and the daemon started again, whatever happened (docs/libvirt.md). */
#define QU_FLAG_LIBVIRT_RESTART 0x80u
/* With qu_set_remote(): as QU_FLAG_COPY_STORAGE, but of a disk whose image has a backing
 * chain only the top image moves, onto a new top over the same backing files, which must be at
 * the same paths on the other host (checked before anything moves: size, format and a sum of
 * their data). (0x100-0x400 are qu_check()'s, qu_upgrade_all()'s and the agent's.) */
#define QU_FLAG_COPY_STORAGE_INC 0x800u
/* With a disk copy: both hosts sum what was copied before the guest resumes on the other
 * host; a difference rolls the move back (the guest stays paused longer by the summing). */
#define QU_FLAG_VERIFY 0x1000u
/* Keep the VM's PID: upgrade by cpr-exec (QEMU >= 10.2 on both sides, shared memfd or file
 * RAM with -machine aux-ram-share=on, no -sandbox spawn=deny): the old QEMU saves its device
 * state and execs the new binary in its own process. For managers that watch the PID. The
 * guest pauses longer (the new QEMU's start-up is inside the pause, ~70-270 ms measured under
 * TCG), and a VM that cannot keep its PID is refused with every reason, not upgraded another
 * way (docs/cpr-exec.md). */
#define QU_FLAG_KEEP_PID 0x2000u

struct qu_handle *qu_new(void);
void qu_free(struct qu_handle *h);

int qu_set_pid(struct qu_handle *h, pid_t pid);
/* Default: the binary now on disk at the running QEMU's executable path. */
int qu_set_new_binary(struct qu_handle *h, const char *path);
/* Default: the QMP socket found in the VM's command line. */
int qu_set_qmp_socket(struct qu_handle *h, const char *path);
/* Upgrade onto another host. host "ssh://[USER@]HOST[:PORT]" (HOST a name, an IPv4 address or
 * [IPV6]): ssh runs `qemu-upgrade agent --stdio` there (BatchMode, the caller's own keys and
 * known_hosts; the command in the environment variable QEMU_UPGRADE_SSH instead of `ssh`, run
 * as git runs GIT_SSH_COMMAND); pki_dir must be NULL. Else the TLS agent: `qemu-upgrade
 * agent --listen` runs there (HOST, HOST:PORT or [IPV6]:PORT; port 4779 by default), and TLS 1.3
 * runs with the x509 certificates in pki_dir (NULL: QU_PKI_DIR, below: ca-cert.pem,
 * client-cert.pem, client-key.pem), the agent's certificate checked against HOST. The new binary is the path on
 * that host. Guest RAM is
 * copied over TCP, disks per QU_FLAG_COPY_STORAGE or QU_FLAG_SHARED_STORAGE, and the guest's
 * MACs are announced there after the switch. */
int qu_set_remote(struct qu_handle *h, const char *host, const char *pki_dir);
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

/* What the command's other subcommands do, for a management daemon that runs no command. */

/* The certificates' directory qu_set_remote(), qu_check() and qu_agent_run() read when given
 * NULL (libvirt's layout: ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
 * client-key.pem; each root's, the keys readable by root alone). */
#define QU_PKI_DIR "/etc/pki/qemu-upgrade"
/* qu_check(), qu_upgrade_all(): print one JSON object instead of a table. Its bits do not
 * overlap the QU_FLAG_* ones, which qu_upgrade_all() takes in the same word. */
#define QU_OUT_JSON 0x100u
/* qu_upgrade_all() as the package hook runs it: nothing happens unless `enabled` is set in
 * /etc/qemu-upgrade.conf, and each VM's result goes to syslog too. */
#define QU_ALL_FROM_HOOK 0x200u
/* qu_agent_run(): serve one upgrade, then return. */
#define QU_AGENT_ONCE 0x400u
/* qu_agent_run(): serve one upgrade on stdin/stdout, as the remote command of ssh (what
 * `--remote ssh://` runs); listen_addr and pki_dir must be NULL. */
#define QU_AGENT_STDIO 0x800u
/* qu_standby_start(), qu_standby_plan(): a guest that took over as a COLO secondary in the
 * QEMU pid (the way back after a failover) first moves into a new QEMU process on this host,
 * an in-place upgrade to the binary it runs with its RAM copied once (QU_FLAG_ALLOW_COPY);
 * the new process is protected. Without it such a QEMU is refused (docs/standby.md,
 * "Failback"). The plan only says it would be done. */
#define QU_STANDBY_RENEW 0x1000u

/* Every running QEMU whose executable was replaced on disk (a package upgrade) moves to the
 * binary now at that path, each in a child process of its own, jobs at a time (1 to 64; 0:
 * `jobs` in /etc/qemu-upgrade.conf). All other VMs are left alone, and so is one whose new
 * binary someone other than root could have changed. binary: only VMs running this path
 * (NULL: any). timeout_ms: each VM's deadline (0: the default). flags: QU_FLAG_DRY_RUN,
 * QU_FLAG_ALLOW_COPY, QU_FLAG_LOW_MEMORY (the last two also from the configuration),
 * QU_FLAG_LIBVIRT_RESTART (libvirt's daemon stopped once for the batch when one of its VMs is
 * in it, and started again after the last), QU_OUT_JSON, QU_ALL_FROM_HOOK; any other bit is
 * EINVAL. Prints a table, or one JSON object,
 * to out. Returns 0 when every replaced VM was upgraded (or planned), 1 when any failed or
 * was refused, -1 when it could not begin (the configuration, /proc, an argument). */
int qu_upgrade_all(const char *binary, unsigned jobs, unsigned timeout_ms, unsigned flags, FILE *out);

/* What this host offers an upgrade (pidfd_getfd, descriptor passing, userfaultfd, ...), one
 * line each with why it matters; with binary, what that QEMU offers too. With remote (as for
 * qu_set_remote()): whether the agent there answers (over ssh, or over TLS with the
 * certificates in pki_dir, NULL: QU_PKI_DIR), and what the QEMU at binary (NULL: /usr/bin/qemu-system-x86_64) is there.
 * flags: 0 or QU_OUT_JSON. Returns 0 when everything an upgrade needs is here, 1 when
 * something is missing (out says what), -1 on a bad argument. */
int qu_check(const char *binary, const char *remote, const char *pki_dir, unsigned flags, FILE *out);

/* The other host's end of qu_set_remote(): listens on listen_addr ("[ADDR:]PORT", "PORT"
 * alone on every address; NULL: port 4779 on every address), runs TLS 1.3 with the
 * certificates in pki_dir (NULL: QU_PKI_DIR: ca-cert.pem, server-cert.pem, server-key.pem),
 * admits only a peer whose certificate the CA signed and agent_tls_clients in
 * /etc/qemu-upgrade.conf names, and serves each upgrade in a child process. Serves until the
 * process is killed, or with QU_AGENT_ONCE returns 0 after one upgrade; -1 when it cannot
 * begin (a certificate missing or unsafe, cannot listen, an unknown flag). With
 * QU_AGENT_STDIO: one upgrade on stdin/stdout (sshd's channel; SSH_CONNECTION names this
 * host's address), then returns 0. */
int qu_agent_run(const char *listen_addr, const char *pki_dir, unsigned flags);

/* `qemu-upgrade standby start --dry-run`: the plan of protecting the VM whose QEMU is pid by
 * a COLO secondary (continuous checkpoints, docs/standby.md) on remote (as qu_set_remote():
 * ssh://[USER@]HOST[:PORT], or the TLS agent with the certificates in pki_dir), a checkpoint
 * every interval_ms (0: 1000; 100 to 60000). Reads the VM (query commands only) and asks the
 * agent there what the VM's binary is at the same path; changes nothing on either host.
 * Prints the plan, or every reason the VM cannot be protected (each with what to do), to out;
 * flags: 0 or QU_OUT_JSON. Returns 0 when the VM can be protected, 1 when it is refused, -1
 * when it could not be judged (a bad argument, the VM or its monitor unreachable). */
int qu_standby_plan(pid_t pid, const char *remote, const char *pki_dir, unsigned interval_ms, unsigned flags,
		    FILE *out);

/* `qemu-upgrade standby start`: protects the VM (the same arguments as qu_standby_plan()):
 * a supervisor process of ours starts the secondary there through the agent, wires COLO's
 * filters, enters COLO and stays behind, holding the agent's session and the VM's monitor.
 * The secondary takes over when the VM's QEMU dies, or after heartbeat_timeout_ms (0: 15000;
 * 4000 to 20000) without a word from the supervisor, which stops the VM's QEMU itself after
 * half of that without an answer. Returns once the VM is protected (0, the state printed to
 * out), refused (1, every blocker printed), or not (-1 with errno and the message; nothing is
 * left on either host). */
int qu_standby_start(pid_t pid, const char *remote, const char *pki_dir, unsigned interval_ms,
		     unsigned heartbeat_timeout_ms, unsigned flags, FILE *out);
/* `standby status`: the state its supervisor last wrote (state, checkpoints, pauses, bytes,
 * the secondary), or -1 (ENOENT) when the VM was never protected here. pid 0: every VM with a
 * state here, in PID order (JSON: an array; none: an empty one, and 0). */
int qu_standby_status(pid_t pid, unsigned flags, FILE *out);
/* `standby stop`: protection ends, the primary keeps running untouched and alone, nothing is
 * left on the other host; a supervisor that died is made up for here. 0, or -1. */
int qu_standby_stop(pid_t pid, unsigned flags, FILE *out);
/* `standby switchover`: the guest moves to the other host on purpose, over its standby: a
 * checkpoint is taken at once, then the VM's QEMU here is stopped (SIGKILL) and the secondary
 * takes over as at a failover. Returns once the guest runs there (0, the state printed to
 * out), or -1 with the message: the VM is not protecting, or the switchover failed (the
 * guest then runs here, still protected, unless the message says otherwise). */
int qu_standby_switchover(pid_t pid, unsigned flags, FILE *out);

/* Decodes a handover stream, as qu_write_stream() writes it, read from fd to its end: one
 * line per record on out, after the record's byte offset. Returns 0, or -1 (EBADMSG) at a
 * damaged or truncated record; the error says at which byte. */
int qu_dump_stream(int fd, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
