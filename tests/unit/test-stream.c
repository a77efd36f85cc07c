/* The handover stream (upgrade/stream.h): records over a real UNIX socketpair, decoding of
 * raw buffers, and descriptors carried with SCM_RIGHTS. */
#include "tests/unit/unit.h"
#include "upgrade/fdpass/scm.h"
#include "upgrade/stream.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct pair {
	int s[2]; /* s[0] sends, s[1] receives */
};

static int setup_pair(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	if (!p || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->s) < 0) {
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

static int teardown_pair(void **state)
{
	struct pair *p = *state;
	if (p->s[0] >= 0)
		close(p->s[0]);
	if (p->s[1] >= 0)
		close(p->s[1]);
	free(p);
	return 0;
}

#define PAIR(state) ((struct pair *)*(state))

/* Encodes one record with qu_stream_send and returns its bytes as they travel. */
static size_t encode(uint8_t *buf, size_t cap, uint16_t type, uint16_t flags, const void *payload,
		     uint32_t len)
{
	int s[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	assert_int_equal(qu_stream_send(s[0], type, flags, payload, len, -1), 0);
	close(s[0]);
	size_t got = 0;
	for (ssize_t n; (n = read(s[1], buf + got, cap - got)) > 0;)
		got += (size_t)n;
	close(s[1]);
	assert_int_equal(got, QU_STREAM_HDR_LEN + len);
	return got;
}

static void fd_payload(uint8_t *p, uint32_t target, uint32_t kind, const char *name, uint32_t *len)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(target >> (8 * i));
		p[4 + i] = (uint8_t)(kind >> (8 * i));
	}
	strcpy((char *)p + 8, name);
	*len = 8 + (uint32_t)strlen(name) + 1;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- over a socketpair ---- */

static void send_recv_arg(void **state)
{
	struct pair *p = PAIR(state);
	struct qu_rec rec;
	assert_int_equal(qu_stream_send_str(p->s[0], QU_REC_ARG, "-machine"), 0);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
	assert_int_equal(rec.type, QU_REC_ARG);
	assert_int_equal(rec.flags, 0);
	assert_int_equal(rec.len, 9);
	assert_string_equal((const char *)rec.payload, "-machine");
	assert_int_equal(rec.fd, -1);
	qu_rec_free(&rec);
	assert_null(rec.payload);
	assert_int_equal(rec.fd, -1);
}

static void send_recv_every_type(void **state)
{
	struct pair *p = PAIR(state);
	int s = p->s[0];
	uint8_t hello[8] = { QU_STREAM_VERSION, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t started[4] = { 0x39, 0x30, 0, 0 }; /* 12345 */
	assert_int_equal(qu_stream_send(s, QU_REC_HELLO, 0, hello, sizeof(hello), -1), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_ARG, "/usr/bin/qemu-system-x86_64"), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_ENV, "HOME=/root"), 0);
	assert_int_equal(qu_stream_send_fd(s, -1, 9, QU_FD_RAM, "ram elided", "size=268435456\n"), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_CWD, "/var/lib/vm"), 0);
	assert_int_equal(qu_stream_send(s, QU_REC_EXEC, 0, NULL, 0, -1), 0);
	assert_int_equal(qu_stream_send(s, QU_REC_STARTED, 0, started, sizeof(started), -1), 0);
	assert_int_equal(qu_stream_send_error(s, ENOENT, "cannot execute /x"), 0);
	assert_int_equal(qu_stream_send(s, QU_REC_END, 0, NULL, 0, -1), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_CONTEXT, "uid=107\ngid=107\n"), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_CALL, "op=resume\n"), 0);
	assert_int_equal(qu_stream_send_str(s, QU_REC_REPLY, "ok=1\n"), 0);

	const char *want[] = { "HELLO version=3", "ARG /usr/bin/qemu-system-x86_64", "ENV HOME=/root",
			       "FD target=9 kind=4 name=ram elided spec=size=268435456 (descriptor not stored)",
			       "CWD /var/lib/vm", "EXEC", "STARTED pid=12345", "ERROR errno=2 cannot execute /x",
			       "END", "CONTEXT uid=107 gid=107 ", "CALL op=resume ", "REPLY ok=1 " };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct qu_rec rec;
		char line[256];
		assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
		assert_int_equal(rec.type, i + 1); /* sent in type order */
		assert_int_equal(rec.fd, -1);
		assert_int_equal(qu_stream_validate(&rec), 0);
		qu_rec_describe(&rec, line, sizeof(line));
		assert_string_equal(line, want[i]);
		qu_rec_free(&rec);
	}
}

static void recv_times_out(void **state)
{
	struct pair *p = PAIR(state);
	struct qu_rec rec;
	uint64_t t0 = qu_now_us();
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(100), &rec), -ETIMEDOUT);
	uint64_t ms = (qu_now_us() - t0) / 1000;
	assert_true(ms >= 90 && ms < 2000);
	assert_null(rec.payload);
	assert_int_equal(rec.fd, -1);
}

static void recv_peer_closed(void **state)
{
	struct pair *p = PAIR(state);
	struct qu_rec rec;
	close(p->s[0]);
	p->s[0] = -1;
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -ECONNRESET);
}

static void recv_peer_closed_mid_record(void **state)
{
	struct pair *p = PAIR(state);
	uint8_t buf[64];
	struct qu_rec rec;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "hello", 6);
	assert_int_equal(write(p->s[0], buf, n - 2), (ssize_t)(n - 2));
	close(p->s[0]);
	p->s[0] = -1;
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -ECONNRESET);
}

static void recv_bad_crc(void **state)
{
	struct pair *p = PAIR(state);
	uint8_t buf[64];
	struct qu_rec rec;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "hello", 6);
	buf[QU_STREAM_HDR_LEN + 1] ^= 0x20;
	assert_int_equal(write(p->s[0], buf, n), (ssize_t)n);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -EBADMSG);
}

static void recv_record_split_in_pieces(void **state)
{
	struct pair *p = PAIR(state);
	uint8_t buf[64];
	struct qu_rec rec;
	size_t n = encode(buf, sizeof(buf), QU_REC_CWD, 0, "/srv/vm", 8);
	/* A writer process trickles the record out a few bytes at a time. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (size_t off = 0; off < n; off += 3) {
			size_t k = n - off < 3 ? n - off : 3;
			if (write(p->s[0], buf + off, k) != (ssize_t)k)
				_exit(1);
			usleep(2000);
		}
		_exit(0);
	}
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(5000), &rec), 0);
	assert_string_equal((const char *)rec.payload, "/srv/vm");
	qu_rec_free(&rec);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void max_payload_round_trip(void **state)
{
	struct pair *p = PAIR(state);
	struct qu_rec rec;
	uint32_t len = QU_STREAM_MAX_PAYLOAD;
	char *big = malloc(len);
	assert_non_null(big);
	for (uint32_t i = 0; i < len - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[len - 1] = '\0';
	/* More than a socket buffer: a child sends while this side reads. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(qu_stream_send(p->s[0], QU_REC_ARG, 0, big, len, -1) == 0 ? 0 : 1);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(10000), &rec), 0);
	assert_int_equal(rec.len, len);
	assert_memory_equal(rec.payload, big, len);
	qu_rec_free(&rec);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(big);
}

static void send_over_max_payload(void **state)
{
	struct pair *p = PAIR(state);
	assert_int_equal(qu_stream_send(p->s[0], QU_REC_ARG, 0, "", QU_STREAM_MAX_PAYLOAD + 1, -1), -EMSGSIZE);
	char name[5000];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(qu_stream_send_fd(p->s[0], -1, 5, QU_FD_RAM, name, NULL), -EMSGSIZE);
}

static volatile sig_atomic_t sigpipes;
static void count_sigpipe(int sig) { sigpipes++; }

static void send_to_closed_peer_is_epipe(void **state)
{
	/* An error for the caller, not a SIGPIPE that would kill it (counted with a handler, so
	 * that a regression fails here instead of killing the test program). */
	struct pair *p = PAIR(state);
	struct sigaction count = { .sa_handler = count_sigpipe }, old;
	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	close(p->s[1]);
	p->s[1] = -1;
	sigpipes = 0;
	assert_int_equal(sigaction(SIGPIPE, &count, &old), 0);
	int r1 = qu_stream_send_str(p->s[0], QU_REC_ARG, "x");
	int r2 = qu_stream_send_fd(p->s[0], pfd[1], 5, QU_FD_RAM, "ram", NULL);
	sigaction(SIGPIPE, &old, NULL);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(r1, -EPIPE);
	assert_int_equal(r2, -EPIPE);
	assert_int_equal(sigpipes, 0);
}

/* ---- descriptors ---- */

static void fd_record_carries_working_pipe(void **state)
{
	struct pair *p = PAIR(state);
	int pfd[2];
	struct qu_rec rec;
	char buf[16] = "";
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(qu_stream_send_fd(p->s[0], pfd[1], 7, QU_FD_LISTENER, "pipe write end", NULL), 0);
	close(pfd[1]); /* from now on only the received copy can write */
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
	assert_int_equal(rec.type, QU_REC_FD);
	assert_int_equal(rec.flags, 0);
	assert_true(rec.fd >= 0);
	assert_true(same_inode(rec.fd, pfd[0]));
	assert_int_equal(qu_get_u32(rec.payload), 7);
	assert_int_equal(qu_get_u32(rec.payload + 4), QU_FD_LISTENER);
	assert_string_equal((const char *)rec.payload + 8, "pipe write end");
	assert_true(fd_is_cloexec(rec.fd));
	assert_int_equal(write(rec.fd, "ping", 4), 4);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	qu_rec_free(&rec); /* closes the last write end */
	assert_int_equal(rec.fd, -1);
	assert_int_equal(read(pfd[0], buf, sizeof(buf)), 0); /* EOF: no copy left anywhere */
	close(pfd[0]);
}

static void fd_on_non_fd_record_rejected_and_closed(void **state)
{
	struct pair *p = PAIR(state);
	int pfd[2];
	struct qu_rec rec;
	char c;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(qu_stream_send(p->s[0], QU_REC_ARG, 0, "-S", 3, pfd[1]), 0);
	close(pfd[1]);
	int before = count_open_fds();
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -EBADMSG);
	assert_int_equal(count_open_fds(), before);
	assert_null(rec.payload);
	assert_int_equal(rec.fd, -1);
	assert_int_equal(read(pfd[0], &c, 1), 0); /* the received write end was closed */
	close(pfd[0]);
}

static void fd_on_elided_fd_record_rejected_and_closed(void **state)
{
	struct pair *p = PAIR(state);
	int pfd[2];
	uint8_t payload[64];
	uint32_t len;
	struct qu_rec rec;
	char c;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	fd_payload(payload, 5, QU_FD_RAM, "ram", &len);
	/* Says "descriptor not stored" but brings one all the same. */
	assert_int_equal(qu_stream_send(p->s[0], QU_REC_FD, QU_REC_FLAG_FD_ELIDED, payload, len, pfd[1]), 0);
	close(pfd[1]);
	int before = count_open_fds();
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -EBADMSG);
	assert_int_equal(count_open_fds(), before);
	assert_int_equal(read(pfd[0], &c, 1), 0);
	close(pfd[0]);
}

static void fd_record_without_descriptor_rejected(void **state)
{
	struct pair *p = PAIR(state);
	uint8_t payload[64];
	uint32_t len;
	struct qu_rec rec;
	fd_payload(payload, 5, QU_FD_RAM, "ram", &len);
	assert_int_equal(qu_stream_send(p->s[0], QU_REC_FD, 0, payload, len, -1), 0);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -EBADMSG);
}

static void two_descriptors_on_one_record_rejected(void **state)
{
	struct pair *p = PAIR(state);
	uint8_t payload[64], buf[128];
	uint32_t len;
	struct qu_rec rec;
	int a[2], b[2];
	char c;
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	fd_payload(payload, 5, QU_FD_RAM, "ram", &len);
	size_t n = encode(buf, sizeof(buf), QU_REC_FD, 0, payload, len);
	int two[2] = { a[1], b[1] };
	assert_int_equal(qu_scm_send(p->s[0], buf, n, two, 2), 0);
	close(a[1]);
	close(b[1]);
	int before = count_open_fds();
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), -EMSGSIZE);
	assert_int_equal(count_open_fds(), before);
	assert_int_equal(read(a[0], &c, 1), 0);
	assert_int_equal(read(b[0], &c, 1), 0);
	close(a[0]);
	close(b[0]);
}

static void descriptor_stays_with_its_record(void **state)
{
	struct pair *p = PAIR(state);
	int pfd[2];
	struct qu_rec rec;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	/* Records before and after the FD record arrive without a descriptor. */
	assert_int_equal(qu_stream_send_str(p->s[0], QU_REC_ARG, "a"), 0);
	assert_int_equal(qu_stream_send_fd(p->s[0], pfd[0], 5, QU_FD_MIGRATION, "mig", NULL), 0);
	assert_int_equal(qu_stream_send_str(p->s[0], QU_REC_ARG, "b"), 0);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
	assert_int_equal(rec.fd, -1);
	qu_rec_free(&rec);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
	assert_int_equal(rec.type, QU_REC_FD);
	assert_true(same_inode(rec.fd, pfd[0]));
	qu_rec_free(&rec);
	assert_int_equal(qu_stream_recv(p->s[1], deadline_ms(2000), &rec), 0);
	assert_int_equal(rec.fd, -1);
	assert_string_equal((const char *)rec.payload, "b");
	qu_rec_free(&rec);
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- decoding buffers ---- */

static void decode_layout(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used = 0;
	size_t n = encode(buf, sizeof(buf), QU_REC_ENV, 0, "A=b", 4);
	assert_memory_equal(buf, "QUPG", 4);          /* magic, little-endian */
	assert_int_equal(buf[4] | buf[5] << 8, QU_REC_ENV);
	assert_int_equal(qu_get_u32(buf + 8), 4);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(rec.type, QU_REC_ENV);
	assert_string_equal((const char *)rec.payload, "A=b");
	assert_int_equal(rec.fd, -1);
	qu_rec_free(&rec);
}

static void decode_two_records_in_a_row(void **state)
{
	uint8_t buf[128];
	struct qu_rec rec;
	size_t used;
	size_t n1 = encode(buf, sizeof(buf), QU_REC_ARG, 0, "one", 4);
	size_t n2 = encode(buf + n1, sizeof(buf) - n1, QU_REC_END, 0, NULL, 0);
	assert_int_equal(qu_stream_decode(buf, n1 + n2, &rec, &used), 0);
	assert_int_equal(used, n1);
	assert_string_equal((const char *)rec.payload, "one");
	qu_rec_free(&rec);
	assert_int_equal(qu_stream_decode(buf + n1, n2, &rec, &used), 0);
	assert_int_equal(rec.type, QU_REC_END);
	assert_int_equal(used, n2);
	qu_rec_free(&rec);
}

static void decode_truncated_is_eagain(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used = 12345;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "truncated", 10);
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(qu_stream_decode(buf, k, &rec, &used), -EAGAIN);
		assert_null(rec.payload);
	}
	assert_int_equal(used, 12345);
}

static void decode_bad_magic(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "x", 2);
	buf[0] ^= 0xff;
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	assert_null(rec.payload);
}

static void decode_flipped_payload_byte(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "checksummed", 12);
	for (size_t k = QU_STREAM_HDR_LEN; k < n; k++) {
		buf[k] ^= 0x01;
		assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
		assert_null(rec.payload);
		buf[k] ^= 0x01;
	}
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), 0);
	qu_rec_free(&rec);
}

static void decode_flipped_header_flags(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "x", 2);
	buf[6] ^= 0x04; /* flags are covered by the CRC too */
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	buf[6] ^= 0x04;
	buf[12] ^= 0x80; /* and the CRC itself */
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
}

static void decode_length_over_max(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_ARG, 0, "x", 2);
	put_le32(buf + 8, QU_STREAM_MAX_PAYLOAD + 1);
	/* Refused from the header alone, not waited for as a partial record. */
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	put_le32(buf + 8, 0xffffffffu);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	put_le32(buf + 8, QU_STREAM_MAX_PAYLOAD);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EAGAIN);
}

static void decode_unknown_type(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_TYPE_MAX + 1, 0, NULL, 0);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), 0, 0, NULL, 0);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), 0xffff, 0, NULL, 0);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
}

static void decode_string_without_nul(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	uint16_t types[] = { QU_REC_ARG, QU_REC_ENV, QU_REC_CWD };
	for (size_t i = 0; i < 3; i++) {
		size_t n = encode(buf, sizeof(buf), types[i], 0, "abc", 3);
		assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
		assert_null(rec.payload);
		n = encode(buf, sizeof(buf), types[i], 0, "a\0b", 4); /* NUL inside, too */
		assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
		n = encode(buf, sizeof(buf), types[i], 0, NULL, 0); /* empty: no NUL at all */
		assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	}
}

static void decode_fd_record_without_descriptor(void **state)
{
	uint8_t buf[64], payload[32];
	uint32_t len;
	struct qu_rec rec;
	size_t used;
	fd_payload(payload, 5, QU_FD_RAM, "mem0", &len);
	size_t n = encode(buf, sizeof(buf), QU_REC_FD, 0, payload, len);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	/* Marked as elided (a stream saved to a file) it is fine. */
	n = encode(buf, sizeof(buf), QU_REC_FD, QU_REC_FLAG_FD_ELIDED, payload, len);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), 0);
	assert_int_equal(rec.fd, -1);
	assert_int_equal(qu_get_u32(rec.payload), 5);
	qu_rec_free(&rec);
}

static void decode_fd_record_bad_payload(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	/* Only the two numbers, no name. */
	size_t n = encode(buf, sizeof(buf), QU_REC_FD, QU_REC_FLAG_FD_ELIDED, "\5\0\0\0\4\0\0\0", 8);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
}

static void decode_fixed_sizes(void **state)
{
	uint8_t buf[64];
	struct qu_rec rec;
	size_t used;
	size_t n = encode(buf, sizeof(buf), QU_REC_HELLO, 0, "\1\0\0\0", 4);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_EXEC, 0, "x", 1);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_END, 0, "x", 1);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_STARTED, 0, "\1\0\0", 3);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_ERROR, 0, "\2\0\0\0", 4); /* no message */
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_ERROR, 0, "\2\0\0\0m", 5); /* message without NUL */
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), -EBADMSG);
	n = encode(buf, sizeof(buf), QU_REC_ERROR, 0, "\2\0\0\0m", 6);
	assert_int_equal(qu_stream_decode(buf, n, &rec, &used), 0);
	qu_rec_free(&rec);
}

static void type_names(void **state)
{
	assert_string_equal(qu_rec_type_name(QU_REC_HELLO), "HELLO");
	assert_string_equal(qu_rec_type_name(QU_REC_FD), "FD");
	assert_string_equal(qu_rec_type_name(QU_REC_END), "END");
	assert_string_equal(qu_rec_type_name(0), "?");
	assert_string_equal(qu_rec_type_name(QU_REC_TYPE_MAX + 1), "?");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_pair, teardown_pair)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(send_recv_arg),
		T(send_recv_every_type),
		T(recv_times_out),
		T(recv_peer_closed),
		T(recv_peer_closed_mid_record),
		T(recv_bad_crc),
		T(recv_record_split_in_pieces),
		T(max_payload_round_trip),
		T(send_over_max_payload),
		T(send_to_closed_peer_is_epipe),
		T(fd_record_carries_working_pipe),
		T(fd_on_non_fd_record_rejected_and_closed),
		T(fd_on_elided_fd_record_rejected_and_closed),
		T(fd_record_without_descriptor_rejected),
		T(two_descriptors_on_one_record_rejected),
		T(descriptor_stays_with_its_record),
		cmocka_unit_test(decode_layout),
		cmocka_unit_test(decode_two_records_in_a_row),
		cmocka_unit_test(decode_truncated_is_eagain),
		cmocka_unit_test(decode_bad_magic),
		cmocka_unit_test(decode_flipped_payload_byte),
		cmocka_unit_test(decode_flipped_header_flags),
		cmocka_unit_test(decode_length_over_max),
		cmocka_unit_test(decode_unknown_type),
		cmocka_unit_test(decode_string_without_nul),
		cmocka_unit_test(decode_fd_record_without_descriptor),
		cmocka_unit_test(decode_fd_record_bad_payload),
		cmocka_unit_test(decode_fixed_sizes),
		cmocka_unit_test(type_names),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
