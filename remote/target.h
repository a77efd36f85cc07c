/* The new QEMU on the destination of an upgrade to another host, one per agent session: it
 * collects the launch records the tool sends (argv, environment, context, descriptors as
 * specs), has the descriptors and disk images re-created here (remote/recreate.h), starts the
 * new QEMU paused with its incoming migration and NBD exports open, and on the tool's word
 * resumes it (or stops it and removes what was made). What it made is kept in the session's
 * record (remote/record.h). */
#ifndef QU_REMOTE_TARGET_H
#define QU_REMOTE_TARGET_H

#include "qemu-integration/refusals.h"
#include "remote/policy.h"
#include "remote/tls.h"
#include "upgrade/stream.h"

#include <stddef.h>
#include <stdint.h>

struct qu_target;

struct qu_target *qu_target_new(void);
/* Stops a new QEMU that was not resumed and removes the files made for it; frees t. */
void qu_target_free(struct qu_target *t);

/* ARG, ENV, CWD, CONTEXT and FD (elided, with a spec) records: kept for the start. */
int qu_target_add(struct qu_target *t, struct qu_rec *rec);
/* CALL op=probe binary=PATH machine=TYPE: what that QEMU here is and offers, as REPLY text. */
int qu_target_probe(struct qu_target *t, const char *call, uint64_t deadline_us, char *reply, size_t len);
/* CALL op=disk path= format= size= device= [backing= backing_format= base= base_sum=]: an image
 * to create and export for the copy; with backing=, a new top over that backing file, made only
 * if this session checked it (op=chain) for the VM's user and found the old host's sum. */
int qu_target_disk(struct qu_target *t, const char *call);
/* Whether the launch collected so far (program, identity, and every file and socket it would
 * make: images, listening sockets, logs, what its command line makes) stays inside this host's
 * policy: each violation added to out. Nothing is made or started. */
void qu_target_check(const struct qu_target *t, const struct qu_policy *p, struct qu_refusals *out);
/* Forgets the launch collected so far (after a check alone: the tool sends it again to start). */
void qu_target_forget(struct qu_target *t);
/* CALL op=chain path= uid= gid= (--copy-storage-inc, at the plan): this host's facts about a
 * backing file (remote/blk/chain.h), read as that user: REPLY size=, format=, sum=, or error=. */
int qu_target_chain(struct qu_target *t, const char *call, char *reply, size_t len);
/* CALL op=verify device= top=0|1 (--verify, with the copy complete and before the resume): the
 * sum of the copy here (remote/blk/verify.h): REPLY sum=, or error=. */
int qu_target_verify(struct qu_target *t, const char *call, uint64_t deadline_us, char *reply, size_t len);
/* EXEC: makes the descriptors and images, starts the new QEMU paused and listening for the
 * migration on host (this host's address the tool reached), exports the disks over NBD.
 * REPLY text: pid=, migrate=tcp:HOST:PORT, nbd=HOST:PORT (when disks are copied). */
int qu_target_start(struct qu_target *t, const char *host, uint64_t deadline_us, char *reply, size_t len);
/* CALL op=tls on=0|1 [psk=HEX] (before EXEC; on by default): the migration and the disk copy
 * run over TLS with derived, the key both ends derived from the connection, or when NULL with
 * the psk the tool sent in the call (a transport that encrypts). */
int qu_target_tls(struct qu_target *t, const char *call, const struct qu_psk *derived);
/* CALL op=resume: waits for the state to load, ends the NBD exports, resumes the guest and
 * announces its MACs. From here the new QEMU is never stopped by the agent. */
int qu_target_resume(struct qu_target *t, uint64_t deadline_us, char *reply, size_t len);
/* CALL op=colo netdev=ID timeout_ms=N (standby, after EXEC): the waiting QEMU becomes a COLO
 * secondary (remote/standby/wiring.h): REPLY mirror=HOST:PORT compare=HOST:PORT, where the
 * primary's filters connect, over TLS with the session's key. It is never resumed: it goes
 * with the session, unless it took over the guest (qu_target_failover). */
int qu_target_colo(struct qu_target *t, const char *call, const char *host, uint64_t deadline_us, char *reply,
		   size_t len);
/* CALL op=colo_disk active_fd=N hidden_fd=M size=BYTES (standby with a disk, before EXEC): the
 * agent makes the secondary's active and hidden images itself and gives them to its QEMU at
 * descriptors N and M (remote/standby/images.h). */
int qu_target_colo_disk(struct qu_target *t, const char *call);
/* The silence (ms) after which the secondary takes over; 0 when it is not a COLO secondary,
 * took over already, or has not heard the supervisor's first heartbeat (sent once COLO runs). */
unsigned qu_target_colo_timeout_ms(const struct qu_target *t);
/* The secondary takes over the guest (the primary died, or went silent): x-colo-lost-heartbeat,
 * its filters removed, its MACs announced; from then on it stays. primary_dead: the tool saw
 * the primary die, so its stream ended, and the takeover waits a little for the secondary's
 * COLO thread to say it ended (COLO_EXIT) first. REPLY pid= resumed_us= announced=. A
 * secondary that never entered COLO cannot: -EIO. */
int qu_target_failover(struct qu_target *t, const char *why, int primary_dead, uint64_t deadline_us, char *reply,
		       size_t len);
/* CALL op=heartbeat (standby's supervisor, every second): answered at once while the
 * secondary lives (REPLY pid= status=alive), an error when it is gone. */
int qu_target_heartbeat(struct qu_target *t, char *reply, size_t len);
/* 1 once the resume reached the point where the guest may run here (the `cont`). */
int qu_target_resumed(const struct qu_target *t);

#endif
