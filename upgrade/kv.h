/* "key=value" lines, one per line: the text of CONTEXT, CALL and REPLY records and FD specs. */
#ifndef QU_KV_H
#define QU_KV_H

#include <stddef.h>

/* Copies the value of the first line "key=..." into buf: 0, or -ENOENT (buf ""). */
int qu_kv_get(const char *text, const char *key, char *buf, size_t len);
/* The value as a number, or def when missing or not a number. */
long long qu_kv_num(const char *text, const char *key, long long def);
/* Appends "key=value\n" to buf (of size len); -ENOSPC (buf unchanged) if it does not fit or
 * value holds a newline. */
int qu_kv_add(char *buf, size_t len, const char *key, const char *value);
int qu_kv_addf(char *buf, size_t len, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* n bytes as lower-case hex into out (2 * n + 1 bytes, NUL-terminated): how sums and keys are
 * written in values. */
void qu_hex(const void *bytes, size_t n, char *out);

#endif
