/* qu_dump_stream(), `qemu-upgrade dump-stream FILE`: a handover stream in words, one line per
 * record, so that what qu_write_stream() wrote (or a launcher was sent) can be read. */
#include "qemu-upgrade.h"
#include "upgrade/log.h"
#include "upgrade/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int qu_dump_stream(int fd, FILE *out)
{
	/* Room for the largest record the decoder accepts: a record is never split at the end. */
	size_t cap = QU_STREAM_HDR_LEN + QU_STREAM_MAX_PAYLOAD, len = 0, off = 0, base = 0;
	uint8_t *buf = out ? malloc(cap) : NULL;
	ssize_t n;
	int r = 0;
	if (!out)
		r = qu_err(-EINVAL, "no stream to print to");
	else if (!buf)
		r = qu_err(-ENOMEM, "out of memory");
	while (!r && (n = read(fd, buf + len, cap - len)) != 0) {
		if (n < 0) {
			if (errno != EINTR)
				r = qu_err(-errno, "cannot read the stream: %s", strerror(errno));
			continue;
		}
		len += (size_t)n;
		for (;;) {
			struct qu_rec rec;
			size_t used;
			char line[8192];
			int d = qu_stream_decode(buf + off, len - off, &rec, &used);
			if (d == -EAGAIN)
				break;
			if (d < 0) {
				r = qu_err(-EBADMSG, "damaged record at byte %zu", base + off);
				break;
			}
			qu_rec_describe(&rec, line, sizeof(line));
			fprintf(out, "%8zu %s\n", base + off, line);
			qu_rec_free(&rec);
			off += used;
		}
		/* Offsets count from the start of the stream, across reads. */
		memmove(buf, buf + off, len - off);
		len -= off;
		base += off;
		off = 0;
	}
	if (!r && len)
		r = qu_err(-EBADMSG, "%zu bytes of a truncated record at the end", len);
	free(buf);
	return r < 0 ? -1 : 0;
}
