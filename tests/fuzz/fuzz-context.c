/* The process context record (upgrade/context.c): qu_context_decode of the CONTEXT text,
 * and the round trip: what qu_context_encode makes of the result decodes to the same struct.
 * Input: the text. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/context.h"

static struct qu_context a, b; /* ~70 KiB each: off the stack */

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strdup(data, size);
	FUZZ_CHECK(qu_context_decode(text, &a) == 0);
	FUZZ_CHECK(a.ngroups >= 0 && a.ngroups <= QU_CTX_MAX_GROUPS);
	FUZZ_CHECK(a.ncgroups >= 0 && a.ncgroups <= QU_CTX_MAX_CGROUPS);
	for (int i = 0; i < a.ncgroups; i++)
		FUZZ_CHECK(memchr(a.cgroup_procs[i], '\0', sizeof(a.cgroup_procs[i])));
	/* What the encoder leaves out because nothing reads it: the user namespace's IDs outside
	 * one, the LSM's name without a label. */
	if (!a.userns)
		a.ns_uid = a.ns_gid = 0;
	if (!a.label[0])
		memset(a.lsm, 0, sizeof(a.lsm));
	char *enc = qu_context_encode(&a);
	FUZZ_CHECK(enc);
	FUZZ_CHECK(qu_context_decode(enc, &b) == 0);
	/* Both structs were zeroed whole by the decoder, padding included. */
	FUZZ_CHECK(!memcmp(&a, &b, sizeof(a)));
	/* And the text is stable from there on. */
	char *enc2 = qu_context_encode(&b);
	FUZZ_CHECK(enc2 && !strcmp(enc, enc2));
	free(enc2);
	free(enc);
	free(text);
	return 0;
}
