/* A QEMU command line as a list of options, each with its argument, so that the rewriter
 * can find, change, drop and add options without knowing every one of them. */
#ifndef QU_ARGV_H
#define QU_ARGV_H

#include <stddef.h>

struct qu_arg {
	char *opt; /* without leading dashes ("machine"); NULL for a positional argument */
	char *val; /* NULL for options that take no argument */
};

struct qu_argv {
	char *prog;
	size_t n;
	struct qu_arg *a;
};

/* From /proc/PID/cmdline's NUL-separated bytes. -EINVAL for an empty line or an option
 * missing its argument. */
int qu_argv_from_cmdline(const char *buf, size_t len, struct qu_argv *out);
int qu_argv_from_array(int argc, char *const *argv, struct qu_argv *out);
void qu_argv_free(struct qu_argv *v);
/* Index of the first option named opt at or after start, or -1. */
long qu_argv_find(const struct qu_argv *v, const char *opt, size_t start);
int qu_argv_add(struct qu_argv *v, const char *opt, const char *val);
void qu_argv_remove(struct qu_argv *v, size_t i);
/* Replaces option i (its name and argument). */
int qu_argv_set(struct qu_argv *v, size_t i, const char *opt, const char *val);
/* A NULL-terminated argv (prog first), options written with one dash; free with qu_strv_free. */
char **qu_argv_flatten(const struct qu_argv *v);
void qu_strv_free(char **strv);
/* QEMU's options that take no argument (-S, -nodefaults, ...). */
int qu_qemu_opt_is_flag(const char *opt);

#endif
