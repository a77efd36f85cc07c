/* The agent's side of `--remote` (remote/target.c): the records a tool sends once the
 * connection is sealed, as remote/session.c dispatches them: ARG, ENV, CWD, CONTEXT
 * and FD records (qu_target_add), CALL op=disk (qu_target_disk) and op=tls (qu_target_tls),
 * then what admit and EXEC check first: the launch against the policy (qu_target_check; it
 * walks the paths named, and never makes anything). The calls that start programs (probe,
 * EXEC, resume) are left out. The handshake before the
 * seal is qu_stream_recv and qu_kv_get: fuzz-stream-recv and fuzz-kv.
 * Input: one mode byte (bit 0: put every record's CRC right first), then records. */
#include "tests/fuzz/fuzz.h"
#include "remote/policy.h"
#include "remote/target.h"
#include "upgrade/kv.h"

static struct qu_policy *policy;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char conf[256];
	fuzz_quiet();
	/* A policy that allows the fuzzer's own directory, so that paths get walked. */
	snprintf(conf, sizeof(conf), "%s/agent.conf", fuzz_tmpdir());
	FILE *f = fopen(conf, "w");
	if (f) {
		fprintf(f, "agent_dirs = %s\nagent_users = nobody\n", fuzz_tmpdir());
		fclose(f);
	}
	setenv("QEMU_UPGRADE_CONF", conf, 1);
	policy = qu_policy_load();
	/* qu_target_free removes the session's record there (test hooks on). */
	setenv("QEMU_UPGRADE_STATE_DIR", fuzz_tmpdir(), 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len = size - 1;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);
	if (data[0] & 1)
		fuzz_fix_crcs(buf, len);
	struct qu_target *t = qu_target_new();
	FUZZ_CHECK(t);
	/* The ssh transport's way: the key comes in the tls CALL (psk=), which is parsed. */
	qu_target_tls(t, "", NULL);
	for (size_t off = 0; off < len;) {
		struct qu_rec rec;
		size_t used = 0;
		if (qu_stream_decode(buf + off, len - off, &rec, &used) < 0)
			break;
		off += used;
		int r = 0, end = rec.type == QU_REC_END;
		if (rec.type == QU_REC_CALL) {
			char op[32];
			const char *call = (const char *)rec.payload;
			qu_kv_get(call, "op", op, sizeof(op));
			if (!strcmp(op, "disk"))
				r = qu_target_disk(t, call);
			else if (!strcmp(op, "tls"))
				r = qu_target_tls(t, call, NULL);
		} else if (rec.type != QU_REC_EXEC && !end) {
			r = qu_target_add(t, &rec);
		}
		qu_rec_free(&rec);
		if (r < 0 || end)
			break; /* the session drops the target after a failure */
	}
	FUZZ_CHECK(!qu_target_resumed(t));
	static struct qu_refusals why;
	memset(&why, 0, sizeof(why));
	qu_target_check(t, policy, &why);
	FUZZ_CHECK(why.n <= QU_MAX_REFUSALS);
	qu_target_forget(t);
	qu_target_free(t);
	free(buf);
	return 0;
}
