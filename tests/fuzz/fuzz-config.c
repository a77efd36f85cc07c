/* /etc/qemu-upgrade.conf (upgrade/config.c): qu_config_load_file on the input, written to a
 * private file, the agent's policy settings (agent_*) included. Input: the file. */
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
	/* A malformed line, or an unknown setting (-ENOENT), or too many values in a list. */
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
	/* The agent's lists: bounded, paths normalised (absolute, single slashes, no '.' or '..'
	 * component, no trailing slash but "/"), users never root. */
	const struct qu_agent_policy *a = &c.agent;
	FUZZ_CHECK(a->allow_root == 0 || a->allow_root == 1);
	FUZZ_CHECK(a->nbinaries >= 0 && a->nbinaries <= QU_CONF_MAX_BINARIES);
	FUZZ_CHECK(a->ndirs >= 0 && a->ndirs <= QU_CONF_MAX_AGENT_DIRS);
	FUZZ_CHECK(a->nusers >= 0 && a->nusers <= QU_CONF_MAX_AGENT_USERS);
	for (int i = 0; i < a->nbinaries + a->ndirs; i++) {
		const char *d = i < a->nbinaries ? a->binaries[i] : a->dirs[i - a->nbinaries];
		size_t n = strnlen(d, QU_CONF_PATH_MAX);
		FUZZ_CHECK(n < QU_CONF_PATH_MAX && d[0] == '/');
		FUZZ_CHECK(!strstr(d, "//") && !strstr(d, "/./") && !strstr(d, "/../"));
		FUZZ_CHECK(n == 1 || (d[n - 1] != '/' && strcmp(d + n - 2, "/.") && (n < 3 || strcmp(d + n - 3, "/.."))));
	}
	for (int i = 0; i < a->nusers; i++) {
		FUZZ_CHECK(memchr(a->users[i], '\0', sizeof(a->users[i])) && a->users[i][0]);
		FUZZ_CHECK(strcmp(a->users[i], "root") && strspn(a->users[i], "0") != strlen(a->users[i]));
	}
	qu_config_excludes(&c, "vm1", 1234);
	qu_config_excludes(&c, NULL, 0);
	return 0;
}
