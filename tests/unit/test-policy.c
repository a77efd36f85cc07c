/* The agent's policy (remote/policy.c): programs, identities and paths against the agent_*
 * settings of the configuration ($QEMU_UPGRADE_CONF), with real files, directories and links
 * in a private directory. */
#include "unit.h"
#include "remote/policy.h"

#include <sched.h>

static char dir[64], conf[128];

/* A policy whose agent_dirs is the private directory, plus extra lines. */
static struct qu_policy *policy(const char *extra)
{
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "agent_dirs = %s\n%s", dir, extra);
	fclose(f);
	struct qu_policy *p = qu_policy_load();
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qu-test-policy.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s.conf", dir);
	setenv("QEMU_UPGRADE_CONF", conf, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, conf);
	assert_int_equal(system(cmd), 0);
	unsetenv("QEMU_UPGRADE_CONF");
	return 0;
}

/* The reasons, joined, for the assertions' messages. */
static const char *said(const struct qu_refusals *r)
{
	static char buf[8192];
	buf[0] = '\0';
	for (unsigned i = 0; i < r->n; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "[%s] ", r->why[i]);
	return buf;
}

static void expect(const struct qu_refusals *r, unsigned count, const char *text)
{
	if (r->n != count || (text && !strstr(said(r), text)))
		fail_msg("expected %u reason(s) with '%s', got %u: %s", count, text ? text : "", r->n, said(r));
}
#define EXPECT(r, count, text) expect((r), (count), (text))

static struct qu_refusals *fresh(void)
{
	static struct qu_refusals r;
	memset(&r, 0, sizeof(r));
	return &r;
}

static void binaries_default_and_listed(void **state)
{
	(void)state;
	struct qu_policy *p = policy("");
	struct qu_refusals *r = fresh();
	qu_policy_binary(p, "/usr/bin/qemu-system-x86_64", 0, r);
	qu_policy_binary(p, "/usr/bin/qemu-system-aarch64", 0, r);
	EXPECT(r, 0, NULL);
	qu_policy_binary(p, "/usr/local/bin/qemu-system-x86_64", 0, r);
	EXPECT(r, 1, "without agent_binaries in");
	r = fresh();
	qu_policy_binary(p, "/usr/bin/qemu-system-../../bin/sh", 0, r);
	qu_policy_binary(p, "/usr/bin/qemu-system-", 0, r);
	qu_policy_binary(p, "/bin/sh", 0, r);
	EXPECT(r, 3, "/usr/bin/qemu-system-*");
	qu_policy_free(p);

	/* A list replaces the default: exact paths only. */
	p = policy("agent_binaries = /opt/qemu/bin/qemu-system-x86_64\n");
	r = fresh();
	qu_policy_binary(p, "/opt/qemu/bin/qemu-system-x86_64", 0, r);
	EXPECT(r, 0, NULL);
	qu_policy_binary(p, "/usr/bin/qemu-system-x86_64", 0, r);
	EXPECT(r, 1, "not in agent_binaries in");
	assert_non_null(strstr(said(r), conf));
	/* Listed, but the file must pass the rule for programs too: this one does not exist. */
	r = fresh();
	qu_policy_binary(p, "/opt/qemu/bin/qemu-system-x86_64", 1, r);
	EXPECT(r, 1, "may not start /opt/qemu/bin/qemu-system-x86_64");
	qu_policy_free(p);
}

/* A listed program in a directory its owner (not root) can write is refused by the rule for
 * programs to run. */
static void binaries_listed_must_be_roots(void **state)
{
	(void)state;
	char prog[128], extra[256];
	snprintf(prog, sizeof(prog), "%s/qemu-system-x86_64", dir);
	int fd = open(prog, O_CREAT | O_WRONLY | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	snprintf(extra, sizeof(extra), "agent_binaries = %s\n", prog);
	struct qu_policy *p = policy(extra);
	struct qu_refusals *r = fresh();
	qu_policy_binary(p, prog, 0, r);
	EXPECT(r, 0, NULL);
	qu_policy_binary(p, prog, 1, r);
	EXPECT(r, 1, "uid 65534");
	qu_policy_free(p);
}

static void identity_root_users_groups(void **state)
{
	(void)state;
	struct qu_context *c = calloc(1, sizeof(*c));
	struct qu_policy *p = policy("");
	struct qu_refusals *r = fresh();
	/* root: only with agent_allow_root. */
	qu_policy_identity(p, c, r);
	EXPECT(r, 1, "'agent_allow_root = yes'");
	qu_policy_free(p);
	p = policy("agent_allow_root = yes\n");
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 0, NULL);
	qu_policy_free(p);

	/* A user not listed; then listed by name, and by number. */
	c->uid = c->gid = 65534;
	p = policy("agent_allow_root = yes\n");
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 1, "uid 65534 (nobody), which is not in agent_users in");
	qu_policy_free(p);
	p = policy("agent_users = nobody\n");
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 0, NULL);
	qu_policy_free(p);
	p = policy("agent_users = 65534\n");
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 0, NULL);

	/* Groups it does not have here (disk: raw block devices), group root, capabilities,
	 * real-time scheduling, a user namespace: each said. */
	c->groups[0] = 6;
	c->ngroups = 1;
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 1, "group(s) 6, which nobody (uid 65534) does not have");
	c->groups[1] = 0;
	c->ngroups = 2;
	c->cap_amb = c->cap_prm = 1ull << 21;
	c->policy = SCHED_FIFO;
	c->userns = 1;
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 5, "group root (gid 0)");
	assert_non_null(strstr(said(r), "capabilities (permitted 200000"));
	assert_non_null(strstr(said(r), "SCHED_FIFO"));
	assert_non_null(strstr(said(r), "user namespace"));
	assert_non_null(strstr(said(r), "group(s) 6, 0"));
	qu_policy_free(p);
	/* A uid with no account here: its groups cannot be checked. */
	memset(c, 0, sizeof(*c));
	c->uid = c->gid = 4000123;
	p = policy("agent_users = 4000123\n");
	r = fresh();
	qu_policy_identity(p, c, r);
	EXPECT(r, 1, "has no account on this host");
	qu_policy_free(p);
	free(c);
}

static void paths_under_allowed_dirs(void **state)
{
	(void)state;
	char path[256], sub[128], link[128], out[] = "/tmp/qu-test-policy-out.sock";
	struct qu_policy *p = policy("");
	struct qu_refusals *r = fresh();
	snprintf(sub, sizeof(sub), "%s/vm1", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	qu_policy_path(p, path, "listening socket", 1, r);
	snprintf(path, sizeof(path), "%s//vm1/./disk.qcow2", dir);
	qu_policy_path(p, path, "disk image", 1, r);
	EXPECT(r, 0, NULL);
	/* Outside: named with the setting and the directory to add. */
	qu_policy_path(p, out, "listening socket", 1, r);
	EXPECT(r, 1, "outside the directories the agent may make files in (agent_dirs in");
	assert_non_null(strstr(said(r), "add /tmp there"));
	/* '..' is never followed, whatever it would lead to. */
	r = fresh();
	snprintf(path, sizeof(path), "%s/vm1/../qmp.sock", dir);
	qu_policy_path(p, path, "pidfile", 0, r);
	EXPECT(r, 1, "'..' in a path is not followed");
	/* A directory that is not there. */
	r = fresh();
	snprintf(path, sizeof(path), "%s/nodir/x.log", dir);
	qu_policy_path(p, path, "log file", 0, r);
	EXPECT(r, 1, "its directory does not exist");
	/* A link the VM's user made on the way (to a directory of the allowed tree, even): refused. */
	r = fresh();
	snprintf(link, sizeof(link), "%s/vm1/link", dir);
	assert_int_equal(chown(sub, 65534, 65534), 0);
	assert_int_equal(symlink(sub, link), 0);
	assert_int_equal(lchown(link, 65534, 65534), 0);
	snprintf(path, sizeof(path), "%s/x.sock", link);
	qu_policy_path(p, path, "listening socket", 1, r);
	EXPECT(r, 1, "is a symbolic link");
	/* The entry itself a link: never followed; an existing one where a new one must go. */
	r = fresh();
	qu_policy_path(p, link, "log file", 0, r);
	EXPECT(r, 1, "is a symbolic link on this host");
	r = fresh();
	snprintf(path, sizeof(path), "%s/vm1/old.sock", dir);
	assert_int_equal(mknod(path, S_IFREG | 0600, 0), 0);
	qu_policy_path(p, path, "listening socket", 1, r);
	EXPECT(r, 1, "exists on this host already");
	r = fresh();
	qu_policy_path(p, path, "log file", 0, r);
	EXPECT(r, 0, NULL);
	qu_policy_path(p, "relative/x", "pidfile", 0, r);
	EXPECT(r, 1, "not an absolute path");
	qu_policy_free(p);
}

/* A root's link in a root's directory is followed, on both sides: an allowed directory named
 * through it, and a path through it. */
static void paths_through_roots_links(void **state)
{
	(void)state;
	char real[128], alias[128], extra[256], path[256];
	snprintf(real, sizeof(real), "%s/real", dir);
	snprintf(alias, sizeof(alias), "%s/alias", dir);
	assert_int_equal(mkdir(real, 0755), 0);
	assert_int_equal(symlink("real", alias), 0);
	FILE *f = fopen(conf, "w");
	fprintf(f, "agent_dirs = %s\n", alias);
	fclose(f);
	(void)extra;
	struct qu_policy *p = qu_policy_load();
	struct qu_refusals *r = fresh();
	snprintf(path, sizeof(path), "%s/vm.pid", real);
	qu_policy_path(p, path, "pidfile", 0, r);
	snprintf(path, sizeof(path), "%s/vm.pid", alias);
	qu_policy_path(p, path, "pidfile", 0, r);
	EXPECT(r, 0, NULL);
	snprintf(path, sizeof(path), "%s/vm.pid", dir);
	qu_policy_path(p, path, "pidfile", 0, r);
	EXPECT(r, 1, "outside the directories");
	qu_policy_free(p);
	/* No directory set: nothing may be made. */
	f = fopen(conf, "w");
	fclose(f);
	p = qu_policy_load();
	r = fresh();
	qu_policy_path(p, path, "pidfile", 0, r);
	EXPECT(r, 1, "none set");
	qu_policy_free(p);
}

static void argv_paths(void **state)
{
	(void)state;
	char serial[192], trace[192], inside[192];
	snprintf(serial, sizeof(serial), "file,id=s0,path=%s/serial.log,logfile=/var/tmp/chardev.log", dir);
	snprintf(inside, sizeof(inside), "file:%s/serial1.log", dir);
	snprintf(trace, sizeof(trace), "enable=*,file=%s/trace.log", dir);
	char *argv[] = {
		(char *)"/usr/bin/qemu-system-x86_64",
		(char *)"-S",
		(char *)"-pidfile", (char *)"/etc/qemu.pid",
		(char *)"-chardev", serial,
		(char *)"-serial", inside,
		(char *)"-serial", (char *)"file:/var/log/vm.log",
		(char *)"-object", (char *)"memory-backend-file,id=m0,size=1M,share=on,mem-path=/proc/self/fd/5",
		(char *)"-object", (char *)"{\"qom-type\":\"memory-backend-file\",\"id\":\"m1\",\"size\":1048576,"
					   "\"mem-path\":\"/dev/shm/vm1\"}",
		(char *)"-chardev", (char *)"socket,id=c0,path=/run/other.sock,server=on,wait=off",
		(char *)"-chardev", (char *)"socket,id=c1,path=/run/client.sock",
		(char *)"-monitor", (char *)"unix:/run/mon.sock,server=on,wait=off",
		(char *)"-vnc", (char *)"unix:/run/vnc.sock",
		(char *)"-trace", trace,
		(char *)"-D", (char *)"/var/log/qemu-debug.log",
		(char *)"-incoming", (char *)"defer",
	};
	struct qu_policy *p = policy("");
	struct qu_refusals *r = fresh();
	qu_policy_argv(p, argv, sizeof(argv) / sizeof(argv[0]), r);
	/* Outside: the pidfile, the chardev's logfile, a serial file, a RAM file, a server
	 * socket, a monitor socket, a VNC socket, -D; not the client socket, the agent's own RAM
	 * descriptor, or what is inside. */
	EXPECT(r, 8, "the pidfile /etc/qemu.pid");
	const char *want[] = { "chardev log /var/tmp/chardev.log", "chardev file /var/log/vm.log",
			       "RAM file (mem-path) /dev/shm/vm1", "server socket /run/other.sock",
			       "server socket /run/mon.sock", "server socket /run/vnc.sock",
			       "QEMU log (-D) /var/log/qemu-debug.log" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(said(r), want[i]))
			fail_msg("no '%s' in: %s", want[i], said(r));
	assert_null(strstr(said(r), "client.sock"));
	assert_null(strstr(said(r), "/proc/self/fd/5"));
	qu_policy_free(p);
}

/* A configuration that cannot be read allows nothing, and every check says why. */
static void unreadable_policy_refuses_all(void **state)
{
	(void)state;
	struct qu_policy *p = policy("agent_users = root\n");
	struct qu_context *c = calloc(1, sizeof(*c));
	c->uid = c->gid = 65534;
	assert_true(p->error < 0);
	struct qu_refusals *r = fresh();
	qu_policy_binary(p, "/usr/bin/qemu-system-x86_64", 0, r);
	EXPECT(r, 1, "this host's policy cannot be read, so nothing is allowed");
	assert_non_null(strstr(said(r), ":2: bad value 'root' for 'agent_users'"));
	qu_policy_identity(p, c, r);
	qu_policy_path(p, "/tmp/x", "pidfile", 0, r);
	EXPECT(r, 1, NULL); /* the same reason, once */
	qu_policy_free(p);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(binaries_default_and_listed, setup, teardown),
		cmocka_unit_test_setup_teardown(binaries_listed_must_be_roots, setup, teardown),
		cmocka_unit_test_setup_teardown(identity_root_users_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(paths_under_allowed_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(paths_through_roots_links, setup, teardown),
		cmocka_unit_test_setup_teardown(argv_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(unreadable_policy_refuses_all, setup, teardown),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
