/* The ssh transport without sshd: the ssh:// parser (remote/ssh/uri.c), this host's address
 * from SSH_CONNECTION and the TLS key's hex form (remote/ssh/stdio.c, remote/tls.c), the
 * arguments the tool gives ssh (a stand-in command in QEMU_UPGRADE_SSH that writes them
 * down), the last lines of ssh's stderr in the error, and the real client and agent
 * (`agent --stdio`, this program run again) talking over pipes, as sshd gives them: a probe
 * of a missing binary answered with the reason, an abort answered. tests/e2e/remote-ssh.t
 * runs the real ssh and sshd. */
#include "unit.h"
#include "qemu-upgrade.h"
#include "remote/client.h"
#include "remote/ssh/connect.h"
#include "remote/ssh/stdio.h"
#include "remote/ssh/uri.h"
#include "remote/tls.h"
#include "upgrade/io.h"

#include <signal.h>
#include <sys/wait.h>

static char self[PATH_MAX];
static char tmpdir[] = "/tmp/qu-test-ssh.XXXXXX";

static void parses(const char *s, const char *user, const char *host, int port, int ipv6)
{
	struct qu_ssh_uri u;
	int r = qu_ssh_uri_parse(s, &u);
	if (r != 0)
		note("%s: %s", s, qu_err_msg());
	assert_int_equal(r, 0);
	assert_string_equal(u.user, user);
	assert_string_equal(u.host, host);
	assert_int_equal(u.port, port);
	assert_int_equal(u.ipv6, ipv6);
}

static void refused(const char *s, const char *why)
{
	struct qu_ssh_uri u;
	int r = qu_ssh_uri_parse(s, &u);
	if (r == 0)
		note("accepted: %s", s);
	assert_true(r == -EINVAL || r == -ENAMETOOLONG);
	if (!strstr(qu_err_msg(), why))
		note("%s: %s", s, qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), why));
}

static void uri_forms(void **state)
{
	(void)state;
	assert_true(qu_ssh_uri_is("ssh://h"));
	assert_false(qu_ssh_uri_is("10.0.0.2:4779"));
	assert_false(qu_ssh_uri_is(NULL));
	parses("ssh://host2", "", "host2", 0, 0);
	parses("ssh://root@host2.example.org:2222", "root", "host2.example.org", 2222, 0);
	parses("ssh://10.0.0.2", "", "10.0.0.2", 0, 0);
	parses("ssh://_svc.x-1@b_1:65535", "_svc.x-1", "b_1", 65535, 0);
	parses("ssh://[fd00::2]", "", "fd00::2", 0, 1);
	parses("ssh://root@[::ffff:10.0.0.2]:22", "root", "::ffff:10.0.0.2", 22, 1);
}

static void uri_refusals(void **state)
{
	(void)state;
	char longhost[300];
	/* Anything ssh could take for an option, or a shell for a word of its own. */
	refused("ssh://-oProxyCommand=sh", "the host");
	refused("ssh://root@-oProxyCommand=sh", "the host");
	refused("ssh://-l@host", "the user");
	refused("ssh://-@host", "the user");
	refused("ssh://a b@host", "the user");
	refused("ssh://ro;ot@host", "the user");
	refused("ssh://root@ho st", "the host");
	refused("ssh://root@host;id", "the host");
	refused("ssh://root@host$(id)", "the host");
	refused("ssh://root@host`id`", "the host");
	refused("ssh://root@user@host", "the host");
	refused("ssh://root@host/", "the host");
	refused("ssh://root@host/system", "the host");
	refused("ssh://root@.host", "the host");
	refused("ssh://root@host.", "the host");
	refused("ssh://root@a..b", "the host");
	refused("ssh://root@a.-b", "the host");
	refused("ssh://root@a-.b", "the host");
	refused("ssh://", "the host");
	refused("ssh://@host", "the user");
	refused("ssh://root@", "the host");
	refused("ssh://host\n-oProxyCommand=x", "the host");
	/* Ports. */
	refused("ssh://host:", "port");
	refused("ssh://host:0", "port");
	refused("ssh://host:65536", "port");
	refused("ssh://host:22;id", "port");
	refused("ssh://host:-22", "port");
	refused("ssh://host:+22", "port");
	refused("ssh://host:0022x", "port");
	/* IPv6: in brackets, an address inet_pton reads, nothing after but :PORT. */
	refused("ssh://[::1", "brackets");
	refused("ssh://[]", "brackets");
	refused("ssh://[fe80::1%eth0]", "IPv6");
	refused("ssh://[-oProxyCommand=sh]", "IPv6");
	refused("ssh://[::1]x", "only :PORT");
	refused("ssh://[::1]:x", "port");
	refused("ssh://fd00::2", "port"); /* a bare IPv6 address reads as HOST:PORT */
	/* Not ssh://, and too long. */
	refused("http://host", "not an ssh://");
	memset(longhost, 'a', sizeof(longhost) - 1);
	memcpy(longhost, "ssh://", 6);
	longhost[sizeof(longhost) - 1] = '\0';
	refused(longhost, "longer than");
	char user[64];
	snprintf(user, sizeof(user), "ssh://%s@host", "abcdefghijklmnopqrstuvwxyz0123456789");
	refused(user, "the user");
}

static void server_address(void **state)
{
	(void)state;
	char host[80];
	assert_int_equal(qu_ssh_server_addr("10.77.0.1 47002 10.77.0.2 22", host, sizeof(host)), 0);
	assert_string_equal(host, "10.77.0.2");
	assert_int_equal(qu_ssh_server_addr("fd00::1 47002 fd00::2 22", host, sizeof(host)), 0);
	assert_string_equal(host, "[fd00::2]");
	assert_int_equal(qu_ssh_server_addr("::ffff:10.0.0.1 5 ::ffff:10.0.0.2 22", host, sizeof(host)), 0);
	assert_string_equal(host, "10.0.0.2");
	assert_int_equal(qu_ssh_server_addr(NULL, host, sizeof(host)), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "SSH_CONNECTION is not set"));
	assert_int_equal(qu_ssh_server_addr("", host, sizeof(host)), -EINVAL);
	assert_int_equal(qu_ssh_server_addr("10.77.0.1 47002 10.77.0.2", host, sizeof(host)), -EINVAL);
	assert_int_equal(qu_ssh_server_addr("10.77.0.1 47002 10.77.0.2 22 x", host, sizeof(host)), -EINVAL);
	assert_int_equal(qu_ssh_server_addr("a b host2 22", host, sizeof(host)), -EINVAL);
	assert_non_null(strstr(qu_err_msg(), "not an IP address"));
	assert_int_equal(qu_ssh_server_addr("a b 10.0.0.2;id 22", host, sizeof(host)), -EINVAL);
	char big[400];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(qu_ssh_server_addr(big, host, sizeof(host)), -EINVAL);
}

static void psk_hex(void **state)
{
	(void)state;
	struct qu_psk a, b;
	char hex[QU_PSK_HEX_LEN];
	assert_int_equal(qu_psk_random(&a), 0);
	qu_psk_hex(&a, hex);
	assert_int_equal(strlen(hex), 64);
	assert_int_equal(qu_psk_parse(hex, &b), 0);
	assert_memory_equal(a.key, b.key, sizeof(a.key));
	assert_int_equal(qu_psk_random(&b), 0);
	assert_memory_not_equal(a.key, b.key, sizeof(a.key)); /* fresh each time */
	hex[10] = 'G';
	assert_int_equal(qu_psk_parse(hex, &b), -EINVAL);
	hex[10] = 'A'; /* upper case is not what the tool sends */
	assert_int_equal(qu_psk_parse(hex, &b), -EINVAL);
	hex[10] = 'a';
	hex[63] = '\0';
	assert_int_equal(qu_psk_parse(hex, &b), -EINVAL);
	char longer[80];
	memset(longer, 'a', 66);
	longer[66] = '\0';
	assert_int_equal(qu_psk_parse(longer, &b), -EINVAL);
}

/* The public API reads the URI before anything runs, and takes no certificate directory with it. */
static void api_refusals(void **state)
{
	(void)state;
	struct qu_handle *h = qu_new();
	assert_non_null(h);
	assert_int_equal(qu_set_remote(h, "ssh://root@host2:2222", NULL), 0);
	assert_int_equal(qu_set_remote(h, "ssh://-oProxyCommand=sh", NULL), -1);
	assert_int_equal(qu_get_errno(), EINVAL);
	assert_non_null(strstr(qu_get_error(), "the host in"));
	assert_int_equal(qu_set_remote(h, "ssh://root@host2", "/etc/pki/qemu-upgrade"), -1);
	assert_non_null(strstr(qu_get_error(), "--pki-dir"));
	qu_free(h);
	FILE *out = fopen("/dev/null", "w");
	assert_non_null(out);
	assert_int_equal(qu_check(NULL, "ssh://root@-oProxyCommand=sh", NULL, 0, out), -1);
	assert_non_null(strstr(qu_get_error(), "the host in"));
	assert_int_equal(qu_check(NULL, "ssh://root@host2", "/k", 0, out), -1);
	assert_non_null(strstr(qu_get_error(), "--pki-dir"));
	assert_int_equal(qu_agent_run("4779", NULL, QU_AGENT_STDIO), -1);
	assert_int_equal(qu_agent_run(NULL, NULL, QU_AGENT_STDIO | QU_AGENT_ONCE), -1);
	fclose(out);
}

static int remove_tmp(void **state)
{
	(void)state;
	char cmd[PATH_MAX];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		note("could not remove %s", tmpdir);
	unsetenv(QU_SSH_ENV);
	return 0;
}

static int make_tmp(void **state)
{
	(void)state;
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	return mkdtemp(tmpdir) ? 0 : -1;
}

/* The arguments ssh gets: the host after "--", user and port as options of their own, the
 * remote command one word; and what the stand-in says on stderr ends up in the error. */
static void ssh_arguments_and_complaint(void **state)
{
	(void)state;
	char cmd[PATH_MAX * 2], args[PATH_MAX], *text = NULL;
	struct qu_remote *r = NULL;
	snprintf(args, sizeof(args), "%s/args", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "f() { printf '%%s\\n' \"$@\" >%s; echo 'debug: noise' >&2; echo 'Host key verification failed.' >&2; }; f",
		 args);
	setenv(QU_SSH_ENV, cmd, 1);
	int e = qu_remote_connect("ssh://root@host2:2222", NULL, qu_now_us() + 5000000u, &r);
	note("%s", qu_err_msg());
	assert_true(e < 0);
	assert_null(r);
	assert_non_null(strstr(qu_err_msg(), "ssh: debug: noise / Host key verification failed."));
	assert_int_equal(qu_read_file(args, &text, NULL), 0);
	assert_string_equal(text, "-T\n-a\n-x\n-o\nBatchMode=yes\n-o\nServerAliveInterval=10\n-o\nServerAliveCountMax=3\n-l\nroot\n-p\n2222\n--\nhost2\nqemu-upgrade agent --stdio\n");
	free(text);
	/* Without user and port: ssh's own defaults (its config, the current user). */
	assert_true(qu_remote_connect("ssh://[fd00::2]", NULL, qu_now_us() + 5000000u, &r) < 0);
	assert_int_equal(qu_read_file(args, &text, NULL), 0);
	assert_string_equal(text, "-T\n-a\n-x\n-o\nBatchMode=yes\n-o\nServerAliveInterval=10\n-o\nServerAliveCountMax=3\n--\nfd00::2\nqemu-upgrade agent --stdio\n");
	free(text);
	/* A command that is not there. */
	setenv(QU_SSH_ENV, "/nonexistent/ssh", 1);
	assert_true(qu_remote_connect("ssh://host2", NULL, qu_now_us() + 5000000u, &r) < 0);
	note("%s", qu_err_msg());
	assert_non_null(strstr(qu_err_msg(), "/nonexistent/ssh"));
}

/* The real agent, this program run again as `agent --stdio` behind two pipes (sshd may give
 * pipes), the real client in front: HELLO, a probe of a binary that is not there (the reason
 * comes back), an abort, the end; and nothing but the stream on the agent's stdout. */
static void client_and_agent_over_pipes(void **state)
{
	(void)state;
	char cmd[PATH_MAX * 2];
	struct qu_remote *r = NULL;
	struct qu_binary b;
	int has = 0;
	snprintf(cmd, sizeof(cmd),
		 "f() { cat | SSH_CONNECTION='127.0.0.1 40000 127.0.0.1 22' QEMU_UPGRADE_STATE_DIR=%s '%s' --agent-stdio "
		 "| cat; }; f",
		 tmpdir, self);
	setenv(QU_SSH_ENV, cmd, 1);
	int e = qu_remote_connect("ssh://root@127.0.0.1", NULL, qu_now_us() + 10000000u, &r);
	if (e < 0)
		note("%s", qu_err_msg());
	assert_int_equal(e, 0);
	assert_non_null(r->ssh);
	assert_true(r->send_psk);
	assert_true(qu_remote_probe(r, "/nonexistent/qemu-system-x86_64", "q35", qu_now_us() + 5000000u, &b, &has) < 0);
	assert_non_null(strstr(qu_err_msg(), "/nonexistent/qemu-system-x86_64"));
	assert_int_equal(qu_remote_abort(r, qu_now_us() + 5000000u), 0);
	pid_t ssh = r->ssh->pid;
	qu_remote_close(r);
	/* Reaped by the close: the agent ended with the stream. */
	assert_int_equal(kill(ssh, 0), -1);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--agent-stdio")) {
		/* As sshd runs it (run as root: it is the agent). */
		qu_log_set_level(1);
		return qu_agent_run(NULL, NULL, QU_AGENT_STDIO) < 0 ? 1 : 0;
	}
	signal(SIGPIPE, SIG_IGN);
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(uri_forms),
		cmocka_unit_test(uri_refusals),
		cmocka_unit_test(server_address),
		cmocka_unit_test(psk_hex),
		cmocka_unit_test(api_refusals),
		cmocka_unit_test_setup_teardown(ssh_arguments_and_complaint, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(client_and_agent_over_pipes, make_tmp, remove_tmp),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
