/* The COLO migration connection's byte count (remote/standby/traffic.h), over real loopback
 * TCP connections of this process, read from the kernel's socket diagnostics: found by its
 * peer among this process's sockets, the count grows by what the peer received, a connection
 * that closed is stale (a new one to the same address is not taken for it, even on the same
 * ports: the cookie), and URIs of another form are refused. */
#include "tests/unit/unit.h"
#include "remote/standby/traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct conn {
	int listener, client, server;
	struct sockaddr_in addr;
	char uri[64];
};

static int dial(struct conn *c)
{
	c->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->client < 0 || connect(c->client, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0 ||
	    (c->server = accept4(c->listener, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return -1;
	return 0;
}

static int setup_conn(void **state)
{
	struct conn *c = calloc(1, sizeof(*c));
	socklen_t l = sizeof(c->addr);
	if (!c)
		return -1;
	c->addr.sin_family = AF_INET;
	c->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listener < 0 || bind(c->listener, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0 ||
	    listen(c->listener, 4) < 0 || getsockname(c->listener, (struct sockaddr *)&c->addr, &l) < 0 || dial(c) < 0)
		return -1;
	snprintf(c->uri, sizeof(c->uri), "tcp:127.0.0.1:%u", ntohs(c->addr.sin_port));
	*state = c;
	return 0;
}

static int teardown_conn(void **state)
{
	struct conn *c = *state;
	int *fds[] = { &c->listener, &c->client, &c->server };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(c);
	return 0;
}

/* Sends n bytes on the client end and reads them all on the server's. */
static void carry(struct conn *c, size_t n)
{
	static char buf[65536];
	size_t sent = 0, got = 0;
	while (got < n) {
		if (sent < n) {
			ssize_t w = send(c->client, buf, n - sent < sizeof(buf) ? n - sent : sizeof(buf), MSG_DONTWAIT);
			if (w > 0)
				sent += (size_t)w;
		}
		ssize_t r = recv(c->server, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
	}
}

/* The count is of acknowledged bytes: waits (a condition, 10 s at most) for the last ACK. */
static unsigned long long acked_at_least(const struct qu_colo_traffic *t, unsigned long long want)
{
	unsigned long long b = 0;
	uint64_t end = qu_now_us() + 10000000u;
	while (qu_colo_traffic_bytes(t, &b) == 0 && b < want && qu_now_us() < end)
		usleep(1000);
	return b;
}

static void the_connection_is_found_by_its_peer(void **state)
{
	struct conn *c = *state;
	struct qu_colo_traffic t;
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &t), 0);
	assert_int_equal(t.family, AF_INET);
	assert_int_equal(ntohs(t.id.idiag_dport), ntohs(c->addr.sin_port));
	/* The accepted end's peer is the client's ephemeral port: not the URI. */
	assert_int_equal(qu_colo_traffic_find(getpid(), "tcp:127.0.0.1:1", &t), -ENOENT);
	assert_int_equal(qu_colo_traffic_find(getpid(), "tcp:[::1]:1", &t), -ENOENT);
	/* Another process's table holds no such connection. */
	assert_int_equal(qu_colo_traffic_find(getppid(), c->uri, &t), -ENOENT);
}

static void the_count_grows_by_what_the_peer_received(void **state)
{
	struct conn *c = *state;
	struct qu_colo_traffic t;
	unsigned long long before = 0;
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &t), 0);
	assert_int_equal(qu_colo_traffic_bytes(&t, &before), 0);
	carry(c, 3u << 20);
	unsigned long long after = acked_at_least(&t, before + (3u << 20));
	note("acknowledged %llu -> %llu bytes", before, after);
	assert_int_equal(after - before, 3u << 20);
}

/* What the count says of t within 10 s: -ESTALE once the closing is done (a condition: the
 * kernel may finish the handshake of a close after close() returned). */
static int stale_within(const struct qu_colo_traffic *t)
{
	unsigned long long b = 0;
	uint64_t end = qu_now_us() + 10000000u;
	int r;
	while ((r = qu_colo_traffic_bytes(t, &b)) == 0 && qu_now_us() < end)
		usleep(1000);
	return r;
}

static void a_closed_connection_is_stale(void **state)
{
	struct conn *c = *state;
	struct qu_colo_traffic t, again;
	unsigned long long b = 0;
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &t), 0);
	close(c->client);
	close(c->server);
	c->client = c->server = -1;
	assert_int_equal(stale_within(&t), -ESTALE);
	/* A new connection to the same address is found anew, and is not the old one. */
	assert_int_equal(dial(c), 0);
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &again), 0);
	assert_int_equal(qu_colo_traffic_bytes(&again, &b), 0);
	assert_int_equal(qu_colo_traffic_bytes(&t, &b), -ESTALE);
}

/* A new connection on the very addresses and ports of a closed one (the server closed
 * first, so the client's end is not left in time-wait): only the cookie tells them apart. */
static void the_cookie_tells_a_new_connection_on_the_same_ports(void **state)
{
	struct conn *c = *state;
	struct qu_colo_traffic t, again;
	struct sockaddr_in local;
	socklen_t l = sizeof(local);
	unsigned long long b = 0;
	int one = 1;
	assert_int_equal(getsockname(c->client, (struct sockaddr *)&local, &l), 0);
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &t), 0);
	close(c->server); /* the server's end goes first: its side keeps the time-wait */
	c->server = -1;
	char x;
	while (recv(c->client, &x, 1, 0) > 0)
		;
	close(c->client);
	c->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->client >= 0);
	assert_int_equal(setsockopt(c->client, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(c->client, (struct sockaddr *)&local, sizeof(local)), 0);
	assert_int_equal(connect(c->client, (struct sockaddr *)&c->addr, sizeof(c->addr)), 0);
	assert_true((c->server = accept4(c->listener, NULL, NULL, SOCK_CLOEXEC)) >= 0);
	assert_int_equal(qu_colo_traffic_find(getpid(), c->uri, &again), 0);
	assert_int_equal(again.id.idiag_sport, t.id.idiag_sport);
	note("old cookie %08x%08x, new %08x%08x", t.id.idiag_cookie[1], t.id.idiag_cookie[0], again.id.idiag_cookie[1],
	     again.id.idiag_cookie[0]);
	assert_int_equal(qu_colo_traffic_bytes(&again, &b), 0);
	assert_int_equal(qu_colo_traffic_bytes(&t, &b), -ESTALE);
}

static void uris_of_another_form_are_refused(void **state)
{
	(void)state;
	struct qu_colo_traffic t;
	const char *bad[] = { "unix:/tmp/x", "tcp:", "tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp:127.0.0.1:0",
			      "tcp:127.0.0.1:65536", "tcp:127.0.0.1:12x", "tcp:host.example:4000", "tcp:[::1:4000",
			      "tcp:::1:4000", "rdma:1.2.3.4:5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		note("%s", bad[i]);
		assert_int_equal(qu_colo_traffic_find(getpid(), bad[i], &t), -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_connection_is_found_by_its_peer, setup_conn, teardown_conn),
		cmocka_unit_test_setup_teardown(the_count_grows_by_what_the_peer_received, setup_conn, teardown_conn),
		cmocka_unit_test_setup_teardown(a_closed_connection_is_stale, setup_conn, teardown_conn),
		cmocka_unit_test_setup_teardown(the_cookie_tells_a_new_connection_on_the_same_ports, setup_conn,
						teardown_conn),
		cmocka_unit_test(uris_of_another_form_are_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
