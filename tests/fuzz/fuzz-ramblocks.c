/* QEMU's RAM blocks (qemu-integration/ramblocks.c): qu_ramblocks_parse of `info ramblock`
 * (from the old QEMU), qu_ramblocks_unpack of the agent's "NAME:USED:TOTAL;..." line (from the
 * other host), and pack/unpack giving back the same blocks.
 * Input: one byte (bit 0: the text is a packed line, else a table), then the text. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/ramblocks.h"

static struct qu_ramblock a[QU_MAX_RAMBLOCKS], b[QU_MAX_RAMBLOCKS];
static char packed[QU_MAX_RAMBLOCKS * (128 + 44)];

static void round_trip(int n)
{
	char why[512];
	int r = qu_ramblocks_pack(a, (size_t)n, packed, sizeof(packed));
	int names_packable = 1;
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(a[i].name[0] && strlen(a[i].name) < sizeof(a[i].name));
		names_packable &= !strpbrk(a[i].name, ";\n");
	}
	if (!names_packable) {
		FUZZ_CHECK(r == -EINVAL);
		return;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(qu_ramblocks_unpack(packed, b, QU_MAX_RAMBLOCKS) == n);
	for (int i = 0; i < n; i++)
		FUZZ_CHECK(!strcmp(a[i].name, b[i].name) && a[i].used == b[i].used && a[i].total == b[i].total);
	qu_ramblocks_compare(a, (size_t)n, b, (size_t)n, why, sizeof(why));
	qu_ramblocks_compare(a, (size_t)n, b, n > 0 ? (size_t)n - 1 : 0, why, sizeof(why));
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_strdup(data + 1, size - 1);
	int n;
	if (data[0] & 1) {
		n = qu_ramblocks_unpack(text, a, QU_MAX_RAMBLOCKS);
		FUZZ_CHECK(n == -EBADMSG || (n >= 0 && n <= QU_MAX_RAMBLOCKS));
		qu_ramblocks_unpack(text, b, 2);
	} else {
		n = qu_ramblocks_parse(text, a, QU_MAX_RAMBLOCKS);
		FUZZ_CHECK(n == -EBADMSG || n == -E2BIG || (n >= 0 && n <= QU_MAX_RAMBLOCKS));
		int m = qu_ramblocks_parse(text, b, 2); /* a table longer than that: -E2BIG */
		FUZZ_CHECK(m == -EBADMSG || m == -E2BIG || (m >= 0 && m <= 2));
		FUZZ_CHECK(n < 0 ? m == n : m == (n > 2 ? -E2BIG : n));
	}
	if (n >= 0)
		round_trip(n);
	free(text);
	return 0;
}
