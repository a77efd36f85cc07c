#include "upgrade/kv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qu_kv_get(const char *text, const char *key, char *buf, size_t len)
{
	size_t k = strlen(key);
	if (len)
		buf[0] = '\0';
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (n > k && !strncmp(line, key, k) && line[k] == '=') {
			size_t v = n - k - 1;
			if (v >= len)
				v = len ? len - 1 : 0;
			if (len) {
				memcpy(buf, line + k + 1, v);
				buf[v] = '\0';
			}
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

long long qu_kv_num(const char *text, const char *key, long long def)
{
	char v[32], *end;
	if (qu_kv_get(text, key, v, sizeof(v)) < 0 || !v[0])
		return def;
	long long n = strtoll(v, &end, 10);
	return *end ? def : n;
}

int qu_kv_add(char *buf, size_t len, const char *key, const char *value)
{
	size_t used = strlen(buf);
	if (strchr(value, '\n'))
		return -ENOSPC;
	int n = snprintf(buf + used, len - used, "%s=%s\n", key, value);
	if (n < 0 || (size_t)n >= len - used) {
		buf[used] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int qu_kv_addf(char *buf, size_t len, const char *key, const char *fmt, ...)
{
	char value[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(value))
		return -ENOSPC;
	return qu_kv_add(buf, len, key, value);
}

void qu_hex(const void *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = bytes;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}
