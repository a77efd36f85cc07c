/* The handover stream from a buffer (upgrade/stream.c): qu_stream_decode, qu_stream_validate,
 * qu_rec_describe (dump-stream) and the spec of FD records.
 * Input: one mode byte (bit 0: put every record's CRC right first), then records. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/kv.h"

#include <limits.h>

static void look_at(const struct qu_rec *rec)
{
	char line[512], tiny[6], value[PATH_MAX];
	FUZZ_CHECK(qu_stream_validate(rec) == 0);
	FUZZ_CHECK(rec->payload && rec->payload[rec->len] == '\0');
	qu_rec_describe(rec, line, sizeof(line));
	FUZZ_CHECK(strlen(line) < sizeof(line));
	qu_rec_describe(rec, tiny, sizeof(tiny));
	FUZZ_CHECK(strlen(tiny) < sizeof(tiny));
	if (rec->type == QU_REC_FD) {
		const char *spec = qu_rec_fd_spec(rec);
		FUZZ_CHECK(*spec == '\0' || (spec > (const char *)rec->payload + 8 &&
					   spec + strlen(spec) < (const char *)rec->payload + rec->len));
		qu_kv_get(spec, "path", value, sizeof(value));
		qu_kv_num(spec, "size", -1);
	}
	if (rec->type == QU_REC_CALL || rec->type == QU_REC_REPLY || rec->type == QU_REC_CONTEXT) {
		char op[32];
		qu_kv_get((const char *)rec->payload, "op", op, sizeof(op));
		qu_kv_num((const char *)rec->payload, "pid", 0);
	}
}

FUZZ_QUIET_INIT

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
	for (size_t off = 0; off < len;) {
		struct qu_rec rec;
		size_t used = 0;
		int r = qu_stream_decode(buf + off, len - off, &rec, &used);
		if (r < 0) {
			FUZZ_CHECK(r == -EAGAIN || r == -EBADMSG);
			FUZZ_CHECK(rec.payload == NULL && rec.fd == -1);
			break;
		}
		FUZZ_CHECK(used >= QU_STREAM_HDR_LEN && used <= len - off && used == QU_STREAM_HDR_LEN + rec.len);
		look_at(&rec);
		qu_rec_free(&rec);
		off += used;
	}
	free(buf);
	return 0;
}
