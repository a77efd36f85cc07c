/* upgrade/fdpass/tapsteer.c against a real multiqueue tap in a private network namespace:
 * frames sent out of the tap (AF_PACKET) spread over its attached queues by flow; with the
 * steering program every one lands on the first queue; without it they spread again. And a
 * queue's attachment as the tool reads and sets it. */
#include "tests/unit/unit.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/tapsteer.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define FRAMES 64

static int queue[2] = { -1, -1 };
static int packet = -1;
static int ifindex;

static int open_queue(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
		note("cannot open tap %s: %s", name, strerror(errno));
		return -1;
	}
	return fd;
}

/* A fresh network namespace holds the tap "qusteer" with two queues, up. */
static int setup(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) < 0) {
		note("no network namespace of our own (%s): this test needs root", strerror(errno));
		return 0;
	}
	queue[0] = open_queue("qusteer");
	queue[1] = open_queue("qusteer");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "qusteer");
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			note("cannot bring qusteer up: %s", strerror(errno));
	}
	if (s >= 0)
		close(s);
	ifindex = (int)if_nametoindex("qusteer");
	packet = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	return 0;
}

/* Sends FRAMES UDP frames, each its own flow (source port), out of the tap, and counts how
 * many each queue received; waits (up to 5 s) until all are in. */
static void send_and_count(int count[2])
{
	count[0] = count[1] = 0;
	for (int i = 0; i < FRAMES; i++) {
		unsigned char f[14 + 20 + 8 + 4];
		memset(f, 0, sizeof(f));
		memset(f, 0xff, 6);                      /* broadcast */
		memcpy(f + 6, "\x52\x54\x00\x12\x34\x56", 6);
		f[12] = 0x08;                            /* IPv4 */
		unsigned char *ip = f + 14, *udp = ip + 20;
		ip[0] = 0x45;
		ip[3] = (unsigned char)(sizeof(f) - 14);
		ip[8] = 64;
		ip[9] = 17;                              /* UDP */
		memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
		udp[0] = (unsigned char)((10000 + i) >> 8), udp[1] = (unsigned char)(10000 + i);
		udp[3] = 53;
		udp[5] = 12;
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };
		memset(to.sll_addr, 0xff, 6);
		assert_int_equal(sendto(packet, f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to)), (int)sizeof(f));
	}
	uint64_t end = qu_now_us() + 5000000;
	while (count[0] + count[1] < FRAMES && qu_now_us() < end) {
		struct pollfd p[2] = { { .fd = queue[0], .events = POLLIN }, { .fd = queue[1], .events = POLLIN } };
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int q = 0; q < 2; q++) {
			unsigned char buf[2048];
			ssize_t len;
			/* Ours only: the kernel sends its own (IPv6 neighbour discovery) as the link comes up. */
			while ((len = read(queue[q], buf, sizeof(buf))) > 0)
				count[q] += len >= 12 && !memcmp(buf + 6, "\x52\x54\x00\x12\x34\x56", 6);
		}
	}
	note("queue 0: %d frames, queue 1: %d", count[0], count[1]);
	assert_int_equal(count[0] + count[1], FRAMES);
}

static void steered_to_the_first_queue_and_back(void **state)
{
	(void)state;
	if (queue[0] < 0 || queue[1] < 0 || packet < 0 || !ifindex)
		skip();
	int count[2];
	send_and_count(count);
	assert_true(count[0] > 0 && count[1] > 0); /* by flow: both (all on one: 2 in 2^64) */
	assert_int_equal(qu_tap_steer_first(queue[1]), 0); /* through either queue: the tap's */
	send_and_count(count);
	assert_int_equal(count[0], FRAMES);
	assert_int_equal(qu_tap_steer_clear(queue[0]), 0);
	send_and_count(count);
	assert_true(count[0] > 0 && count[1] > 0);
}

static void attachment_read_and_set(void **state)
{
	(void)state;
	if (queue[0] < 0 || queue[1] < 0)
		skip();
	assert_int_equal(qu_tap_queue_attached(queue[0]), 1);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 1);
	assert_int_equal(qu_tap_queue_set(queue[1], 0), 0);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 0);
	assert_int_equal(qu_tap_queue_attached(queue[0]), 1);
	assert_int_equal(qu_tap_queue_set(queue[1], 0), -EINVAL); /* QEMU 7.2 aborts on this */
	int count[2];
	send_and_count(count); /* a detached queue gets nothing */
	assert_int_equal(count[0], FRAMES);
	assert_int_equal(qu_tap_queue_set(queue[1], 1), 0);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 1);
	assert_int_equal(qu_tap_queue_set(queue[1], 1), -EINVAL);
	assert_int_equal(qu_tap_queue_attached(-1), -EBADF);
}

/* What the guardian and --recover do from a journal, here through our own pidfd: only a
 * descriptor that is still a queue of the named multiqueue tap is touched. */
static void settled_from_numbers(void **state)
{
	(void)state;
	if (queue[0] < 0 || queue[1] < 0)
		skip();
	int self = qu_pidfd_open(getpid());
	assert_true(self >= 0);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	const char names[3][IFNAMSIZ] = { "qusteer", "qusteer", "other" };
	int fds[3] = { queue[1], null, queue[1] };
	assert_int_equal(qu_tap_queue_attached(queue[1]), 1);
	/* Not a tap, and the right queue under another tap's name: left alone. */
	assert_int_equal(qu_tap_settle_queues(self, fds + 1, names + 1, 2, 1, 1), 0);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 1);
	assert_int_equal(qu_tap_steer_first(queue[0]), 0);
	/* The queue of that tap: detached, and the steering removed (seen below, once the queue
	 * is attached again: flows spread over both queues). */
	assert_int_equal(qu_tap_settle_queues(self, fds, names, 1, 1, 1), 1);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 0);
	assert_int_equal(qu_tap_settle_queues(self, fds, names, 1, 1, 0), 0); /* twice: nothing to do */
	assert_int_equal(qu_tap_queue_set(queue[1], 1), 0);
	int count[2];
	send_and_count(count); /* steering gone: both queues get flows */
	assert_true(count[0] > 0 && count[1] > 0);
	/* forward (detach=0): the steering only. */
	assert_int_equal(qu_tap_steer_first(queue[0]), 0);
	assert_int_equal(qu_tap_settle_queues(self, fds, names, 1, 0, 1), 0);
	assert_int_equal(qu_tap_queue_attached(queue[1]), 1);
	send_and_count(count);
	assert_true(count[0] > 0 && count[1] > 0);
	close(null);
	close(self);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(steered_to_the_first_queue_and_back, setup),
		cmocka_unit_test(attachment_read_and_set),
		cmocka_unit_test(settled_from_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
