/* One option value in either of QEMU's forms (QemuOpts key=value, or JSON as libvirt writes
 * -netdev, -object, -device and -blockdev), read and edited through one interface: whoever
 * judges or rewrites an option sees the same options whatever form it was written in, and the
 * edited option is written back in its own form. */
#ifndef QU_OPTION_H
#define QU_OPTION_H

#include "qemu-integration/opts.h"

#include <json-c/json.h>

/* The key QEMU gives the first, keyless element of option opt ("tap,..." is type=tap for
 * -netdev, "file,..." backend=file for -chardev, ...); NULL: none. */
const char *qu_option_implied_key(const char *opt);

/* Whether QEMU reads val of option opt as JSON: it starts with '{' and opt is one QEMU 7.2 and
 * 10.0 take JSON for (-object, -device, -netdev, -blockdev, -audiodev, -display, -compat;
 * not -chardev, -machine, -mon, -add-fd, which read "{...}" as key=value). */
int qu_option_is_json(const char *opt, const char *val);

/* val (of option opt) as one JSON object of its options: JSON as written (NULL unless it is an
 * object), QemuOpts as strings, a bare key "on", the last of a repeated key winning (as in
 * QEMU). NULL: not an object, or no memory. */
json_object *qu_option_parse(const char *opt, const char *val);
/* An option as text (a JSON number or boolean as json-c writes it: 25, true); NULL: absent or
 * JSON null (QEMU refuses null for every option this tool reads). */
const char *qu_option_get(json_object *o, const char *key);
/* on/yes/true/y, as QEMU's boolean options (a JSON true reads "true"). */
int qu_option_true(json_object *o, const char *key);

/* An option being edited, kept in the form it was written in. */
struct qu_option {
	int json;           /* 1: j holds it; 0: kv does */
	json_object *j;
	struct qu_opts kv;
};

/* -EINVAL: JSON that is not an object; -ENOMEM. */
int qu_option_open(const char *opt, const char *val, struct qu_option *o);
void qu_option_close(struct qu_option *o);
/* As qu_option_get, for the option being edited. */
const char *qu_option_str(const struct qu_option *o, const char *key);
/* A string value (QEMU's JSON forms take descriptor numbers and paths as strings). */
int qu_option_set(struct qu_option *o, const char *key, const char *val);
/* A boolean: JSON true/false, QemuOpts on/off. */
int qu_option_set_bool(struct qu_option *o, const char *key, int on);
/* A number: a JSON integer, QemuOpts decimal. */
int qu_option_set_int(struct qu_option *o, const char *key, long long v);
void qu_option_del(struct qu_option *o, const char *key);
/* The option written back in its form: malloc'd, NULL when out of memory. */
char *qu_option_format(const struct qu_option *o);

#endif
