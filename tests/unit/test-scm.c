/* Descriptors over a UNIX socket with SCM_RIGHTS (upgrade/fdpass/scm.h). */
#include "tests/unit/unit.h"
#include "upgrade/fdpass/scm.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct fixture {
	int s[2];    /* s[0] sends, s[1] receives */
	int pipe[2]; /* the descriptors sent are copies of pipe[1] */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->s) < 0 || pipe2(f->pipe, O_CLOEXEC) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 2; i++) {
		if (f->s[i] >= 0)
			close(f->s[i]);
		if (f->pipe[i] >= 0)
			close(f->pipe[i]);
	}
	free(f);
	return 0;
}

#define FIX(state) ((struct fixture *)*(state))

/* n close-on-exec copies of fd. */
static int *dup_n(int fd, size_t n)
{
	int *v = calloc(n, sizeof(int));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++) {
		v[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		assert_true(v[i] >= 0);
	}
	return v;
}

static void close_n(int *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(v[i]);
	free(v);
}

/* After the fixture's own write end is closed: does anyone still hold a write end? */
static int write_end_alive(struct fixture *f)
{
	char c;
	if (f->pipe[1] >= 0) {
		close(f->pipe[1]);
		f->pipe[1] = -1;
	}
	int fl = fcntl(f->pipe[0], F_GETFL);
	fcntl(f->pipe[0], F_SETFL, fl | O_NONBLOCK);
	ssize_t n = read(f->pipe[0], &c, 1);
	fcntl(f->pipe[0], F_SETFL, fl);
	return !(n == 0); /* EOF only when every write end is gone */
}

static void need_fds(rlim_t n)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < n && rl.rlim_max >= n) {
		rl.rlim_cur = n;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_true(rl.rlim_cur >= n);
}

static void one_descriptor(void **state)
{
	struct fixture *f = FIX(state);
	int fds[1] = { -1 }, got[2] = { -1, -1 };
	size_t n = 0;
	char buf[16];
	fds[0] = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "x", 1, fds, 1), 0);
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, 2), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(n, 1);
	assert_true(got[0] >= 0);
	assert_int_equal(got[1], -1);
	assert_int_not_equal(got[0], f->pipe[1]);
	assert_true(fd_is_cloexec(got[0]));
	assert_true(same_inode(got[0], f->pipe[0]));
	/* It works: write through the received copy, read from the kept end. */
	assert_int_equal(write(got[0], "hi", 2), 2);
	assert_int_equal(read(f->pipe[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
	close(got[0]);
	assert_false(write_end_alive(f));
}

static void max_descriptors(void **state)
{
	struct fixture *f = FIX(state);
	need_fds(4 * QU_SCM_MAX_FDS + 64);
	int *out = dup_n(f->pipe[1], QU_SCM_MAX_FDS);
	int *got = calloc(QU_SCM_MAX_FDS, sizeof(int));
	size_t n = 0;
	char buf[8];
	assert_non_null(got);
	int before = count_open_fds();
	assert_int_equal(qu_scm_send(f->s[0], "many", 4, out, QU_SCM_MAX_FDS), 0);
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, QU_SCM_MAX_FDS), 4);
	assert_int_equal(n, QU_SCM_MAX_FDS);
	assert_int_equal(count_open_fds(), before + QU_SCM_MAX_FDS);
	for (size_t i = 0; i < n; i++) {
		assert_true(same_inode(got[i], f->pipe[0]));
		assert_true(fd_is_cloexec(got[i]));
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(got[i], got[j]);
	}
	assert_int_equal(write(got[QU_SCM_MAX_FDS - 1], "z", 1), 1);
	assert_int_equal(read(f->pipe[0], buf, 1), 1);
	close_n(got, n);
	close_n(out, QU_SCM_MAX_FDS);
	assert_false(write_end_alive(f));
}

static void more_than_max_fds_is_emsgsize(void **state)
{
	struct fixture *f = FIX(state);
	int *out = dup_n(f->pipe[1], 3);
	int got[2] = { -1, -1 };
	size_t n = 0;
	char buf[8];
	assert_int_equal(qu_scm_send(f->s[0], "abc", 3, out, 3), 0);
	close_n(out, 3);
	int before = count_open_fds();
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, 2), -EMSGSIZE);
	assert_int_equal(n, 0);
	assert_int_equal(got[0], -1);
	assert_int_equal(count_open_fds(), before);
	assert_false(write_end_alive(f));
}

static void fds_appended_after_existing(void **state)
{
	struct fixture *f = FIX(state);
	int got[3] = { 1234, -1, -1 };
	size_t n = 1;
	char buf[8];
	int one = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "a", 1, &one, 1), 0);
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, 3), 1);
	assert_int_equal(n, 2);
	assert_int_equal(got[0], 1234);
	assert_true(same_inode(got[1], f->pipe[0]));
	close(got[1]);
}

static void existing_count_counts_toward_max(void **state)
{
	struct fixture *f = FIX(state);
	int got[2] = { 1234, -1 };
	size_t n = 1;
	char buf[8];
	int two[2] = { f->pipe[1], f->pipe[1] };
	assert_int_equal(qu_scm_send(f->s[0], "a", 1, two, 2), 0);
	int before = count_open_fds();
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, 2), -EMSGSIZE);
	assert_int_equal(n, 1);
	assert_int_equal(got[1], -1);
	assert_int_equal(count_open_fds(), before);
	assert_false(write_end_alive(f));
}

static void descriptors_without_room_are_closed(void **state)
{
	struct fixture *f = FIX(state);
	size_t n = 0;
	char buf[8];
	int one = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "a", 1, &one, 1), 0);
	int before = count_open_fds();
	/* The caller expects no descriptors at all. */
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), NULL, &n, 0), -EMSGSIZE);
	assert_int_equal(count_open_fds(), before);
	assert_false(write_end_alive(f));
}

static void truncated_control_closes_all(void **state)
{
	struct fixture *f = FIX(state);
	/* 253 (the kernel's SCM_MAX_FD) with a raw sendmsg: more than the receiver's buffer holds,
	 * so the kernel sets MSG_CTRUNC. */
	enum { N = QU_SCM_MAX_FDS + 1 };
	need_fds(4 * N + 64);
	int *out = dup_n(f->pipe[1], N);
	union {
		char buf[CMSG_SPACE(sizeof(int) * N)];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * N);
	memcpy(CMSG_DATA(c), out, sizeof(int) * N);
	assert_int_equal(sendmsg(f->s[0], &msg, 0), 1);
	close_n(out, N);

	int *got = calloc(N, sizeof(int));
	size_t n = 0;
	char buf[8];
	assert_non_null(got);
	int before = count_open_fds();
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, N), -EMSGSIZE);
	assert_int_equal(n, 0);
	assert_int_equal(count_open_fds(), before);
	assert_false(write_end_alive(f));
	free(got);
}

static void zero_length_send_is_einval(void **state)
{
	struct fixture *f = FIX(state);
	int one = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "", 0, &one, 1), -EINVAL);
	assert_int_equal(qu_scm_send(f->s[0], "", 0, NULL, 0), -EINVAL);
	/* Nothing went out. */
	char buf[4];
	assert_int_equal(recv(f->s[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

static void send_more_than_max_is_einval(void **state)
{
	struct fixture *f = FIX(state);
	int many[QU_SCM_MAX_FDS + 1];
	for (size_t i = 0; i < QU_SCM_MAX_FDS + 1; i++)
		many[i] = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "x", 1, many, QU_SCM_MAX_FDS + 1), -EINVAL);
	char buf[4];
	assert_int_equal(recv(f->s[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

static void send_bad_descriptor_is_ebadf(void **state)
{
	struct fixture *f = FIX(state);
	int bad = 1000000;
	assert_int_equal(qu_scm_send(f->s[0], "x", 1, &bad, 1), -EBADF);
}

static void data_only(void **state)
{
	struct fixture *f = FIX(state);
	int got[1] = { -1 };
	size_t n = 0;
	char buf[8];
	assert_int_equal(qu_scm_send(f->s[0], "abc", 3, NULL, 0), 0);
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), got, &n, 1), 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(n, 0);
	assert_int_equal(got[0], -1);
}

static void eof_returns_zero(void **state)
{
	struct fixture *f = FIX(state);
	size_t n = 0;
	char buf[8];
	close(f->s[0]);
	f->s[0] = -1;
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), NULL, &n, 0), 0);
}

static void fds_ride_with_first_byte(void **state)
{
	struct fixture *f = FIX(state);
	int got[1] = { -1 };
	size_t n = 0;
	char buf[16];
	int one = f->pipe[1];
	assert_int_equal(qu_scm_send(f->s[0], "0123456789", 10, &one, 1), 0);
	assert_int_equal(qu_scm_recv(f->s[1], buf, 1, got, &n, 1), 1);
	assert_int_equal(buf[0], '0');
	assert_int_equal(n, 1);
	close(got[0]);
	/* The rest carries nothing, so a receiver expecting none is fine. */
	assert_int_equal(qu_scm_recv(f->s[1], buf, sizeof(buf), NULL, &n, 0), 9);
	assert_memory_equal(buf, "123456789", 9);
}

static void large_send_completes(void **state)
{
	struct fixture *f = FIX(state);
	/* Far more than a socket buffer, read while it is being sent; one descriptor in all. */
	size_t len = 4u << 20;
	unsigned char *data = malloc(len), *in = malloc(len);
	assert_non_null(data);
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 7 + i / 4096);
	int one = f->pipe[1];
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(qu_scm_send(f->s[0], data, len, &one, 1) == 0 ? 0 : 1);
	close(f->s[0]);
	f->s[0] = -1;
	int got[1] = { -1 };
	size_t n = 0, have = 0;
	for (;;) {
		ssize_t r = qu_scm_recv(f->s[1], in + have, len - have, got, &n, 1);
		assert_true(r >= 0);
		if (r == 0)
			break;
		have += (size_t)r;
	}
	assert_int_equal(have, len);
	assert_memory_equal(in, data, len);
	assert_int_equal(n, 1);
	assert_true(same_inode(got[0], f->pipe[0]));
	close(got[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(data);
	free(in);
}

static void send_to_closed_peer_is_epipe(void **state)
{
	struct fixture *f = FIX(state);
	int one = f->pipe[1];
	close(f->s[1]);
	f->s[1] = -1;
	/* MSG_NOSIGNAL: an error, not a SIGPIPE (SIGPIPE is at its default here). */
	assert_int_equal(qu_scm_send(f->s[0], "x", 1, &one, 1), -EPIPE);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(one_descriptor),
		T(max_descriptors),
		T(more_than_max_fds_is_emsgsize),
		T(fds_appended_after_existing),
		T(existing_count_counts_toward_max),
		T(descriptors_without_room_are_closed),
		T(truncated_control_closes_all),
		T(zero_length_send_is_einval),
		T(send_more_than_max_is_einval),
		T(send_bad_descriptor_is_ebadf),
		T(data_only),
		T(eof_returns_zero),
		T(fds_ride_with_first_byte),
		T(large_send_completes),
		T(send_to_closed_peer_is_epipe),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
