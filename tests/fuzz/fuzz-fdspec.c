/* FD records' payloads: u32 target, u32 kind, the name, then optionally the spec, "key=value"
 * lines describing the descriptor for the agent that re-creates it (upgrade/stream.c
 * qu_stream_validate and qu_rec_fd_spec; upgrade/kv.c on the spec, as remote/recreate.c reads
 * it). Input: the payload. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/kv.h"

#include <limits.h>
#include <net/if.h>

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > QU_STREAM_MAX_PAYLOAD)
		return 0;
	struct qu_rec rec = { .type = QU_REC_FD, .flags = QU_REC_FLAG_FD_ELIDED, .len = (uint32_t)size, .fd = -1 };
	rec.payload = malloc(size + 1);
	if (!rec.payload)
		abort();
	memcpy(rec.payload, data, size);
	rec.payload[size] = '\0';
	if (qu_stream_validate(&rec) == 0) {
		const char *name = (const char *)rec.payload + 8, *spec = qu_rec_fd_spec(&rec);
		FUZZ_CHECK(strlen(name) + 8 < size);
		/* The spec is the second string, or none: either way inside the payload. */
		FUZZ_CHECK(*spec == '\0' || spec == name + strlen(name) + 1);
		FUZZ_CHECK(spec + strlen(spec) <= (const char *)rec.payload + size);
		char path[PATH_MAX], ifname[IFNAMSIZ], big[8192];
		qu_kv_get(spec, "path", path, sizeof(path));
		qu_kv_get(spec, "ifname", ifname, sizeof(ifname));
		FUZZ_CHECK(strlen(ifname) < sizeof(ifname));
		qu_kv_get(spec, "mem-path", big, sizeof(big));
		qu_kv_num(spec, "size", -1);
		qu_kv_num(spec, "queues", 1);
		qu_kv_num(spec, "old_fd", -1);
		char line[256];
		qu_rec_describe(&rec, line, sizeof(line));
	}
	/* With a descriptor said to come, yet none: refused. */
	rec.flags = 0;
	FUZZ_CHECK(qu_stream_validate(&rec) == -EBADMSG);
	free(rec.payload);
	return 0;
}
