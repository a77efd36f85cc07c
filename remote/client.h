/* The tool's end of `--remote`: a connection to the agent on the destination host, over which
 * the handover stream travels (descriptors as specs) and the agent is asked to probe, start,
 * resume or give up the new QEMU. The transport gives it one connected socket, authenticated
 * and encrypted: ssh:// (remote/ssh/connect.h), or TLS 1.3 with x509 certificates both ways to
 * `agent --listen` (remote/x509/, through a relay process). QEMU's own TLS runs on a fresh
 * random key the tool sends inside that channel with the tls call. */
#ifndef QU_REMOTE_CLIENT_H
#define QU_REMOTE_CLIENT_H

#include "qemu-integration/binary.h"
#include "remote/blk/chain.h"
#include "remote/tls.h"
#include "upgrade/launcher.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qu_ssh;

struct qu_remote {
	int sock;
	char host[256];        /* as the user gave it (ssh://..., or HOST[:PORT]) */
	char migrate_uri[128]; /* tcp:ADDR:PORT where the new QEMU waits for the migration */
	char nbd_addr[128];    /* ADDR:PORT of its NBD server, when disks are copied */
	char *ramblocks;       /* its RAM blocks, "NAME:USED:TOTAL;..." (NULL: not told) */
	pid_t new_pid;         /* the new QEMU, in the destination's PID namespace */
	long long mem_available; /* the destination's MemAvailable at the probe, or -1 */
	int standby;           /* its policy lets it hold a hot standby (agent_standby), at the probe */
	char standby_refused[256]; /* and if not, its words */
	int64_t resumed_us;    /* wall clock of the new QEMU's RESUME event */
	int announced;
	int tls;               /* the new QEMU loaded the state over TLS (its own word) */
	int agent_said;        /* the last failure was the agent's own ERROR answer */
	struct qu_psk psk;     /* the key for QEMU's TLS, fresh for this move */
	int send_psk;          /* the tls call carries psk (both transports encrypt) */
	struct qu_ssh *ssh;    /* ssh: its process and what it said on stderr; NULL over TLS */
	pid_t relay;           /* TLS: the relay process between sock and the TLS connection; 0 over ssh */
};

/* host ssh://...: runs ssh (pki_dir unused). Else connects over TCP to `agent --listen` and
 * runs TLS 1.3 with the certificates in pki_dir (NULL: /etc/pki/qemu-upgrade, remote/x509/
 * creds.h), the agent's certificate checked against HOST. */
int qu_remote_connect(const char *host, const char *pki_dir, uint64_t deadline_us, struct qu_remote **out);
void qu_remote_close(struct qu_remote *r);

/* What the QEMU at path is on the destination (the agent probes it as nobody, with a fixed
 * environment: the VM's does not cross), and whether it has machine type `machine`
 * (has_machine 0/1). */
int qu_remote_probe(struct qu_remote *r, const char *path, const char *machine, uint64_t deadline_us,
		    struct qu_binary *b, int *has_machine);
/* An image the agent creates before the start, and exports for the disk copy; with backing
 * (as written in the old top's header, of backing_format), a new top over the file base (that
 * name resolved), which the agent must have found as base_sum says (qu_remote_chain_ask). */
int qu_remote_disk(struct qu_remote *r, const char *path, const char *format, unsigned long long size,
		   const char *device, const char *backing, const char *backing_format, const char *base,
		   const char *base_sum);
/* --copy-storage-inc: asks the agent to describe the backing file at path there as uid:gid
 * (remote/blk/chain.h); the answer is read with qu_remote_chain_answer(), so that both hosts
 * read their copy at once. */
int qu_remote_chain_ask(struct qu_remote *r, const char *path, unsigned uid, unsigned gid);
/* 0 with *f filled; 1 with why set when the agent could not read its file; -errno. */
int qu_remote_chain_answer(struct qu_remote *r, uint64_t deadline_us, struct qu_file_fact *f, char *why, size_t len);
/* --verify: the agent sums its copy of disk `device` (top: the top layer alone); the answer
 * (sum hex, or 1 with why) comes with qu_remote_verify_answer(). */
int qu_remote_verify_ask(struct qu_remote *r, const char *device, int top);
int qu_remote_verify_answer(struct qu_remote *r, uint64_t deadline_us, char *hex, char *why, size_t len);
/* Whether the agent's QEMU takes the migration and the disk copy over TLS (before the start). */
int qu_remote_tls(struct qu_remote *r, int on);
/* Sends the launch (descriptors elided, with specs) and EXEC; fills new_pid, migrate_uri and
 * nbd_addr. */
int qu_remote_start(struct qu_remote *r, const struct qu_launch *spec, uint64_t deadline_us);
/* Sends the launch as qu_remote_start does, after the disks, and asks whether the agent's
 * policy allows it all (nothing is made there; the agent forgets it, and qu_remote_start sends
 * it again). 0: allowed; 1: refused, each reason of the agent a line of why; -errno. */
int qu_remote_admit(struct qu_remote *r, const struct qu_launch *spec, uint64_t deadline_us, char *why, size_t len);
/* Just before the resume: -ECONNRESET (and hung up) if the agent's session has ended. */
int qu_remote_check(struct qu_remote *r);
/* The source has sent everything: the agent resumes the guest there. */
int qu_remote_resume(struct qu_remote *r, uint64_t deadline_us);
/* Before the resume: the agent stops the new QEMU and removes what it made. */
int qu_remote_abort(struct qu_remote *r, uint64_t deadline_us);
/* standby (remote/standby/): after qu_remote_start, the waiting QEMU becomes a COLO secondary
 * of the VM's netdev, taking over after timeout_ms without a word from us; mirror and compare
 * get the HOST:PORT its filters listen on. */
int qu_remote_colo(struct qu_remote *r, const char *netdev, unsigned timeout_ms, uint64_t deadline_us, char *mirror,
		   char *compare, size_t len);
/* standby with a disk, before qu_remote_start: the agent makes the secondary's active and
 * hidden images (size bytes each) and gives them to its QEMU at descriptors active_fd and
 * hidden_fd (the -drive names /proc/self/fd/N). */
int qu_remote_colo_disk(struct qu_remote *r, int active_fd, int hidden_fd, unsigned long long size);
/* standby's supervisor, every second: 0 while the secondary lives; the agent's error
 * (agent_said set) when it is gone; -ETIMEDOUT when no answer came in time. */
int qu_remote_heartbeat(struct qu_remote *r, uint64_t deadline_us);
/* What the agent said unasked (its socket became readable): -EOWNERDEAD when its secondary
 * took over the guest, else the error it sent, or -ECONNRESET when it hung up. */
int qu_remote_pending(struct qu_remote *r, uint64_t deadline_us);
/* The primary died: the secondary takes over (resumed_us, announced filled). */
int qu_remote_failover(struct qu_remote *r, uint64_t deadline_us);
/* Over ssh, the last line the agent's side wrote on stderr (after a session that ended: what
 * its parent undid); "" otherwise. */
void qu_remote_last_words(struct qu_remote *r, char *buf, size_t len);

#endif
