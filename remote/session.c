#include "remote/session.h"
#include "remote/target.h"
#include "upgrade/clock.h"
#include "upgrade/kv.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <string.h>

/* Between two records of one upgrade the tool may mirror disks for a long time. */
#define IDLE_TIMEOUT_US (6ull * 3600 * 1000000u)
/* Starting, or resuming, the new QEMU. */
#define STEP_TIMEOUT_US (120ull * 1000000u)
#define REPLY_MAX 4096

struct session {
	int sock;
	const char *host;
	const struct qu_psk *psk; /* derived by both ends; NULL: the tool sends one */
	struct qu_target *target; /* NULL once the upgrade failed (its new QEMU is gone) */
};

/* An operation: for a record of type (CALL records: with op=verb), fills reply with what the
 * tool is told; 0 or -errno with a message. */
struct session_op {
	uint16_t type;
	const char *verb;
	int (*run)(struct session *s, struct qu_rec *rec, char *reply, size_t len);
	int says_ok; /* a silent success is answered ok=1; the others only when they have something
		      * to say (the tool does not wait for a launch record, a disk or tls) */
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

static int exec_start(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_start(s->target, s->host, qu_now_us() + STEP_TIMEOUT_US, reply, len);
}

static int call_probe(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_probe(s->target, call_text(rec), qu_now_us() + STEP_TIMEOUT_US, reply, len);
}

static int call_disk(struct session *s, struct qu_rec *rec, char *reply, size_t len)
{
	return qu_target_disk(s->target, call_text(rec));
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

static const struct session_op session_ops[] = {
	{ QU_REC_ARG, NULL, launch_record, 0 },
	{ QU_REC_ENV, NULL, launch_record, 0 },
	{ QU_REC_CWD, NULL, launch_record, 0 },
	{ QU_REC_CONTEXT, NULL, launch_record, 0 },
	{ QU_REC_FD, NULL, launch_record, 0 },
	{ QU_REC_EXEC, NULL, exec_start, 0 },
	{ QU_REC_CALL, "probe", call_probe, 1 },
	{ QU_REC_CALL, "disk", call_disk, 0 },
	{ QU_REC_CALL, "tls", call_tls, 0 },
	{ QU_REC_CALL, "resume", call_resume, 1 },
	{ QU_REC_CALL, "abort", call_abort, 1 },
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
	if (r < 0)
		return failed(s, r);
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
	struct session s = { .sock = sock, .host = host, .psk = psk, .target = qu_target_new() };
	int r;
	if (!s.target)
		return -ENOMEM;
	qu_target_tls(s.target, "", psk); /* on unless the tool says otherwise */
	for (;;) {
		struct qu_rec rec;
		if ((r = qu_stream_recv(sock, qu_now_us() + IDLE_TIMEOUT_US, &rec)) < 0) {
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
	return r;
}
