/* The COLO migration connection's byte count (remote/standby/traffic.h), over real loopback
 * TCP connections in this process: found by its peer among other sockets, the count grows by
 * what the peer received, and a descriptor that is no longer that connection says so. */
#include "tests/unit/unit.h"
#include "remote/standby/traffic.h"
#include "upgrade/fdpass/pidfd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct conn {
	int listener, client, server, other, pidfd;
	char uri[64];
};

static int listen_any(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t l = sizeof(*a);
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)a, &l) < 0)
		return -1;
	return fd;
}

static int setup_conn(void **state)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_in a;
	if (!c || (c->listener = listen_any(&a)) < 0)
		return -1;
	/* A socket that is not the connection comes first in the table: a UNIX pair end. */
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	close(pair[1]);
	c->other = pair[0];
	c->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->client < 0 || connect(c->client, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (c->server = accept4(c->listener, NULL, NULL, SOCK_CLOEXEC)) < 0)
		return -1;
	snprintf(c->uri, sizeof(c->uri), "tcp:127.0.0.1:%u", ntohs(a.sin_port));
	c->pidfd = qu_pidfd_open(getpid());
	*state = c;
	return c->pidfd < 0 ? -1 : 0;
}

static int teardown_conn(void **state)
{
	struct conn *c = *state;
	int *fds[] = { &c->listener, &c->client, &c->server, &c->other, &c->pidfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(c);
	return 0;
}

/* Sends n bytes on the client end and reads them all on the server's: acknowledged then. */
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

/* The count is acknowledged bytes: wait for the last ACK to be processed (a condition). */
static unsigned long long acked_at_least(struct conn *c, int fd, unsigned long long want)
{
	unsigned long long b = 0;
	uint64_t end = qu_now_us() + 10000000u;
	while (qu_colo_traffic_bytes(c->pidfd, fd, c->uri, &b) == 0 && b < want && qu_now_us() < end)
		usleep(1000);
	return b;
}

static void the_connection_is_found_by_its_peer(void **state)
{
	struct conn *c = *state;
	assert_int_equal(qu_colo_traffic_find(getpid(), c->pidfd, c->uri), c->client);
	/* The accepted end's peer is the client's ephemeral port: not the URI. */
	assert_int_equal(qu_colo_traffic_find(getpid(), c->pidfd, "tcp:127.0.0.1:1"), -ENOENT);
	assert_int_equal(qu_colo_traffic_find(getpid(), c->pidfd, "tcp:[::1]:1"), -ENOENT);
}

static void the_count_grows_by_what_the_peer_received(void **state)
{
	struct conn *c = *state;
	unsigned long long before = 0;
	assert_int_equal(qu_colo_traffic_bytes(c->pidfd, c->client, c->uri, &before), 0);
	carry(c, 3u << 20);
	unsigned long long after = acked_at_least(c, c->client, before + (3u << 20));
	note("acknowledged %llu -> %llu bytes", before, after);
	assert_int_equal(after - before, 3u << 20);
}

static void a_descriptor_no_longer_the_connection_is_stale(void **state)
{
	struct conn *c = *state;
	unsigned long long b = 0;
	int fd = c->client;
	/* The number given to another socket: stale, not that socket's count. */
	assert_int_equal(dup2(c->other, fd), fd);
	assert_int_equal(qu_colo_traffic_bytes(c->pidfd, fd, c->uri, &b), -ESTALE);
	close(fd);
	c->client = -1;
	assert_int_equal(qu_colo_traffic_bytes(c->pidfd, fd, c->uri, &b), -ESTALE);
	assert_int_equal(qu_colo_traffic_find(getpid(), c->pidfd, c->uri), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_connection_is_found_by_its_peer, setup_conn, teardown_conn),
		cmocka_unit_test_setup_teardown(the_count_grows_by_what_the_peer_received, setup_conn, teardown_conn),
		cmocka_unit_test_setup_teardown(a_descriptor_no_longer_the_connection_is_stale, setup_conn, teardown_conn),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
