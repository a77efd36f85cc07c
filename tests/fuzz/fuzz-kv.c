/* "key=value" lines (upgrade/kv.c), the text of CONTEXT, CALL and REPLY records: qu_kv_get
 * with every buffer size, qu_kv_num, and qu_kv_add then qu_kv_get giving the value back.
 * Input: the key (up to the first newline), then the text. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/kv.h"

/* The keys the tool and the agent look up in each other's text. */
static const char *const keys[] = { "op", "nonce", "mac", "version", "version_line", "machine",
				    "mem_available", "pid", "migrate", "nbd", "ramblocks", "resumed_us",
				    "announced", "tls", "announce_error", "path", "format", "size",
				    "device", "on", "binary", "uid", "gid", "ifname", "queues", "" };

static void get_all_sizes(const char *text, const char *key)
{
	static const size_t sizes[] = { 0, 1, 2, 7, 32, 4096 };
	char big[4096], buf[4096];
	int r = qu_kv_get(text, key, big, sizeof(big));
	FUZZ_CHECK(r == 0 || (r == -ENOENT && big[0] == '\0'));
	FUZZ_CHECK(strlen(big) < sizeof(big) && !strchr(big, '\n'));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(buf, 'X', sizeof(buf));
		FUZZ_CHECK(qu_kv_get(text, key, buf, sizes[i]) == r);
		if (sizes[i] == 0) {
			FUZZ_CHECK(buf[0] == 'X'); /* nothing written */
			continue;
		}
		/* Cut to fit, never past the buffer: a prefix of the whole value. */
		FUZZ_CHECK(strlen(buf) < sizes[i] && !strncmp(buf, big, strlen(buf)));
		FUZZ_CHECK(sizes[i] == sizeof(buf) || buf[sizes[i]] == 'X');
	}
	long long n = qu_kv_num(text, key, -7);
	if (r < 0 || !big[0])
		FUZZ_CHECK(n == -7);
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_strdup(data, size), *nl = strchr(in, '\n');
	const char *key = in, *text = "";
	if (nl) {
		*nl = '\0';
		text = nl + 1;
	}
	get_all_sizes(text, key);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		get_all_sizes(text, keys[i]);

	/* What qu_kv_add writes, qu_kv_get reads back (the text as one value). */
	char out[8192] = "", back[8192];
	size_t used = 0;
	int r = qu_kv_add(out, sizeof(out), key, text);
	if (strchr(text, '\n') || strlen(key) + strlen(text) + 2 >= sizeof(out)) {
		FUZZ_CHECK(r == -ENOSPC && out[0] == '\0');
	} else {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(qu_kv_get(out, key, back, sizeof(back)) == 0 && !strcmp(back, text));
		used = strlen(out);
	}
	/* A second line for another key leaves the first as it was. */
	if (r == 0 && strcmp(key, "zz") && qu_kv_add(out, sizeof(out), "zz", "1") == 0) {
		FUZZ_CHECK(qu_kv_get(out, key, back, sizeof(back)) == 0 && !strcmp(back, text));
		FUZZ_CHECK(strlen(out) == used + 5);
	}
	free(in);
	return 0;
}
