#include "remote/session.h"
#include "remote/policy.h"
#include "remote/target.h"
#include "qemu-integration/opts.h"
#include "upgrade/clock.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Between two records of one upgrade the tool may mirror disks for a long time. */
#define IDLE_TIMEOUT_US (6ull * 3600 * 1000000u)
/* Starting, or resuming, the new QEMU. */
#define STEP_TIMEOUT_US (120ull * 1000000u)
#define REPLY_MAX 4096
/* Summing a copied disk reads all it holds: a whole disk at a few hundred MB/s. */
#define VERIFY_TIMEOUT_US (3600ull * 1000000u)

struct session {
	int sock;
	const char *host;
	const struct qu_psk *psk; /* derived by both ends; NULL: the tool sends one */
	struct qu_target *target; /* NULL once the upgrade failed (its new QEMU is gone) */
	struct qu_policy *policy; /* this host's, read when the session starts */
};

/* An operation: for a record of type (CALL records: with op=verb), fills reply with what the
 * tool is told; 0 or -errno with a message. */
struct session_op {
	uint16_t type;
	const char *verb;
	int (*run)(struct session *s, struct qu_rec *rec, char *reply, size_t len);
	int says_ok; /* a silent success is answered ok=1; the others only when they have something
		      * to say (the tool does not wait for a launch record, a disk or tls) */
	int keeps; /* a failure is answered and the session goes on: nothing was made (a probe the
		    * policy refused: the tool goes on planning, and asks admit for every reason) */
};

static const char *call_text(const struct qu_rec *rec)
{
	return rec->type == QU_REC_CALL ? (const char *)rec->payload : "";
}

static int bad_record(uint16_t type, int r)
{
	return qu_err(r, "bad %s record: %s", qu_rec_type_name(type), strerror(-r));
}

/* ARG, ENV, CWD, CONTEXT and FD: the launch, kept for EXEC. */
static int launch_record(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	int r = qu_target_add(s->target, rec);
	return r < 0 ? bad_record(rec->type, r) : 0;
}

/* The whole launch against this host's policy: 0, or -EACCES with every reason. */
static int check_launch(struct session *s, struct qu_refusals *why)
{
	qu_target_check(s->target, s->policy, why);
	if (!why->n)
		return 0;
	char *all = qu_refusals_join(why, "; ");
	int r = qu_err(-EACCES, "refused by this host's policy (%u reason%s): %s", qu_refusals_count(why),
		       qu_refusals_count(why) > 1 ? "s" : "", all ? all : why->why[0]);
	free(all);
	return r;
}

/* Nothing is made before the whole launch passed the policy: a tool that did not ask admit
 * first is refused here all the same. */
static int exec_start(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	struct qu_refusals *why = calloc(1, sizeof(*why));
	int r = why ? check_launch(s, why) : -ENOMEM;
	free(why);
	return r < 0 ? r : qu_target_start(s->target, s->host, qu_now_us() + STEP_TIMEOUT_US, reply, len);
}

/* The launch sent so far, judged and forgotten: REPLY allowed=1, or allowed=0 with each
 * reason as why.N (as many as fit) and refused=N. */
static int call_admit(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	struct qu_refusals *why = calloc(1, sizeof(*why));
	if (!why)
		return -ENOMEM;
	qu_target_check(s->target, s->policy, why);
	qu_target_forget(s->target);
	unsigned n = qu_refusals_count(why);
	reply[0] = '\0';
	qu_kv_addf(reply, len, "allowed", "%d", n == 0);
	qu_kv_addf(reply, len, "refused", "%u", n);
	for (unsigned i = 0; i < why->n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "why.%u", i);
		if (qu_kv_add(reply, len, key, why->why[i]) < 0)
			break;
	}
	if (n)
		qu_info("agent: a launch was refused by this host's policy (%u reason%s): %s", n, n > 1 ? "s" : "",
			why->why[0]);
	free(why);
	return 0;
}

/* Only a program the policy allows is run, even as nobody. */
static int call_probe(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	char path[PATH_MAX];
	struct qu_refusals *why = calloc(1, sizeof(*why));
	if (!why)
		return -ENOMEM;
	qu_kv_get(call_text(rec), "binary", path, sizeof(path)); /* a kv value: no newline */
	qu_policy_binary(s->policy, path, 0, why);
	int r = why->n ? qu_err(-EACCES, "refused by this host's policy: %s", why->why[0]) : 0;
	if (r == 0 && (r = qu_target_probe(s->target, call_text(rec), qu_now_us() + STEP_TIMEOUT_US, reply, len)) == 0) {
		/* Whether a standby may be held here: `standby start --dry-run` lists it with the rest. */
		why->n = 0;
		qu_policy_standby(s->policy, why);
		qu_kv_addf(reply, len, "standby", "%d", why->n == 0);
		if (why->n)
			qu_kv_add(reply, len, "standby_refused", why->why[0]);
	}
	free(why);
	return r;
}

static int call_disk(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_disk(s->target, call_text(rec));
}

/* A backing file is read as the user the tool names: only as one the policy would start QEMU
 * as (root only with agent_allow_root), or any file's sum would be the tool's to ask for. */
static int call_chain(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	struct qu_refusals *why = calloc(1, sizeof(*why));
	struct qu_context *who = calloc(1, sizeof(*who));
	int r = why && who ? 0 : -ENOMEM;
	if (r == 0) {
		who->uid = (uid_t)qu_kv_num(call_text(rec), "uid", 0);
		who->gid = (gid_t)qu_kv_num(call_text(rec), "gid", 0);
		qu_policy_identity(s->policy, who, why);
		if (why->n)
			r = qu_err(-EACCES, "refused by this host's policy: %s", why->why[0]);
	}
	free(why);
	free(who);
	return r < 0 ? r : qu_target_chain(s->target, call_text(rec), reply, len);
}

static int call_verify(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_verify(s->target, call_text(rec), qu_now_us() + VERIFY_TIMEOUT_US, reply, len);
}

static int call_tls(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_tls(s->target, call_text(rec), s->psk);
}

static int call_resume(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_resume(s->target, qu_now_us() + STEP_TIMEOUT_US, reply, len);
}

/* Answered as a failure: the new QEMU goes, and the answer comes once it is gone. */
static int call_abort(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_err(-ECANCELED, "the tool called the upgrade off");
}

/* Whether this host may hold a standby (agent_standby): 0, or -EACCES with the reason. */
static int standby_allowed(struct session *s)
{
	struct qu_refusals *why = calloc(1, sizeof(*why));
	if (!why)
		return -ENOMEM;
	qu_policy_standby(s->policy, why);
	int r = why->n ? qu_err(-EACCES, "refused by this host's policy: %s", why->why[0]) : 0;
	free(why);
	return r;
}

static int call_colo(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	int r = standby_allowed(s);
	return r < 0 ? r : qu_target_colo(s->target, call_text(rec), s->host, qu_now_us() + STEP_TIMEOUT_US, reply, len);
}

/* Nothing of a standby is made where none may be held: not even its images. */
static int call_colo_disk(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	int r = standby_allowed(s);
	return r < 0 ? r : qu_target_colo_disk(s->target, call_text(rec));
}

/* The tool saw the primary die: the secondary takes over at once. */
static int call_failover(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_failover(s->target, "the primary QEMU died, says the tool", 1, qu_now_us() + STEP_TIMEOUT_US,
				  reply, len);
}

static int call_heartbeat(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_heartbeat(s->target, reply, len);
}

static const struct session_op session_ops[] = {
	{ QU_REC_ARG, NULL, launch_record, 0, 0 },
	{ QU_REC_ENV, NULL, launch_record, 0, 0 },
	{ QU_REC_CWD, NULL, launch_record, 0, 0 },
	{ QU_REC_CONTEXT, NULL, launch_record, 0, 0 },
	{ QU_REC_FD, NULL, launch_record, 0, 0 },
	{ QU_REC_EXEC, NULL, exec_start, 0, 0 },
	{ QU_REC_CALL, "probe", call_probe, 1, 1 },
	{ QU_REC_CALL, "admit", call_admit, 1, 1 },
	{ QU_REC_CALL, "disk", call_disk, 0, 0 },
	{ QU_REC_CALL, "chain", call_chain, 1, 1 },
	{ QU_REC_CALL, "verify", call_verify, 1, 0 },
	{ QU_REC_CALL, "tls", call_tls, 0, 0 },
	{ QU_REC_CALL, "resume", call_resume, 1, 0 },
	{ QU_REC_CALL, "abort", call_abort, 1, 0 },
	{ QU_REC_CALL, "colo", call_colo, 1, 0 },
	{ QU_REC_CALL, "colo_disk", call_colo_disk, 0, 0 },
	{ QU_REC_CALL, "heartbeat", call_heartbeat, 1, 1 },
	{ QU_REC_CALL, "failover", call_failover, 1, 0 },
};

static const struct session_op *find_op(uint16_t type, const char *verb)
{
	for (size_t i = 0; i < sizeof(session_ops) / sizeof(session_ops[0]); i++)
		if (session_ops[i].type == type && (!session_ops[i].verb || !strcmp(session_ops[i].verb, verb)))
			return &session_ops[i];
	return NULL;
}

/* An operation failed: 0 to read on (the tool is told why), or r to end the session. */
static int failed(struct session *s, int r)
{
	/* Past the `cont` the guest may run here: the tool must never resume its old QEMU, and
	 * this one stays. Before it, the new QEMU goes at once. */
	if (qu_target_resumed(s->target)) {
		qu_stream_send_failure(s->sock, "agent", -ENOTRECOVERABLE);
		return r;
	}
	/* The answer comes once the new QEMU is gone and its files removed: the tool resumes the
	 * old one on it (shared storage: the image's lock must be free). */
	qu_target_free(s->target);
	s->target = NULL;
	qu_stream_send_failure(s->sock, "agent", r);
	return 0;
}

static int dispatch(struct session *s, struct qu_rec *rec)
{
	char reply[REPLY_MAX] = "", verb[32];
	qu_kv_get(call_text(rec), "op", verb, sizeof(verb));
	const struct session_op *op = find_op(rec->type, verb);
	int r;
	if (op)
		r = op->run(s, rec, reply, sizeof(reply));
	else if (rec->type == QU_REC_CALL)
		r = qu_err(-EBADMSG, "unknown request '%s'", verb);
	else
		r = bad_record(rec->type, -EBADMSG);
	if (r < 0 && op && op->keeps) {
		qu_stream_send_failure(s->sock, "agent", r);
		return 0;
	}
	if (r < 0) {
		/* The session ends on it: the log says why, for whoever finds a guest gone. What
		 * the tool sent is quoted in it: no control character reaches the log. */
		char what[sizeof(verb)], why[512];
		qu_copy_printable(what, sizeof(what), op && !verb[0] ? "record" : verb);
		qu_copy_printable(why, sizeof(why), qu_err_msg());
		qu_info("agent: request '%s' failed: %s", what, why);
		return failed(s, r);
	}
	if (op->says_ok && !reply[0])
		qu_kv_add(reply, sizeof(reply), "ok", "1");
	return reply[0] ? qu_stream_send_str(s->sock, QU_REC_REPLY, reply) : 0;
}

/* After a failure (its new QEMU stopped already) only a late abort is answered. */
static int after_failure(struct session *s, const struct qu_rec *rec)
{
	char verb[32];
	qu_kv_get(call_text(rec), "op", verb, sizeof(verb));
	if (!strcmp(verb, "abort"))
		return qu_stream_send_str(s->sock, QU_REC_REPLY, "ok=1\n");
	return qu_stream_send_error(s->sock, EBADMSG, "this upgrade failed already: start a new one");
}

int qu_session_serve(int sock, const char *host, const struct qu_psk *psk)
{
	struct session s = { .sock = sock, .host = host, .psk = psk, .target = qu_target_new(),
			     .policy = qu_policy_load() };
	int r;
	if (!s.target || !s.policy) {
		qu_target_free(s.target);
		qu_policy_free(s.policy);
		return -ENOMEM;
	}
	if (s.policy->error < 0)
		qu_info("agent: %s: every request is refused", s.policy->why);
	qu_target_tls(s.target, "", psk); /* on unless the tool says otherwise */
	for (;;) {
		struct qu_rec rec;
		/* A COLO secondary hears from the primary's supervisor every second: silence means
		 * its host is gone (that supervisor has stopped its QEMU by now), and the guest
		 * continues here. A connection that ends is a supervisor that ended: the primary's
		 * host lives, and its guest too, so the secondary goes. */
		unsigned colo_ms = s.target ? qu_target_colo_timeout_ms(s.target) : 0;
		uint64_t wait = colo_ms ? (uint64_t)colo_ms * 1000u : IDLE_TIMEOUT_US;
		if ((r = qu_stream_recv(sock, qu_now_us() + wait, &rec)) < 0) {
			if (r == -ETIMEDOUT && colo_ms) {
				char why[96], reply[REPLY_MAX];
				snprintf(why, sizeof(why), "no word from the primary's host for %u ms", colo_ms);
				/* Said first: a supervisor that hears it (a link slow, not dead) stops its
				 * QEMU at once instead of running the guest beside this one. */
				qu_stream_send_error(sock, EOWNERDEAD, why);
				if (qu_target_failover(s.target, why, 0, qu_now_us() + STEP_TIMEOUT_US, reply, sizeof(reply)) < 0)
					qu_info("agent: the takeover failed: %s", qu_err_msg());
				break;
			}
			qu_info("agent: the tool went away (%s)", strerror(-r));
			break;
		}
		if (rec.type == QU_REC_END) {
			qu_rec_free(&rec);
			r = 0;
			break;
		}
		r = s.target ? dispatch(&s, &rec) : after_failure(&s, &rec);
		qu_rec_free(&rec);
		if (r < 0)
			break;
	}
	qu_target_free(s.target);
	qu_policy_free(s.policy);
	return r;
}

/* The tool sends HELLO as soon as its transport is up. */
#define HELLO_TIMEOUT_US (30ull * 1000000u)

int qu_session_hello(int sock, const char *transport)
{
	struct qu_rec rec;
	char text[256] = "";
	int r = qu_stream_recv(sock, qu_now_us() + HELLO_TIMEOUT_US, &rec);
	if (r < 0)
		return qu_err(r, "no HELLO from the tool: %s", strerror(-r));
	uint32_t version = rec.type == QU_REC_HELLO && rec.len >= 4 ? qu_get_u32(rec.payload) : 0;
	qu_rec_free(&rec);
	if (version != QU_STREAM_VERSION)
		return qu_stream_send_failure(sock, "agent", qu_err(-EPROTO, "the tool speaks handover stream "
								   "version %u and this agent %u: install the same qemu-upgrade on both hosts",
								   version, QU_STREAM_VERSION));
	qu_kv_add(text, sizeof(text), "agent", "qemu-upgrade");
	qu_kv_addf(text, sizeof(text), "version", "%u", QU_STREAM_VERSION);
	qu_kv_add(text, sizeof(text), "transport", transport);
	return qu_stream_send_str(sock, QU_REC_REPLY, text);
}
