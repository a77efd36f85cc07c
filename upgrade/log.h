/* Logging and the error the public API reports.
 *
 * Inside the library functions return -errno and, where a human needs more than strerror,
 * leave a message with qu_err(). The public API turns that into -1 plus qu_get_error(). */
#ifndef QU_LOG_H
#define QU_LOG_H

#include <stdarg.h>

enum qu_log_level { QU_LOG_QUIET = 0, QU_LOG_INFO = 1, QU_LOG_DEBUG = 2 };

void qu_log_set_level(int level);
int qu_log_level(void);

/* Progress lines on stderr, prefixed with milliseconds since the tool started. */
void qu_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void qu_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set the calling thread's error message (replacing any earlier one) and return err, so that
 * callers can write `return qu_err(-ENOENT, "...")`. */
int qu_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message: "context: previous message". */
int qu_err_wrap(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends to the current error what a failed program wrote to fd (non-blocking, its last KiB):
 * "...; the new QEMU said: ...". */
void qu_err_append_output(int fd, const char *who);
const char *qu_err_msg(void);
int qu_err_errno(void);
void qu_err_clear(void);

#endif
