/* standby with a disk: the agent's check of the tool's op=colo_disk (remote/standby/images.c:
 * the peer's numbers decide which descriptors the secondary QEMU gets and how large the
 * images it makes are), and the tool's rewrite of the VM's quorum -drive (the VM's user
 * wrote that command line) into the secondary's disk graph (secondary-disk.c), and back
 * (qu_colo_promote_drives, for a new QEMU of a guest that took over).
 * Input: the CALL text up to the first NUL byte, then the -drive value. Whatever they hold:
 * an accepted request names two distinct numbers from 3 to 258 and a size from 1 byte to
 * 64 TiB, a refused one leaves nothing asked; a rewritten command line has exactly two more
 * options, all of them -drive values that name no option the rewrite did not put there; put
 * back, it is one quorum drive over the image again, with no reference to the graph. On the
 * VM's command line as it came, the way back changes nothing, or refuses and changes nothing,
 * or removes exactly the two graph drives. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/opts.h"
#include "remote/standby/images.h"
#include "remote/standby/secondary.h"

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	size_t clen = nul ? (size_t)(nul - data) : size;
	char *call = fuzz_strdup(data, clen), *drive = fuzz_strdup(nul ? nul + 1 : data + size, nul ? size - clen - 1 : 0);
	struct qu_colo_images ci = { 0 };
	if (qu_colo_images_ask(&ci, call) == 0) {
		FUZZ_CHECK(ci.asked && ci.target[0] != ci.target[1]);
		for (int i = 0; i < QU_COLO_IMAGES; i++)
			FUZZ_CHECK(ci.target[i] >= 3 && ci.target[i] <= 258);
		FUZZ_CHECK(ci.size >= 1 && ci.size <= (64ull << 40));
	} else {
		FUZZ_CHECK(!ci.asked && !qu_colo_images_uses(&ci, 3));
	}
	char *const cmd[] = { (char *)"q", (char *)"-drive", drive, (char *)"-S", NULL };
	struct qu_argv v;
	if (qu_argv_from_array(4, cmd, &v) == 0) {
		size_t n0 = v.n;
		int r = qu_colo_promote_drives(&v);
		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
		FUZZ_CHECK(v.n == n0);
		qu_err_clear();
		qu_argv_free(&v);
	}
	if (qu_argv_from_array(4, cmd, &v) == 0) {
		size_t n0 = v.n;
		if (qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a,b.qcow2", "qcow2", 40, 41) == 0) {
			FUZZ_CHECK(v.n == n0 + 2 && !strcmp(v.a[v.n - 1].opt, "S"));
			for (size_t i = 0; i + 1 < v.n; i++) {
				struct qu_opts o;
				FUZZ_CHECK(!strcmp(v.a[i].opt, "drive") && qu_opts_parse(v.a[i].val, NULL, &o) == 0);
				const char *id = qu_opts_get(&o, "id");
				FUZZ_CHECK(id && !strcmp(id, i == 0 ? QU_COLO_PARENT_ID : i == 1 ? QU_COLO_CHILD_ID : "colo-disk0"));
				if (i == 0)
					FUZZ_CHECK(!strcmp(qu_opts_get(&o, "file.filename"), "/vm/a,b.qcow2") && o.n == 4);
				if (i == 2) {
					FUZZ_CHECK(!strcmp(qu_opts_get(&o, "driver"), "quorum") &&
						   !strcmp(qu_opts_get(&o, "children.0"), QU_COLO_CHILD_ID));
					for (size_t k = 0; k < o.n; k++)
						FUZZ_CHECK(strncmp(o.v[k].key, "children.", 9) || !strcmp(o.v[k].key, "children.0"));
				}
				qu_opts_free(&o);
			}
			FUZZ_CHECK(qu_colo_promote_drives(&v) == 1 && v.n == n0 && !strcmp(v.a[0].opt, "drive"));
			struct qu_opts o;
			FUZZ_CHECK(qu_opts_parse(v.a[0].val, NULL, &o) == 0);
			FUZZ_CHECK(!strcmp(qu_opts_get(&o, "driver"), "quorum") && !strcmp(qu_opts_get(&o, "id"), "colo-disk0") &&
				   !strcmp(qu_opts_get(&o, "children.0.file.filename"), "/vm/a,b.qcow2") &&
				   !strcmp(qu_opts_get(&o, "children.0.driver"), "qcow2") && !qu_opts_get(&o, "children.0"));
			qu_opts_free(&o);
		}
		qu_argv_free(&v);
	}
	free(call);
	free(drive);
	return 0;
}
