/* The agent's policy (remote/policy.c): programs, identities and paths against the agent_*
 * settings of the configuration ($QEMU_UPGRADE_CONF), with real files, directories and links
 * in a private directory; and the agent's session (remote/session.c) answering admit, and
 * refusing an EXEC outside the policy, before it makes anything. */
#include "unit.h"
#include "remote/policy.h"
#include "remote/session.h"
#include "upgrade/kv.h"
#include "upgrade/launcher.h"
#include "upgrade/stream.h"

#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

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
	/* A socket file is left to the agent's listener, which replaces it only when nobody
	 * listens on it (a QEMU that died), as the VM's user. */
	snprintf(path, sizeof(path), "%s/vm1/dead.sock", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	qu_policy_path(p, path, "listening socket", 1, r);
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

/* A mem-path that is a directory (huge pages): QEMU makes its file in it, so the directory
 * itself must be allowed, not its parent. */
static void directory_as_the_place(void **state)
{
	(void)state;
	char hp[128], extra[192];
	snprintf(hp, sizeof(hp), "%s/hugepages", dir);
	assert_int_equal(mkdir(hp, 0755), 0);
	snprintf(extra, sizeof(extra), "agent_dirs = %s\n", hp);
	FILE *f = fopen(conf, "w");
	fputs(extra, f);
	fclose(f);
	struct qu_policy *p = qu_policy_load();
	struct qu_refusals *r = fresh();
	qu_policy_path(p, hp, "RAM file (mem-path)", 0, r);
	EXPECT(r, 0, NULL);
	snprintf(hp, sizeof(hp), "%s/other", dir);
	assert_int_equal(mkdir(hp, 0755), 0);
	qu_policy_path(p, hp, "RAM file (mem-path)", 0, r);
	EXPECT(r, 1, "outside the directories");
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

/* The agent's session on a socketpair (no transport: the policy is the session's): the
 * launch, then CALL op=admit or EXEC; the answer. */
static void session_answer(int sock, const struct qu_launch *spec, const char *disk, int exec, struct qu_rec *rec)
{
	assert_int_equal(qu_stream_send_str(sock, QU_REC_CALL, disk), 0);
	assert_int_equal(qu_launch_send_records(sock, spec), 0);
	if (exec)
		assert_int_equal(qu_stream_send(sock, QU_REC_EXEC, 0, NULL, 0, -1), 0);
	else
		assert_int_equal(qu_stream_send_str(sock, QU_REC_CALL, "op=admit\n"), 0);
	assert_int_equal(qu_stream_recv(sock, qu_now_us() + 10000000u, rec), 0);
}

/* A tool that asks admit hears every reason and nothing is made; one that skips it and sends
 * EXEC gets the same reasons as an ERROR, and nothing is made either. */
static void session_checks_before_making(void **state)
{
	(void)state;
	char sock_path[128], disk[512], img[128], listener[160], text[4096];
	int sv[2], st;
	snprintf(sock_path, sizeof(sock_path), "/tmp/qu-test-policy-%d.sock", (int)getpid());
	snprintf(img, sizeof(img), "%s/d.img", dir);
	snprintf(disk, sizeof(disk), "op=disk\npath=%s\nformat=raw\nsize=1048576\ndevice=d0\n", img);
	snprintf(listener, sizeof(listener), "path=%s\n", sock_path);
	struct qu_policy *p = policy(""); /* only the private directory; root not allowed */
	qu_policy_free(p);
	setenv("QEMU_UPGRADE_STATE_DIR", dir, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		qu_log_set_level(0);
		close(sv[0]);
		_exit(qu_session_serve(sv[1], "127.0.0.1", NULL) < 0 ? 1 : 0);
	}
	close(sv[1]);
	char *argv[] = { (char *)"/usr/bin/qemu-system-x86_64", (char *)"-S", (char *)"-incoming", (char *)"defer",
			 (char *)"-pidfile", (char *)"/etc/qu-test\n.pid", NULL };
	char *envp[] = { NULL };
	struct qu_launch_fd fds[] = { { -1, 3, QU_FD_LISTENER, "qmp", listener } };
	struct qu_launch spec = { .argv = argv, .envp = envp, .fds = fds, .nfds = 1 };
	struct qu_rec rec;

	session_answer(sv[0], &spec, disk, 0, &rec);
	assert_int_equal(rec.type, QU_REC_REPLY);
	snprintf(text, sizeof(text), "%s", (const char *)rec.payload);
	qu_rec_free(&rec);
	if (qu_kv_num(text, "allowed", -1) != 0 || qu_kv_num(text, "refused", 0) != 3)
		fail_msg("admit answered: %s", text);
	assert_non_null(strstr(text, "why.0=the VM's QEMU runs as root (uid 0)"));
	/* A newline the tool put in a path reaches neither the agent's log nor the answer's lines. */
	assert_non_null(strstr(text, "the pidfile /etc/qu-test?.pid is in /etc"));
	assert_non_null(strstr(text, sock_path));

	/* The admit forgot that launch: the same again, and EXEC without asking. */
	session_answer(sv[0], &spec, disk, 1, &rec);
	assert_int_equal(rec.type, QU_REC_ERROR);
	assert_int_equal(qu_get_u32(rec.payload), EACCES);
	snprintf(text, sizeof(text), "%s", (const char *)rec.payload + 4);
	qu_rec_free(&rec);
	if (!strstr(text, "refused by this host's policy (3 reasons)") || !strstr(text, "uid 0"))
		fail_msg("EXEC answered: %s", text);
	assert_int_equal(access(sock_path, F_OK), -1);
	assert_int_equal(access(img, F_OK), -1);
	assert_int_equal(qu_stream_send(sv[0], QU_REC_END, 0, NULL, 0, -1), 0);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	unsetenv("QEMU_UPGRADE_STATE_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(binaries_default_and_listed, setup, teardown),
		cmocka_unit_test_setup_teardown(binaries_listed_must_be_roots, setup, teardown),
		cmocka_unit_test_setup_teardown(identity_root_users_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(paths_under_allowed_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(paths_through_roots_links, setup, teardown),
		cmocka_unit_test_setup_teardown(directory_as_the_place, setup, teardown),
		cmocka_unit_test_setup_teardown(argv_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(unreadable_policy_refuses_all, setup, teardown),
		cmocka_unit_test_setup_teardown(session_checks_before_making, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
