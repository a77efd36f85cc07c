/* A COLO secondary's stderr in the agent's log (remote/stderr-log.h): whole lines, the VM
 * owner's control characters replaced, long lines cut, a bounded number a minute, and the
 * pipe read to its end. */
#include "tests/unit/unit.h"
#include "remote/stderr-log.h"

/* What qu_info wrote while fn ran: stderr goes to a file for the time. */
static char *logged(void (*fn)(void *), void *arg)
{
	static char out[16384];
	char path[] = "/tmp/qu-test-stderr-log.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

static int count_of(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

struct run {
	struct qu_stderr_log log;
	int p[2];
	int ended;
};

static void drain(void *arg)
{
	struct run *r = arg;
	r->ended = qu_stderr_log_drain(&r->log, r->p[0], 4242);
}

static void flush(void *arg)
{
	struct run *r = arg;
	qu_stderr_log_flush(&r->log, 4242);
}

static void put(struct run *r, const char *text)
{
	assert_int_equal(write(r->p[1], text, strlen(text)), (ssize_t)strlen(text));
}

static void whole_lines_logged_a_partial_one_kept(void **state)
{
	struct run r = { 0 };
	assert_int_equal(pipe(r.p), 0);
	put(&r, "qemu: first\nqemu: second\r\nhalf of");
	char *out = logged(drain, &r);
	assert_non_null(strstr(out, "agent: QEMU 4242 said: qemu: first\n"));
	assert_non_null(strstr(out, "agent: QEMU 4242 said: qemu: second\n"));
	assert_null(strstr(out, "half of"));
	assert_int_equal(r.ended, 0);
	put(&r, " a line\n");
	out = logged(drain, &r);
	assert_non_null(strstr(out, "agent: QEMU 4242 said: half of a line\n"));
	close(r.p[1]);
	out = logged(drain, &r);
	assert_int_equal(r.ended, 1);
	assert_string_equal(out, "");
	close(r.p[0]);
}

static void control_characters_replaced_long_lines_cut(void **state)
{
	struct run r = { 0 };
	char line[1000];
	assert_int_equal(pipe(r.p), 0);
	put(&r, "forged\033[2K\nagent: fake line\x7f\n");
	memset(line, 'x', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	put(&r, line);
	char *out = logged(drain, &r);
	assert_non_null(strstr(out, "said: forged?[2K\n"));
	assert_non_null(strstr(out, "said: agent: fake line?\n"));
	char want[QU_STDERR_LINE_MAX + 8];
	memset(want, 'x', QU_STDERR_LINE_MAX);
	strcpy(want + QU_STDERR_LINE_MAX, "...\n");
	assert_non_null(strstr(out, want));
	assert_int_equal(count_of(out, "said:"), 3);
	/* The last line, not ended, comes out on flush. */
	put(&r, "no newline");
	logged(drain, &r);
	out = logged(flush, &r);
	assert_non_null(strstr(out, "said: no newline\n"));
	close(r.p[0]);
	close(r.p[1]);
}

static void lines_beyond_the_minutes_budget_counted(void **state)
{
	struct run r = { 0 };
	assert_int_equal(pipe(r.p), 0);
	for (int i = 0; i < QU_STDERR_LINES_PER_MIN + 10; i++)
		put(&r, "0123456789\n");
	char *out = logged(drain, &r);
	assert_int_equal(count_of(out, "said: 0123456789\n"), QU_STDERR_LINES_PER_MIN);
	out = logged(flush, &r);
	assert_non_null(strstr(out, "agent: QEMU 4242 wrote 110 more bytes on stderr, not logged\n"));
	close(r.p[0]);
	close(r.p[1]);
}

static void a_full_pipe_is_emptied(void **state)
{
	struct run r = { 0 };
	char block[4096];
	assert_int_equal(pipe2(r.p, O_NONBLOCK), 0);
	memset(block, 'y', sizeof(block));
	size_t total = 0;
	ssize_t n;
	while ((n = write(r.p[1], block, sizeof(block))) > 0)
		total += (size_t)n;
	note("the pipe held %zu bytes", total);
	logged(drain, &r);
	/* Room again: the QEMU's next write would not block. */
	assert_true(write(r.p[1], "z\n", 2) == 2);
	close(r.p[0]);
	close(r.p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_lines_logged_a_partial_one_kept),
		cmocka_unit_test(control_characters_replaced_long_lines_cut),
		cmocka_unit_test(lines_beyond_the_minutes_budget_counted),
		cmocka_unit_test(a_full_pipe_is_emptied),
	};
	qu_log_set_level(QU_LOG_INFO);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
