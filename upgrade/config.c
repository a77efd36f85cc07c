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

static int apply(struct qu_config *c, const char *key, char *val)
{
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
		int e = apply(c, key, val);
		if (e == -ENOENT)
			r = qu_err(e, "%s:%d: unknown setting '%s' (known: enabled, jobs, exclude, allow_copy, low_memory, binaries)", c->path, n, key);
		else if (e < 0)
			r = qu_err(e, "%s:%d: bad value '%s' for '%s'", c->path, n, val, key);
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
