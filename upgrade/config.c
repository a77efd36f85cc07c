#include "upgrade/config.h"
#include "upgrade/log.h"
#include "upgrade/testhooks.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int set_bool(const char *v, int *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

/* An absolute path with no '.' or '..' component, as the agent's policy compares paths:
 * written to out with single slashes and no trailing one ("/" stays "/"). */
static int norm_path(const char *w, char *out, size_t len)
{
	size_t n = 0;
	if (w[0] != '/')
		return -EINVAL;
	for (const char *p = w; *p;) {
		while (*p == '/')
			p++;
		size_t l = strcspn(p, "/");
		if (!l)
			break;
		if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.') || n + 1 + l >= len)
			return -EINVAL;
		out[n++] = '/';
		memcpy(out + n, p, l);
		n += l;
		p += l;
	}
	if (!n)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* A user name as shadow-utils accepts one, or a decimal uid; root is agent_allow_root's. */
static int user_word(const char *w, const char **hint)
{
	if (!strcmp(w, "root") || strspn(w, "0") == strlen(w)) {
		*hint = "uid 0 is allowed by 'agent_allow_root = yes' alone";
		return -EINVAL;
	}
	if (strspn(w, "0123456789") == strlen(w))
		return strlen(w) <= 10 && strtoull(w, NULL, 10) < 0xffffffffull ? 0 : -EINVAL;
	if (!(isalpha((unsigned char)w[0]) || w[0] == '_') || strlen(w) > 32 ||
	    strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-$") != strlen(w))
		return -EINVAL;
	return 0;
}

/* A name agent_tls_clients lists: a DNS name (letters, digits, '-', '.'; no wildcard) or an IP
 * address (digits, '.', ':' and hex). */
static int name_word(const char *w, const char **hint)
{
	size_t n = strlen(w);
	if (n && n < QU_CONF_NAME_MAX && w[0] != '-' && w[0] != '.' &&
	    strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:") == n)
		return 0;
	*hint = "DNS names or IP addresses a client certificate holds, without wildcards";
	return -EINVAL;
}

/* Words of a list setting, each checked and stored: lists grow line by line. */
static int add_words(char *val, char *slots, size_t size, int max, int *n, int kind, const char **hint)
{
	char *save = NULL;
	for (char *w = strtok_r(val, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		if (*n == max)
			return -E2BIG;
		char *slot = slots + (size_t)*n * size;
		int r = kind == 'u' ? user_word(w, hint) : kind == 'n' ? name_word(w, hint) : norm_path(w, slot, size);
		if (r < 0 && !*hint)
			*hint = kind == 'u' ? "user names or numeric uids" : "absolute paths without '.' or '..', "
				"of at most 255 bytes";
		if (r < 0)
			return r;
		if (kind == 'u' || kind == 'n')
			snprintf(slot, size, "%s", w);
		(*n)++;
	}
	return 0;
}

static int apply_agent(struct qu_agent_policy *a, const char *key, char *val, const char **hint)
{
	if (!strcmp(key, "agent_allow_root"))
		return set_bool(val, &a->allow_root);
	if (!strcmp(key, "agent_standby"))
		return set_bool(val, &a->standby);
	if (!strcmp(key, "agent_binaries"))
		return add_words(val, a->binaries[0], sizeof(a->binaries[0]), QU_CONF_MAX_BINARIES, &a->nbinaries, 'p', hint);
	if (!strcmp(key, "agent_users"))
		return add_words(val, a->users[0], sizeof(a->users[0]), QU_CONF_MAX_AGENT_USERS, &a->nusers, 'u', hint);
	if (!strcmp(key, "agent_tls_clients"))
		return add_words(val, a->tls_clients[0], sizeof(a->tls_clients[0]), QU_CONF_MAX_TLS_CLIENTS,
				 &a->ntls_clients, 'n', hint);
	if (!strcmp(key, "agent_dirs"))
		return add_words(val, a->dirs[0], sizeof(a->dirs[0]), QU_CONF_MAX_AGENT_DIRS, &a->ndirs, 'p', hint);
	return -ENOENT;
}

static int apply(struct qu_config *c, const char *key, char *val, const char **hint)
{
	if (!strncmp(key, "agent_", 6))
		return apply_agent(&c->agent, key, val, hint);
	if (!strcmp(key, "enabled"))
		return set_bool(val, &c->enabled);
	if (!strcmp(key, "allow_copy"))
		return set_bool(val, &c->allow_copy);
	if (!strcmp(key, "low_memory"))
		return set_bool(val, &c->low_memory);
	if (!strcmp(key, "jobs")) {
		char *end;
		long n = strtol(val, &end, 10);
		if (*end || n < 1 || n > 64)
			return -EINVAL;
		c->jobs = (int)n;
		return 0;
	}
	if (!strcmp(key, "binaries")) {
		char *save = NULL;
		for (char *w = strtok_r(val, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
			if (c->nbinaries == QU_CONF_MAX_BINARIES || w[0] != '/' || strlen(w) >= sizeof(c->binaries[0]))
				return -EINVAL;
			snprintf(c->binaries[c->nbinaries++], sizeof(c->binaries[0]), "%s", w);
		}
		return 0;
	}
	if (!strcmp(key, "exclude")) {
		char *save = NULL;
		for (char *w = strtok_r(val, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
			if (c->nexclude == QU_CONF_MAX_EXCLUDE)
				return -E2BIG;
			snprintf(c->exclude[c->nexclude++], sizeof(c->exclude[0]), "%s", w);
		}
		return 0;
	}
	return -ENOENT;
}

int qu_config_load(struct qu_config *c)
{
	const char *path = qu_test_env("QEMU_UPGRADE_CONF");
	return qu_config_load_file(c, path ? path : "/etc/qemu-upgrade.conf");
}

int qu_config_load_file(struct qu_config *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->enabled = 1;
	c->jobs = 4;
	snprintf(c->path, sizeof(c->path), "%s", path);
	FILE *f = fopen(c->path, "re");
	if (!f)
		return errno == ENOENT ? 0 : qu_err(-errno, "cannot read %s: %s", c->path, strerror(errno));
	char line[1024];
	int n = 0, r = 0;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		n++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(line), *eq = strchr(s, '=');
		if (!*s)
			continue;
		if (!eq) {
			r = qu_err(-EINVAL, "%s:%d: expected 'key = value'", c->path, n);
			break;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		const char *hint = NULL;
		char shown[128];
		snprintf(shown, sizeof(shown), "%s", val); /* the list settings cut val into words */
		int e = apply(c, key, val, &hint);
		if (e == -ENOENT)
			r = qu_err(e, "%s:%d: unknown setting '%s' (known: enabled, jobs, exclude, allow_copy, low_memory, "
				   "binaries, agent_binaries, agent_users, agent_allow_root, agent_dirs, agent_tls_clients, agent_standby)", c->path, n, key);
		else if (e == -E2BIG)
			r = qu_err(e, "%s:%d: too many values for '%s'", c->path, n, key);
		else if (e < 0)
			r = qu_err(e, "%s:%d: bad value '%s' for '%s'%s%s%s", c->path, n, shown, key, hint ? " (" : "",
				   hint ? hint : "", hint ? ")" : "");
	}
	fclose(f);
	return r;
}

int qu_config_allows_binary(const struct qu_config *c, const char *path)
{
	for (int i = 0; i < c->nbinaries; i++)
		if (!strcmp(c->binaries[i], path))
			return 1;
	return 0;
}

int qu_config_excludes(const struct qu_config *c, const char *name, int pid)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", pid);
	for (int i = 0; i < c->nexclude; i++)
		if ((name && *name && !strcmp(c->exclude[i], name)) || !strcmp(c->exclude[i], p))
			return 1;
	return 0;
}
