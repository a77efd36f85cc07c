#include "qemu-integration/opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qu_copy_printable(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
	if (len)
		dst[i] = '\0';
}

int qu_fd_number(const char *s)
{
	if (!s || !*s || strlen(s) > 6 || strspn(s, "0123456789") != strlen(s))
		return -1;
	return atoi(s);
}

int qu_qemu_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") == n;
}

char *qu_opts_from(int implied, const char *const *kv)
{
	struct qu_opts o = { 0 };
	for (size_t i = 0; kv[i]; i += 2)
		if (qu_opts_set(&o, kv[i], kv[i + 1]) < 0) {
			qu_opts_free(&o);
			return NULL;
		}
	o.implied = implied && o.n > 0;
	char *text = qu_opts_format(&o);
	qu_opts_free(&o);
	return text;
}

void qu_opts_free(struct qu_opts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].key);
		free(o->v[i].val);
	}
	free(o->v);
	memset(o, 0, sizeof(*o));
}

static int append(struct qu_opts *o, char *key, char *val)
{
	struct qu_opt *nv = realloc(o->v, sizeof(*nv) * (o->n + 1));
	if (!nv || !key) {
		free(key);
		free(val);
		if (nv)
			o->v = nv;
		return -ENOMEM;
	}
	o->v = nv;
	o->v[o->n].key = key;
	o->v[o->n].val = val;
	o->n++;
	return 0;
}

/* Copies up to the next unescaped ',' (or '=' when stop_at_eq), turning ",," into ','. */
static char *take_token(const char **p, int stop_at_eq)
{
	size_t cap = strlen(*p) + 1, n = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	const char *s = *p;
	while (*s) {
		if (*s == ',') {
			if (s[1] == ',') {
				out[n++] = ',';
				s += 2;
				continue;
			}
			break;
		}
		if (stop_at_eq && *s == '=')
			break;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return out;
}

int qu_opts_parse(const char *text, const char *implied_key, struct qu_opts *o)
{
	const char *p = text;
	memset(o, 0, sizeof(*o));
	if (!*p)
		return 0;
	for (int first = 1;; first = 0) {
		/* QEMU's implied first element: no '=' before the first unescaped ','. */
		const char *probe = p;
		char *tok = take_token(&probe, 1);
		if (!tok)
			goto nomem;
		if (*probe == '=') {
			p = probe + 1;
			char *val = take_token(&p, 0);
			if (append(o, tok, val) < 0)
				goto nomem;
		} else if (first && implied_key) {
			free(tok);
			char *val = take_token(&p, 0);
			if (append(o, strdup(implied_key), val) < 0)
				goto nomem;
			o->implied = 1;
		} else {
			p = probe;
			if (append(o, tok, NULL) < 0)
				goto nomem;
		}
		if (!*p)
			return 0;
		p++; /* the ',' */
		if (!*p)
			return 0;
	}
nomem:
	qu_opts_free(o);
	return -ENOMEM;
}

const char *qu_opts_get(const struct qu_opts *o, const char *key)
{
	const char *found = NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i].key, key))
			found = o->v[i].val ? o->v[i].val : "on";
	return found;
}

int qu_opts_get_bool(const struct qu_opts *o, const char *key)
{
	const char *v = qu_opts_get(o, key);
	return v && (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"));
}

void qu_opts_del(struct qu_opts *o, const char *key)
{
	size_t w = 0;
	for (size_t i = 0; i < o->n; i++) {
		if (!strcmp(o->v[i].key, key)) {
			if (i == 0)
				o->implied = 0;
			free(o->v[i].key);
			free(o->v[i].val);
			continue;
		}
		o->v[w++] = o->v[i];
	}
	o->n = w;
}

int qu_opts_set(struct qu_opts *o, const char *key, const char *val)
{
	for (size_t i = 0; i < o->n; i++) {
		if (strcmp(o->v[i].key, key))
			continue;
		char *nv = val ? strdup(val) : NULL;
		if (val && !nv)
			return -ENOMEM;
		free(o->v[i].val);
		o->v[i].val = nv;
		/* Drop later duplicates so that the value set here is the one QEMU sees. */
		for (size_t j = o->n; j-- > i + 1;) {
			if (strcmp(o->v[j].key, key))
				continue;
			free(o->v[j].key);
			free(o->v[j].val);
			memmove(o->v + j, o->v + j + 1, sizeof(o->v[0]) * (o->n - j - 1));
			o->n--;
		}
		return 0;
	}
	return append(o, strdup(key), val ? strdup(val) : NULL);
}

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			fputc(',', f);
		fputc(*s, f);
	}
}

char *qu_opts_format(const struct qu_opts *o)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	for (size_t i = 0; i < o->n; i++) {
		if (i)
			fputc(',', f);
		/* An implied value with '=' in it would read as key=value: it gets its key. */
		if (i == 0 && o->implied && !strchr(o->v[i].val ? o->v[i].val : "", '=')) {
			put_escaped(f, o->v[i].val ? o->v[i].val : "");
			continue;
		}
		put_escaped(f, o->v[i].key);
		if (o->v[i].val) {
			fputc('=', f);
			put_escaped(f, o->v[i].val);
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
