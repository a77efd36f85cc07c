/* A standby secondary's stderr, read by the agent (remote/stderr-log.c): the VM owner's QEMU
 * writes what it likes. Input: the bytes, written into a pipe in pieces (each input byte below
 * 8 ends a piece; the pipe is drained after each). Whatever they hold: the line being read
 * never outgrows its buffer and holds no control character, and the pipe is emptied. */
#include "tests/fuzz/fuzz.h"
#include "remote/stderr-log.h"

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int p[2];
	if (size > 60000 || pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return 0;
	struct qu_stderr_log s = { 0 };
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] >= 8)
			continue;
		if (i > start)
			FUZZ_CHECK(write(p[1], data + start, i - start) == (ssize_t)(i - start));
		start = i + 1;
		FUZZ_CHECK(qu_stderr_log_drain(&s, p[0], 4242) == 0);
		FUZZ_CHECK(s.nline <= QU_STDERR_LINE_MAX);
		for (size_t k = 0; k < s.nline; k++)
			FUZZ_CHECK((unsigned char)s.line[k] >= 0x20 && (unsigned char)s.line[k] != 0x7f);
		char probe;
		FUZZ_CHECK(read(p[0], &probe, 1) < 0 && errno == EAGAIN);
	}
	close(p[1]);
	FUZZ_CHECK(qu_stderr_log_drain(&s, p[0], 4242) == 1);
	qu_stderr_log_flush(&s, 4242);
	FUZZ_CHECK(s.dropped == 0);
	close(p[0]);
	return 0;
}
