/* The remote layer without QEMU: key=value text (upgrade/kv.c), HOST:PORT parsing and the
 * shared-key authentication (remote/tcp/transport.c), and a real agent on loopback TCP that
 * lets in the right key only, answers a probe of a missing binary with the reason, and an
 * abort with "called off" (remote/agent.c, remote/tcp/server.c, remote/session.c,
 * remote/client.c). */
#include "unit.h"
#include "qemu-upgrade.h"
#include "remote/client.h"
#include "remote/tcp/transport.h"
#include "remote/x509/creds.h"
#include "upgrade/kv.h"
#include "upgrade/stream.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void kv_get_num_add(void **state)
{
	(void)state;
	char buf[64] = "", v[8];
	assert_int_equal(qu_kv_add(buf, sizeof(buf), "op", "probe"), 0);
	assert_int_equal(qu_kv_addf(buf, sizeof(buf), "size", "%d", 4096), 0);
	assert_int_equal(qu_kv_add(buf, sizeof(buf), "opx", "other"), 0);
	assert_string_equal(buf, "op=probe\nsize=4096\nopx=other\n");
	assert_int_equal(qu_kv_get(buf, "op", v, sizeof(v)), 0);
	assert_string_equal(v, "probe");
	assert_int_equal(qu_kv_get(buf, "opx", v, 4), 0);
	assert_string_equal(v, "oth"); /* truncated to the buffer */
	assert_int_equal(qu_kv_get(buf, "o", v, sizeof(v)), -ENOENT);
	assert_string_equal(v, "");
	assert_int_equal(qu_kv_num(buf, "size", -1), 4096);
	assert_int_equal(qu_kv_num(buf, "op", -1), -1); /* not a number */
	assert_int_equal(qu_kv_num(buf, "missing", 7), 7);
	assert_int_equal(qu_kv_add(buf, sizeof(buf), "evil", "a\nop=exec"), -ENOSPC);
	char small[12] = "";
	assert_int_equal(qu_kv_add(small, sizeof(small), "key", "0123456789"), -ENOSPC);
	assert_string_equal(small, ""); /* unchanged */
}

static void split_host_port(void **state)
{
	(void)state;
	char host[64];
	int port;
	assert_int_equal(qu_tcp_split("host2", 4779, host, sizeof(host), &port), 0);
	assert_string_equal(host, "host2");
	assert_int_equal(port, 4779);
	assert_int_equal(qu_tcp_split("10.0.0.2:5000", 4779, host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.0.0.2");
	assert_int_equal(port, 5000);
	assert_int_equal(qu_tcp_split("[fd00::2]:6000", 4779, host, sizeof(host), &port), 0);
	assert_string_equal(host, "fd00::2");
	assert_int_equal(port, 6000);
	assert_int_equal(qu_tcp_split("fd00::2", 4779, host, sizeof(host), &port), 0);
	assert_string_equal(host, "fd00::2");
	assert_int_equal(port, 4779);
	assert_int_equal(qu_tcp_split("host:70000", 4779, host, sizeof(host), &port), -EINVAL);
	assert_int_equal(qu_tcp_split("host:", 4779, host, sizeof(host), &port), -EINVAL);
	assert_int_equal(qu_tcp_split("[fd00::2", 4779, host, sizeof(host), &port), -EINVAL);
	assert_int_equal(qu_tcp_split("averyveryverylonghostname", 1, host, 8, &port), -ENAMETOOLONG);
}

static void fd_spec_round_trip_and_limits(void **state)
{
	(void)state;
	int sv[2];
	struct qu_rec rec;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qu_stream_send_fd(sv[0], -1, 6, QU_FD_TAP, "tap 'n0' queue 0", "ifname=tap0\nqueues=1\n"), 0);
	assert_int_equal(qu_stream_recv(sv[1], qu_now_us() + 2000000u, &rec), 0);
	assert_string_equal(qu_rec_fd_spec(&rec), "ifname=tap0\nqueues=1\n");
	qu_rec_free(&rec);
	/* Three strings where one or two belong: rejected. */
	uint8_t p[] = { 6, 0, 0, 0, 6, 0, 0, 0, 'n', 0, 'a', 0, 'b', 0 };
	assert_int_equal(qu_stream_send(sv[0], QU_REC_FD, QU_REC_FLAG_FD_ELIDED, p, sizeof(p), -1), 0);
	assert_int_equal(qu_stream_recv(sv[1], qu_now_us() + 2000000u, &rec), -EBADMSG);
	close(sv[0]);
	close(sv[1]);
}


static char pki[64];

static int remove_pki(void **state)
{
	(void)state;
	char cmd[128];
	if (pki[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
		if (system(cmd) != 0)
			return -1;
	}
	pki[0] = '\0';
	return 0;
}

static void pki_file(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", pki, name);
}

/* The certificates' file rules: root's, written by root alone, keys read by root alone; each
 * refusal names the file. Made with openssl, as an operator would. */
static void x509_file_rules(void **state)
{
	(void)state;
	char cmd[1024], path[128];
	snprintf(pki, sizeof(pki), "/tmp/qu-test-pki.XXXXXX");
	assert_non_null(mkdtemp(pki));
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=t "
		 "-keyout client-key.pem -out client-cert.pem 2>/dev/null && cp client-cert.pem ca-cert.pem && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=u "
		 "-keyout other-key.pem -out other-cert.pem 2>/dev/null && chmod 600 client-key.pem other-key.pem", pki);
	if (system(cmd) != 0)
		skip(); /* no openssl here: nothing to make the files with */
	SSL_CTX *ctx = qu_x509_ctx(pki, 0);
	assert_non_null(ctx);
	SSL_CTX_free(ctx);
	/* A key others may read. */
	pki_file("client-key.pem", path, sizeof(path));
	assert_int_equal(chmod(path, 0640), 0);
	assert_null(qu_x509_ctx(pki, 0));
	assert_non_null(strstr(qu_err_msg(), "client-key.pem is a private key that others than root can read"));
	assert_int_equal(chmod(path, 0600), 0);
	/* A certificate others may write. */
	pki_file("ca-cert.pem", path, sizeof(path));
	assert_int_equal(chmod(path, 0666), 0);
	assert_null(qu_x509_ctx(pki, 0));
	assert_non_null(strstr(qu_err_msg(), "ca-cert.pem can be written by others than root"));
	assert_int_equal(chmod(path, 0644), 0);
	/* A key that is not the certificate's. */
	snprintf(cmd, sizeof(cmd), "cp '%s/other-key.pem' '%s/client-key.pem'", pki, pki);
	assert_int_equal(system(cmd), 0);
	assert_null(qu_x509_ctx(pki, 0));
	assert_non_null(strstr(qu_err_msg(), "client-key.pem: is not the key of the certificate beside it"));
	/* The agent's files missing. */
	assert_null(qu_x509_ctx(pki, 1));
	assert_non_null(strstr(qu_err_msg(), "server-cert.pem"));
	/* A link is not followed. */
	pki_file("server-cert.pem", path, sizeof(path));
	assert_int_equal(symlink("client-cert.pem", path), 0);
	assert_null(qu_x509_ctx(pki, 1));
	assert_non_null(strstr(qu_err_msg(), "cannot read"));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kv_get_num_add),
		cmocka_unit_test(split_host_port),
		cmocka_unit_test(fd_spec_round_trip_and_limits),
		cmocka_unit_test_teardown(x509_file_rules, remove_pki),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
