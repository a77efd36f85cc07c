#include "qemu-integration/option.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *qu_option_implied_key(const char *opt)
{
	static const char *const implied[][2] = {
		{ "netdev", "type" }, { "nic", "type" },     { "net", "type" },     { "chardev", "backend" },
		{ "object", "qom-type" }, { "device", "driver" }, { "machine", "type" }, { "M", "type" },
	};
	for (size_t i = 0; opt && i < sizeof(implied) / sizeof(implied[0]); i++)
		if (!strcmp(opt, implied[i][0]))
			return implied[i][1];
	return NULL;
}

int qu_option_is_json(const char *opt, const char *val)
{
	static const char *const json_opts[] = { "object", "device", "netdev", "blockdev", "audiodev",
						 "display", "compat", NULL };
	if (!opt || !val || val[0] != '{')
		return 0;
	for (const char *const *k = json_opts; *k; k++)
		if (!strcmp(opt, *k))
			return 1;
	return 0;
}

/* The whole value, as QEMU reads it: one object and nothing after it (json_tokener_parse
 * would stop at the object's end and ignore what follows). */
static json_object *parse_json(const char *val)
{
	size_t len = strlen(val);
	if (len > INT_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_object *o = json_tokener_parse_ex(tok, val, (int)len);
	size_t end = json_tokener_get_error(tok) == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
	json_tokener_free(tok);
	if (o && (!json_object_is_type(o, json_type_object) || end + strspn(val + end, " \t\r\n") != len)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *qu_option_parse(const char *opt, const char *val)
{
	if (!val)
		return NULL;
	if (qu_option_is_json(opt, val))
		return parse_json(val);
	struct qu_opts q;
	if (qu_opts_parse(val, qu_option_implied_key(opt), &q) < 0)
		return NULL;
	json_object *o = json_object_new_object();
	for (size_t i = 0; o && i < q.n; i++) {
		json_object *s = json_object_new_string(q.v[i].val ? q.v[i].val : "on");
		if (!s || json_object_object_add(o, q.v[i].key, s) < 0) {
			json_object_put(s);
			json_object_put(o);
			o = NULL;
		}
	}
	qu_opts_free(&q);
	return o;
}

const char *qu_option_get(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

int qu_option_true(json_object *o, const char *key)
{
	const char *v = qu_option_get(o, key);
	return v && (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "y"));
}

int qu_option_open(const char *opt, const char *val, struct qu_option *o)
{
	memset(o, 0, sizeof(*o));
	if (qu_option_is_json(opt, val)) {
		o->json = 1;
		o->j = parse_json(val);
		return o->j ? 0 : -EINVAL;
	}
	return qu_opts_parse(val, qu_option_implied_key(opt), &o->kv);
}

void qu_option_close(struct qu_option *o)
{
	json_object_put(o->j);
	qu_opts_free(&o->kv);
	memset(o, 0, sizeof(*o));
}

const char *qu_option_str(const struct qu_option *o, const char *key)
{
	return o->json ? qu_option_get(o->j, key) : qu_opts_get(&o->kv, key);
}

static int set_json(struct qu_option *o, const char *key, json_object *v)
{
	if (!v || json_object_object_add(o->j, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

int qu_option_set(struct qu_option *o, const char *key, const char *val)
{
	return o->json ? set_json(o, key, json_object_new_string(val)) : qu_opts_set(&o->kv, key, val);
}

int qu_option_set_bool(struct qu_option *o, const char *key, int on)
{
	return o->json ? set_json(o, key, json_object_new_boolean(on)) : qu_opts_set(&o->kv, key, on ? "on" : "off");
}

int qu_option_set_int(struct qu_option *o, const char *key, long long v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", v);
	return o->json ? set_json(o, key, json_object_new_int64(v)) : qu_opts_set(&o->kv, key, num);
}

void qu_option_del(struct qu_option *o, const char *key)
{
	if (o->json)
		json_object_object_del(o->j, key);
	else
		qu_opts_del(&o->kv, key);
}

char *qu_option_format(const struct qu_option *o)
{
	if (!o->json)
		return qu_opts_format(&o->kv);
	const char *text = json_object_to_json_string_ext(o->j, JSON_C_TO_STRING_PLAIN);
	return text ? strdup(text) : NULL;
}
