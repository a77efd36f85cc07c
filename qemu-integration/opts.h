/* QemuOpts strings ("socket,id=m,path=/run/x,,y,server=on") parsed into ordered key/value
 * pairs and formatted back, with QEMU's ",," escape for commas inside values. */
#ifndef QU_OPTS_H
#define QU_OPTS_H

#include <stddef.h>

struct qu_opt {
	char *key;
	char *val; /* NULL for a bare boolean key ("server" means server=on) */
};

struct qu_opts {
	size_t n;
	struct qu_opt *v;
	int implied; /* v[0] was written without "key=" (e.g. "q35" for -machine type=q35) */
};

/* implied_key names the first element when it has no '=' (NULL: no implied key). */
int qu_opts_parse(const char *text, const char *implied_key, struct qu_opts *o);
void qu_opts_free(struct qu_opts *o);
/* The value of key; "on" for a bare key; NULL when absent. The last occurrence wins, as in QEMU. */
const char *qu_opts_get(const struct qu_opts *o, const char *key);
/* True for on/yes/true and a bare key. */
int qu_opts_get_bool(const struct qu_opts *o, const char *key);
/* Replaces the first occurrence of key (dropping later ones) or appends it. */
int qu_opts_set(struct qu_opts *o, const char *key, const char *val);
void qu_opts_del(struct qu_opts *o, const char *key);
/* malloc'd text; NULL on allocation failure. Values are escaped (",," for a comma; an
 * implied first value holding '=' is written with its key), so no value can add an option. */
char *qu_opts_format(const struct qu_opts *o);
/* The same from key, value, key, value, ..., NULL (implied: the first value is written alone
 * when it can be): for options made of values QMP answered. */
char *qu_opts_from(int implied, const char *const *kv);
/* A descriptor number as QEMU's options write it: plain decimal, at most 6 digits; -1 for
 * anything else (a name the monitor was given with getfd, a sign, a space). */
int qu_fd_number(const char *s);

/* A name QEMU itself gives an object, a device or a machine type: letters, digits, '-', '.',
 * '_', starting with a letter or digit, under 64 bytes. What QMP answers is checked with it
 * before it goes on a command line: a QEMU is not trusted to say only such names. */
int qu_qemu_name_ok(const char *s);
/* A string QMP answered, kept for logs and reports: control characters (a newline would forge
 * a line in root's logs) become '?'; NULL (JSON null) becomes "". */
void qu_copy_printable(char *dst, size_t len, const char *src);

#endif
