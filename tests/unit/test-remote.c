/* The remote layer without QEMU: key=value text (upgrade/kv.c), HOST:PORT parsing and the
 * shared-key authentication (remote/tcp/transport.c), and a real agent on loopback TCP that
 * lets in the right key only, answers a probe of a missing binary with the reason, and an
 * abort with "called off" (remote/agent.c, remote/tcp/server.c, remote/session.c,
 * remote/client.c). */
#include "unit.h"
#include "qemu-upgrade.h"
#include "remote/client.h"
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


int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kv_get_num_add),
		cmocka_unit_test(split_host_port),
		cmocka_unit_test(fd_spec_round_trip_and_limits),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
