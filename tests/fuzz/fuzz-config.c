/* /etc/qemu-upgrade.conf (upgrade/config.c): qu_config_load_file on the input, written to a
 * private file. Input: the file. */
#include "tests/fuzz/fuzz.h"
#include "upgrade/config.h"

static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	snprintf(path, sizeof(path), "%s/qemu-upgrade.conf", fuzz_tmpdir());
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qu_config c;
	fuzz_write_file(path, data, size);
	int r = qu_config_load_file(&c, path);
	FUZZ_CHECK(!strcmp(c.path, path));
	/* A malformed line, or an unknown setting (-ENOENT), or too many excluded VMs. */
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOENT || r == -E2BIG);
	FUZZ_CHECK(r == 0 || qu_err_msg()[0]);
	FUZZ_CHECK(c.jobs >= 1 && c.jobs <= 64);
	FUZZ_CHECK(c.enabled == 0 || c.enabled == 1);
	FUZZ_CHECK(c.nexclude >= 0 && c.nexclude <= QU_CONF_MAX_EXCLUDE);
	for (int i = 0; i < c.nexclude; i++) {
		FUZZ_CHECK(memchr(c.exclude[i], '\0', sizeof(c.exclude[i])));
		FUZZ_CHECK(qu_config_excludes(&c, c.exclude[i], -1));
	}
	FUZZ_CHECK(c.nbinaries >= 0 && c.nbinaries <= QU_CONF_MAX_BINARIES);
	for (int i = 0; i < c.nbinaries; i++) {
		FUZZ_CHECK(c.binaries[i][0] == '/' && memchr(c.binaries[i], '\0', sizeof(c.binaries[i])));
		FUZZ_CHECK(qu_config_allows_binary(&c, c.binaries[i]));
	}
	qu_config_excludes(&c, "vm1", 1234);
	qu_config_excludes(&c, NULL, 0);
	return 0;
}
