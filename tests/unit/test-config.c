/* /etc/qemu-upgrade.conf parsing (upgrade/config.c), through $QEMU_UPGRADE_CONF. */
#include "unit.h"
#include "upgrade/config.h"

static char conf_path[64];

static void write_conf(const char *text)
{
	snprintf(conf_path, sizeof(conf_path), "/tmp/qu-test-conf.XXXXXX");
	int fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	setenv("QEMU_UPGRADE_CONF", conf_path, 1);
}

static int teardown(void **state)
{
	(void)state;
	if (conf_path[0])
		unlink(conf_path);
	conf_path[0] = '\0';
	unsetenv("QEMU_UPGRADE_CONF");
	return 0;
}

static void missing_file_gives_defaults(void **state)
{
	(void)state;
	static struct qu_config c;
	setenv("QEMU_UPGRADE_CONF", "/nonexistent/qemu-upgrade.conf", 1);
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.enabled, 1);
	assert_int_equal(c.jobs, 4);
	assert_int_equal(c.nexclude, 0);
}

static void settings_comments_and_blanks(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("# a comment\n\nenabled = no   # trailing comment\njobs=7\nexclude = web1 db2, 4242\nallow_copy = yes\nlow_memory = yes\n");
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.allow_copy, 1);
	assert_int_equal(c.low_memory, 1);
	assert_int_equal(c.enabled, 0);
	assert_int_equal(c.jobs, 7);
	assert_int_equal(c.nexclude, 3);
	assert_true(qu_config_excludes(&c, "db2", 1));
	assert_true(qu_config_excludes(&c, "", 4242));
	assert_false(qu_config_excludes(&c, "web", 1));
	assert_false(qu_config_excludes(&c, NULL, 424));
}

static void empty_exclude_is_fine(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("exclude =\n");
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.nexclude, 0);
}

static void unknown_key_names_line(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("enabled = yes\nparallel = 3\n");
	assert_int_equal(qu_config_load(&c), -ENOENT);
	assert_non_null(strstr(qu_err_msg(), ":2: unknown setting 'parallel'"));
}

static void bad_values_are_refused(void **state)
{
	(void)state;
	static struct qu_config c;
	const char *bad[] = { "jobs = 0\n", "jobs = 65\n", "jobs = two\n", "enabled = maybe\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(bad[i]);
		assert_int_equal(qu_config_load(&c), -EINVAL);
		assert_non_null(strstr(qu_err_msg(), ":1: bad value"));
		teardown(NULL);
	}
}

static void binaries_allow_list(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("binaries = /usr/bin/qemu-system-x86_64 /opt/qemu/bin/qemu-system-x86_64\n");
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.nbinaries, 2);
	assert_true(qu_config_allows_binary(&c, "/opt/qemu/bin/qemu-system-x86_64"));
	assert_false(qu_config_allows_binary(&c, "/home/u/qemu-system-x86_64"));
	/* Only absolute paths. */
	write_conf("binaries = qemu-system-x86_64\n");
	assert_int_equal(qu_config_load(&c), -EINVAL);
	/* The same through the explicit path, as the fuzzer and tools call it. */
	assert_int_equal(qu_config_load_file(&c, "/nonexistent/qemu-upgrade.conf"), 0);
	assert_int_equal(c.nbinaries, 0);
}

static void line_without_equals(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("enabled\n");
	assert_int_equal(qu_config_load(&c), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "expected 'key = value'"));
}

static void agent_policy_defaults(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("enabled = yes\n");
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.agent.nbinaries, 0); /* the default set: /usr/bin/qemu-system-* */
	assert_int_equal(c.agent.nusers, 0);
	assert_int_equal(c.agent.ndirs, 0);
	assert_int_equal(c.agent.allow_root, 0);
	assert_int_equal(c.agent.ntls_clients, 0); /* the TLS agent lets no tool in */
	assert_int_equal(c.agent.standby, 0);      /* nor holds a standby */
}

static void agent_policy_keys(void **state)
{
	(void)state;
	static struct qu_config c;
	write_conf("agent_binaries = /usr/bin/qemu-system-x86_64, /opt/q//bin/qemu-system-x86_64\n"
		   "agent_users = libvirt-qemu 1000\nagent_users = qemu\nagent_allow_root = yes\n"
		   "agent_dirs = /var/lib/libvirt/qemu/ //run//vms /\n"
		   "agent_tls_clients = host-a.example, 192.0.2.1\nagent_tls_clients = fd00::1\nagent_standby = yes\n");
	assert_int_equal(qu_config_load(&c), 0);
	assert_int_equal(c.agent.standby, 1);
	assert_int_equal(c.agent.nbinaries, 2);
	assert_string_equal(c.agent.binaries[1], "/opt/q/bin/qemu-system-x86_64");
	/* Lists grow line by line. */
	assert_int_equal(c.agent.nusers, 3);
	assert_string_equal(c.agent.users[0], "libvirt-qemu");
	assert_string_equal(c.agent.users[1], "1000");
	assert_string_equal(c.agent.users[2], "qemu");
	assert_int_equal(c.agent.allow_root, 1);
	/* Directories normalised: single slashes, no trailing one; "/" stays. */
	assert_int_equal(c.agent.ndirs, 3);
	assert_string_equal(c.agent.dirs[0], "/var/lib/libvirt/qemu");
	assert_string_equal(c.agent.dirs[1], "/run/vms");
	assert_string_equal(c.agent.dirs[2], "/");
	assert_int_equal(c.agent.ntls_clients, 3);
	assert_string_equal(c.agent.tls_clients[0], "host-a.example");
	assert_string_equal(c.agent.tls_clients[1], "192.0.2.1");
	assert_string_equal(c.agent.tls_clients[2], "fd00::1");
}

static void agent_policy_bad_values(void **state)
{
	(void)state;
	static struct qu_config c;
	const struct {
		const char *text, *msg;
	} bad[] = {
		{ "agent_users = root\n", "'agent_allow_root = yes' alone" },
		{ "agent_users = 0\n", "'agent_allow_root = yes' alone" },
		{ "agent_users = 000\n", "'agent_allow_root = yes' alone" },
		{ "agent_users = bad/name\n", "user names or numeric uids" },
		{ "agent_users = 99999999999\n", "user names or numeric uids" },
		{ "agent_dirs = relative/dir\n", "absolute paths without '.' or '..'" },
		{ "agent_dirs = /var/../etc\n", "absolute paths without '.' or '..'" },
		{ "agent_dirs = /run/./x\n", "absolute paths without '.' or '..'" },
		{ "agent_binaries = qemu-system-x86_64\n", "absolute paths" },
		{ "agent_allow_root = sometimes\n", "bad value 'sometimes' for 'agent_allow_root'" },
		{ "agent_standby = maybe\n", "bad value 'maybe' for 'agent_standby'" },
		{ "agent_tls_clients = *.example\n", "without wildcards" },
		{ "agent_tls_clients = -oops\n", "without wildcards" },
		{ "agent_tls_clients = a/b\n", "without wildcards" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(bad[i].text);
		assert_int_equal(qu_config_load(&c), -EINVAL);
		if (!strstr(qu_err_msg(), bad[i].msg) || !strstr(qu_err_msg(), ":1: bad value"))
			fail_msg("%s gave: %s", bad[i].text, qu_err_msg());
		teardown(NULL);
	}
	/* Too many: said as such, not as a bad value. */
	char text[2048] = "agent_dirs =";
	for (int i = 0; i <= QU_CONF_MAX_AGENT_DIRS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), " /d%d", i);
	strcat(text, "\n");
	write_conf(text);
	assert_int_equal(qu_config_load(&c), -E2BIG);
	assert_non_null(strstr(qu_err_msg(), "too many values for 'agent_dirs'"));
	/* An unknown agent_ setting is named like any other. */
	teardown(NULL);
	write_conf("agent_user = qemu\n");
	assert_int_equal(qu_config_load(&c), -ENOENT);
	assert_non_null(strstr(qu_err_msg(), "unknown setting 'agent_user'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(missing_file_gives_defaults, teardown),
		cmocka_unit_test_teardown(settings_comments_and_blanks, teardown),
		cmocka_unit_test_teardown(empty_exclude_is_fine, teardown),
		cmocka_unit_test_teardown(unknown_key_names_line, teardown),
		cmocka_unit_test_teardown(bad_values_are_refused, teardown),
		cmocka_unit_test_teardown(line_without_equals, teardown),
		cmocka_unit_test_teardown(binaries_allow_list, teardown),
		cmocka_unit_test_teardown(agent_policy_defaults, teardown),
		cmocka_unit_test_teardown(agent_policy_keys, teardown),
		cmocka_unit_test_teardown(agent_policy_bad_values, teardown),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
