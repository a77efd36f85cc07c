/* The remote layer without QEMU: key=value text (upgrade/kv.c), HOST:PORT parsing and the
 * shared-key authentication (remote/tcp/transport.c), and a real agent on loopback TCP that
 * lets in the right key only, answers a probe of a missing binary with the reason, and an
 * abort with "called off" (remote/agent.c, remote/tcp/server.c, remote/session.c,
 * remote/client.c). */
#include "unit.h"
#include "qemu-upgrade.h"
#include "remote/client.h"
#include "remote/tcp/seal.h"
#include "remote/tcp/transport.h"
#include "upgrade/kv.h"
#include "upgrade/stream.h"

#include <netinet/in.h>
#include <signal.h>
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

static char key_path[64], bad_key_path[64];

static void write_key(char *path, const char *text, mode_t mode)
{
	snprintf(path, 64, "/tmp/qu-test-key.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int remove_keys(void **state)
{
	(void)state;
	if (key_path[0])
		unlink(key_path);
	if (bad_key_path[0])
		unlink(bad_key_path);
	key_path[0] = bad_key_path[0] = '\0';
	return 0;
}

static void key_rules_and_macs(void **state)
{
	(void)state;
	unsigned char key[QU_AUTH_KEY_MAX], other[QU_AUTH_KEY_MAX];
	size_t len, olen;
	write_key(key_path, "0123456789abcdef0123456789abcdef\n", 0644);
	assert_int_equal(qu_auth_key_load(key_path, key, &len), -EPERM);
	assert_non_null(strstr(qu_err_msg(), "chmod 600"));
	chmod(key_path, 0600);
	assert_int_equal(qu_auth_key_load(key_path, key, &len), 0);
	assert_int_equal(len, 32); /* the newline is not part of the key */
	write_key(bad_key_path, "short", 0600);
	assert_int_equal(qu_auth_key_load(bad_key_path, other, &olen), -EINVAL);
	assert_int_equal(qu_auth_key_load("/nonexistent/key", other, &olen), -ENOENT);
	assert_non_null(strstr(qu_err_msg(), "--remote-key"));

	char a[QU_AUTH_HEX_LEN], b[QU_AUTH_HEX_LEN], c[QU_AUTH_HEX_LEN], d[QU_AUTH_HEX_LEN];
	assert_int_equal(qu_auth_mac(key, len, "tool", "00ff", a), 0);
	assert_int_equal(qu_auth_mac(key, len, "tool", "00ff", b), 0);
	assert_int_equal(qu_auth_mac(key, len, "agent", "00ff", c), 0);
	assert_int_equal(qu_auth_mac(key, len - 1, "tool", "00ff", d), 0);
	assert_int_equal(strlen(a), 64);
	assert_true(qu_auth_equal(a, b));
	assert_false(qu_auth_equal(a, c)); /* a proof for one role is no proof for the other */
	assert_false(qu_auth_equal(a, d)); /* nor under another key */
	assert_false(qu_auth_equal(a, "")); /* nor an empty answer */
	char n1[65], n2[65];
	assert_int_equal(qu_auth_nonce(n1, 32), 0);
	assert_int_equal(qu_auth_nonce(n2, 32), 0);
	assert_int_equal(strlen(n1), 64);
	assert_string_not_equal(n1, n2);
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

/* One record sealed by the tool, as raw bytes off the wire. */
static ssize_t sealed_bytes(struct qu_seal *tool, const char *text, uint8_t *buf, size_t len)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qu_stream_set_sealer(sv[0], &tool->base), 0);
	assert_int_equal(qu_stream_send_str(sv[0], QU_REC_CALL, text), 0);
	qu_stream_set_sealer(sv[0], NULL);
	ssize_t n = read(sv[1], buf, len);
	close(sv[0]);
	close(sv[1]);
	return n;
}

/* What the agent makes of raw bytes arriving on its sealed socket. */
static int agent_reads(struct qu_seal *agent, const uint8_t *buf, size_t len, struct qu_rec *rec)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qu_stream_set_sealer(sv[1], &agent->base), 0);
	assert_int_equal(write(sv[0], buf, len), (ssize_t)len);
	int r = qu_stream_recv(sv[1], qu_now_us() + 1000000u, rec);
	qu_stream_set_sealer(sv[1], NULL);
	close(sv[0]);
	close(sv[1]);
	return r;
}

static void sealed_records_resist_tampering(void **state)
{
	(void)state;
	const unsigned char key[] = "0123456789abcdef0123456789abcdef";
	struct qu_seal tool, agent, other;
	struct qu_rec rec;
	uint8_t buf[512], copy[512];
	assert_int_equal(qu_seal_init(&tool, key, 32, "aa", "tt", 1), 0);
	assert_int_equal(qu_seal_init(&agent, key, 32, "aa", "tt", 0), 0);

	ssize_t n = sealed_bytes(&tool, "op=resume\n", buf, sizeof(buf));
	assert_true(n > 48);
	assert_int_equal(agent_reads(&agent, buf, (size_t)n, &rec), 0);
	assert_int_equal(rec.type, QU_REC_CALL);
	assert_string_equal((const char *)rec.payload, "op=resume\n");
	qu_rec_free(&rec);
	/* The same bytes again: a replay (the sequence number moved on). */
	assert_int_equal(agent_reads(&agent, buf, (size_t)n, &rec), -EBADMSG);

	/* One byte changed inside: rejected. */
	assert_int_equal(qu_seal_init(&tool, key, 32, "aa", "tt", 1), 0);
	assert_int_equal(qu_seal_init(&agent, key, 32, "aa", "tt", 0), 0);
	n = sealed_bytes(&tool, "op=abort\n", buf, sizeof(buf));
	memcpy(copy, buf, (size_t)n);
	copy[16 + 16 + 3] ^= 1; /* inside the inner payload */
	assert_int_equal(agent_reads(&agent, copy, (size_t)n, &rec), -EBADMSG);

	/* Sent back to the tool that sealed it: a reflection, rejected. */
	assert_int_equal(qu_seal_init(&other, key, 32, "aa", "tt", 1), 0);
	assert_int_equal(agent_reads(&other, buf, (size_t)n, &rec), -EBADMSG);

	/* Another session's nonces, or another key: rejected. */
	assert_int_equal(qu_seal_init(&agent, key, 32, "ab", "tt", 0), 0);
	assert_int_equal(agent_reads(&agent, buf, (size_t)n, &rec), -EBADMSG);

	/* A plain record where sealed ones are due: rejected. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(qu_stream_send_str(sv[0], QU_REC_CALL, "op=resume\n"), 0);
	n = read(sv[1], buf, sizeof(buf));
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(qu_seal_init(&agent, key, 32, "aa", "tt", 0), 0);
	assert_int_equal(agent_reads(&agent, buf, (size_t)n, &rec), -EBADMSG);
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void agent_lets_in_the_key_only(void **state)
{
	(void)state;
	char where[64];
	struct qu_remote *r = NULL;
	int st;
	write_key(key_path, "the key both hosts hold, 32 bytes", 0600);
	write_key(bad_key_path, "another key that is long enough!", 0600);
	snprintf(where, sizeof(where), "127.0.0.1:%d", free_port());
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The agent in a child: listen first, then accept one connection at a time. */
		qu_log_set_level(0);
		_exit(qu_agent_run(where, key_path, 0) < 0 ? 1 : 0);
	}
	int up = 0;
	for (int i = 0; i < 200 && !up; i++) {
		/* A wrong key is turned away, however often it comes. */
		int e = qu_remote_connect(where, bad_key_path, qu_now_us() + 2000000u, &r);
		up = e != -ECONNREFUSED;
		if (up) {
			assert_int_equal(e, -EACCES);
			assert_non_null(strstr(qu_err_msg(), "authentication failed"));
		} else {
			usleep(10000);
		}
	}
	assert_true(up);
	assert_int_equal(qu_remote_connect(where, key_path, qu_now_us() + 2000000u, &r), 0);
	struct qu_binary b;
	int has = 0;
	assert_true(qu_remote_probe(r, "/nonexistent/qemu-system-x86_64", "q35", qu_now_us() + 5000000u, &b, &has) < 0);
	assert_non_null(strstr(qu_err_msg(), "/nonexistent/qemu-system-x86_64"));
	/* After a failed step only an abort is answered, and it succeeds. */
	assert_int_equal(qu_remote_abort(r, qu_now_us() + 2000000u), 0);
	qu_remote_close(r);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kv_get_num_add),
		cmocka_unit_test(split_host_port),
		cmocka_unit_test_teardown(key_rules_and_macs, remove_keys),
		cmocka_unit_test(fd_spec_round_trip_and_limits),
		cmocka_unit_test(sealed_records_resist_tampering),
		cmocka_unit_test_teardown(agent_lets_in_the_key_only, remove_keys),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
