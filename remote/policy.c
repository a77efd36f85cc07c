#include "remote/policy.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/option.h"
#include "upgrade/log.h"
#include "upgrade/safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_BINARIES "/usr/bin/qemu-system-*"

static const char *file_of(const struct qu_policy *p)
{
	return p->conf.path[0] ? p->conf.path : "/etc/qemu-upgrade.conf";
}

struct qu_policy *qu_policy_load(void)
{
	struct qu_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if ((p->error = qu_config_load(&p->conf)) < 0) {
		snprintf(p->why, sizeof(p->why), "%s", qu_err_msg());
		return p;
	}
	/* Where each allowed directory really is, its links (root's alone) followed as a path
	 * to check will be: both are then compared as plain strings. */
	for (int i = 0; i < p->conf.agent.ndirs; i++) {
		char probe[QU_CONF_PATH_MAX + 4];
		struct qu_safe_dir d;
		snprintf(probe, sizeof(probe), "%s%sx", p->conf.agent.dirs[i], strcmp(p->conf.agent.dirs[i], "/") ? "/" : "");
		if (qu_safe_open_dir_real(probe, (uid_t)-1, 0, &d, p->real[i], sizeof(p->real[i])) < 0) {
			p->real[i][0] = '\0';
			qu_err_clear();
		}
		qu_safe_close(&d);
	}
	return p;
}

void qu_policy_free(struct qu_policy *p)
{
	free(p);
}

/* Every check refuses with the file's error: a policy that cannot be read allows nothing. */
static int unreadable(const struct qu_policy *p, struct qu_refusals *out)
{
	if (p->error < 0)
		qu_refusals_add(out, "this host's policy cannot be read, so nothing is allowed: %s", p->why);
	return p->error < 0;
}

/* /usr/bin/qemu-system-NAME: where distributions' packages put QEMU. */
static int default_binary(const char *path)
{
	const char *prefix = "/usr/bin/qemu-system-", *name = path + strlen(prefix);
	return !strncmp(path, prefix, strlen(prefix)) && *name &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(name);
}

void qu_policy_binary(const struct qu_policy *p, const char *path, int check_file, struct qu_refusals *out)
{
	if (unreadable(p, out))
		return;
	const struct qu_agent_policy *a = &p->conf.agent;
	int listed = 0;
	for (int i = 0; i < a->nbinaries; i++)
		listed |= !strcmp(a->binaries[i], path);
	if (!a->nbinaries && !default_binary(path)) {
		qu_refusals_add(out, "the agent may not start %s: without agent_binaries in %s it starts only %s; list it "
				"in agent_binaries there", path, file_of(p), DEFAULT_BINARIES);
		return;
	}
	if (a->nbinaries && !listed) {
		qu_refusals_add(out, "the agent may not start %s: it is not in agent_binaries in %s; add it there", path,
				file_of(p));
		return;
	}
	if (check_file) {
		int fd = qu_binary_open(path, (uid_t)-1, NULL, NULL, NULL);
		if (fd < 0)
			qu_refusals_add(out, "the agent may not start %s: %s", path, qu_err_msg());
		else
			close(fd);
	}
}

/* Whether agent_users names uid (by its number, or by the name this host gives it). */
static int user_listed(const struct qu_agent_policy *a, uid_t uid, const char *name)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", (unsigned)uid);
	for (int i = 0; i < a->nusers; i++)
		if (!strcmp(a->users[i], num) || (name && !strcmp(a->users[i], name)))
			return 1;
	return 0;
}

/* The VM's groups that are not the user's own on this host (its account's group and those
 * /etc/group gives it), as text; "" when all are. */
static void foreign_groups(const struct qu_context *c, const struct passwd *pw, char *buf, size_t len)
{
	int n = 64;
	gid_t *own = malloc(sizeof(*own) * (size_t)n);
	if (own && getgrouplist(pw->pw_name, pw->pw_gid, own, &n) < 0) {
		/* More than 64: n says how many. */
		gid_t *more = realloc(own, sizeof(*own) * (size_t)n);
		own = more ? more : own;
		if (!more || getgrouplist(pw->pw_name, pw->pw_gid, own, &n) < 0)
			n = 0;
	}
	if (!own)
		n = 0;
	buf[0] = '\0';
	for (int i = -1; i < c->ngroups; i++) {
		gid_t g = i < 0 ? c->gid : c->groups[i];
		int ok = g == pw->pw_gid;
		for (int j = 0; j < n && !ok; j++)
			ok = own[j] == g;
		for (int k = -1; k < i && !ok; k++) /* said once */
			ok = (k < 0 ? c->gid : c->groups[k]) == g;
		if (!ok) {
			size_t l = strlen(buf);
			snprintf(buf + l, len - l, "%s%u", l ? ", " : "", (unsigned)g);
		}
	}
	free(own);
}

void qu_policy_identity(const struct qu_policy *p, const struct qu_context *c, struct qu_refusals *out)
{
	if (unreadable(p, out))
		return;
	const struct qu_agent_policy *a = &p->conf.agent;
	const char *file = file_of(p);
	int group0 = c->gid == 0;
	for (int i = 0; i < c->ngroups; i++)
		group0 |= c->groups[i] == 0;
	if (c->userns)
		qu_refusals_add(out, "the new QEMU would run in a user namespace (its uid %u there), which cannot follow a "
				"VM to this host: not started", (unsigned)c->ns_uid);
	if (c->uid == 0 && !a->allow_root)
		qu_refusals_add(out, "the VM's QEMU runs as root (uid 0): the agent starts QEMU as root only with "
				"'agent_allow_root = yes' in %s", file);
	if (c->uid != 0 && group0 && !a->allow_root)
		qu_refusals_add(out, "the VM's QEMU runs with group root (gid 0): allowed only with 'agent_allow_root = "
				"yes' in %s; run the VM without that group", file);
	if (c->uid != 0 && (c->cap_prm | c->cap_eff | c->cap_amb | c->cap_inh) && !a->allow_root)
		qu_refusals_add(out, "the VM's QEMU holds capabilities (permitted %llx, ambient %llx), a part of root's "
				"power: allowed only with 'agent_allow_root = yes' in %s", c->cap_prm, c->cap_amb, file);
	if (c->uid != 0 && (c->policy == SCHED_FIFO || c->policy == SCHED_RR) && !a->allow_root)
		qu_refusals_add(out, "the VM's QEMU runs with real-time scheduling (%s), which can starve this host: "
				"allowed only with 'agent_allow_root = yes' in %s", c->policy == SCHED_FIFO ? "SCHED_FIFO" :
				"SCHED_RR", file);
	if (c->uid == 0)
		return;
	char buf[1024], groups[256];
	struct passwd pwbuf, *pw = NULL;
	getpwuid_r(c->uid, &pwbuf, buf, sizeof(buf), &pw);
	if (!user_listed(a, c->uid, pw ? pw->pw_name : NULL))
		qu_refusals_add(out, "the VM's QEMU runs as uid %u%s%s%s, which is not in agent_users in %s: add %s there to "
				"let the agent start QEMU as that user", (unsigned)c->uid, pw ? " (" : "",
				pw ? pw->pw_name : "", pw ? ")" : "", file, pw ? pw->pw_name : "the uid");
	else if (!pw)
		qu_refusals_add(out, "uid %u has no account on this host, so the groups its QEMU would get (gid %u and %d "
				"more) cannot be checked: create the account", (unsigned)c->uid, (unsigned)c->gid, c->ngroups);
	if (!pw)
		return;
	foreign_groups(c, pw, groups, sizeof(groups));
	if (groups[0])
		qu_refusals_add(out, "the VM's QEMU runs with group(s) %s, which %s (uid %u) does not have on this host: "
				"give the user those groups here (/etc/group), or run the VM without them", groups,
				pw->pw_name, (unsigned)c->uid);
}

/* Whether dir (a real path) is one of the allowed directories or below one. */
static int under_allowed(const struct qu_policy *p, const char *dir)
{
	for (int i = 0; i < p->conf.agent.ndirs; i++) {
		const char *d = p->real[i];
		size_t n = strlen(d);
		if (n && (!strcmp(d, "/") || (!strncmp(dir, d, n) && (dir[n] == '\0' || dir[n] == '/'))))
			return 1;
	}
	return 0;
}

static void dirs_text(const struct qu_policy *p, char *buf, size_t len)
{
	buf[0] = '\0';
	for (int i = 0; i < p->conf.agent.ndirs; i++) {
		size_t l = strlen(buf);
		snprintf(buf + l, len - l, "%s%s", l ? " " : "", p->conf.agent.dirs[i]);
	}
}

void qu_policy_path(const struct qu_policy *p, const char *path, const char *what, int must_be_new,
		    struct qu_refusals *out)
{
	if (unreadable(p, out))
		return;
	char real[PATH_MAX], dirs[512];
	struct qu_safe_dir d;
	struct stat st;
	if (path[0] != '/') {
		qu_refusals_add(out, "the %s '%s' is not an absolute path: not made", what, path);
		return;
	}
	int r = qu_safe_open_dir_real(path, (uid_t)-1, 0, &d, real, sizeof(real));
	if (r == -ENOENT) {
		qu_refusals_add(out, "the %s %s: its directory does not exist on this host; create it there first", what,
				path);
		return;
	}
	if (r < 0) {
		/* A link on the way that root did not make, '..', a name too long: said by the walk. */
		qu_refusals_add(out, "the %s is refused: %s", what, qu_err_msg());
		qu_err_clear();
		return;
	}
	int exists = fstatat(d.fd, d.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	qu_safe_close(&d);
	/* An existing directory (a mem-path=DIR): what is made is made in it. */
	if (exists && S_ISDIR(st.st_mode) && !must_be_new) {
		size_t l = strlen(real);
		snprintf(real + l, sizeof(real) - l, "%s%s", strcmp(real, "/") ? "/" : "", d.name);
	}
	dirs_text(p, dirs, sizeof(dirs));
	if (!under_allowed(p, real))
		qu_refusals_add(out, "the %s %s is in %s, outside the directories the agent may make files in (agent_dirs "
				"in %s: %s): add %s there", what, path, real, file_of(p), dirs[0] ? dirs : "none set", real);
	else if (exists && S_ISLNK(st.st_mode))
		qu_refusals_add(out, "the %s %s is a symbolic link on this host: never followed; remove it", what, path);
	else if (exists && must_be_new && !S_ISSOCK(st.st_mode))
		qu_refusals_add(out, "the %s %s exists on this host already and would be replaced: remove it first", what,
				path);
	/* An existing socket is judged when it is made, as the VM's user: one nobody listens
	 * on (its QEMU died) is replaced, a live one refused (recreate.c, make_listener). */
}

void qu_policy_standby(const struct qu_policy *p, struct qu_refusals *out)
{
	if (unreadable(p, out))
		return;
	/* Off by default: a standby holds a second copy of the guest's RAM here and listens on
	 * this host's address for the primary's wires for as long as it protects. */
	if (!p->conf.agent.standby)
		qu_refusals_add(out, "this host does not hold hot standbys: allowed only with 'agent_standby = yes' in %s",
				file_of(p));
}

/* -serial file:PATH, -monitor unix:PATH,server=on, ...: the legacy chardev forms. */
static void legacy_chardev(const struct qu_policy *p, const char *val, struct qu_refusals *out)
{
	char path[PATH_MAX];
	if (!strncmp(val, "file:", 5)) {
		qu_policy_path(p, val + 5, "chardev file", 0, out);
	} else if (!strncmp(val, "unix:", 5) && (strstr(val, ",server") || strstr(val, ",listen"))) {
		snprintf(path, sizeof(path), "%.*s", (int)strcspn(val + 5, ","), val + 5);
		qu_policy_path(p, path, "server socket", 1, out);
	}
}

/* /proc/self/fd/N: the descriptor the agent itself gives QEMU (the RAM it made). */
static int own_fd_path(const char *s)
{
	return !strncmp(s, "/proc/self/fd/", 14) && s[14] && strspn(s + 14, "0123456789") == strlen(s + 14);
}

/* One option that may make files: each path it names goes through qu_policy_path. */
static void option_paths(const struct qu_policy *p, const char *opt, const char *val, struct qu_refusals *out)
{
	json_object *o = NULL;
	const char *v;
	if (!strcmp(opt, "pidfile"))
		qu_policy_path(p, val, "pidfile", 0, out);
	else if (!strcmp(opt, "D"))
		qu_policy_path(p, val, "QEMU log (-D)", 0, out);
	else if (!strcmp(opt, "mem-path"))
		qu_policy_path(p, val, "RAM file (-mem-path)", 0, out);
	else if (!strcmp(opt, "serial") || !strcmp(opt, "parallel") || !strcmp(opt, "monitor") || !strcmp(opt, "qmp") ||
		 !strcmp(opt, "qmp-pretty") || !strcmp(opt, "debugcon"))
		legacy_chardev(p, val, out);
	else if (!strcmp(opt, "vnc") && !strncmp(val, "unix:", 5)) {
		char path[PATH_MAX]; /* VNC always listens */
		snprintf(path, sizeof(path), "%.*s", (int)strcspn(val + 5, ","), val + 5);
		qu_policy_path(p, path, "server socket", 1, out);
	}
	if (strcmp(opt, "object") && strcmp(opt, "chardev") && strcmp(opt, "trace"))
		return;
	if (!(o = qu_option_parse(opt, val))) {
		qu_refusals_add(out, "-%s %.200s cannot be read, so what it would make cannot be checked", opt, val);
		return;
	}
	const char *type = qu_option_get(o, !strcmp(opt, "object") ? "qom-type" : "backend");
	if (!strcmp(opt, "object") && type && !strcmp(type, "memory-backend-file") && (v = qu_option_get(o, "mem-path")) &&
	    !own_fd_path(v))
		qu_policy_path(p, v, "RAM file (mem-path)", 0, out);
	if (!strcmp(opt, "chardev") && type && !strcmp(type, "file") && (v = qu_option_get(o, "path")))
		qu_policy_path(p, v, "chardev file", 0, out);
	if (!strcmp(opt, "chardev") && type && !strcmp(type, "socket") && (v = qu_option_get(o, "path")) &&
	    (qu_option_true(o, "server") || qu_option_true(o, "listen")))
		qu_policy_path(p, v, "server socket", 1, out);
	if (!strcmp(opt, "chardev") && (v = qu_option_get(o, "logfile")))
		qu_policy_path(p, v, "chardev log", 0, out);
	if (!strcmp(opt, "trace") && (v = qu_option_get(o, "file")))
		qu_policy_path(p, v, "trace file", 0, out);
	json_object_put(o);
}

void qu_policy_argv(const struct qu_policy *p, char *const *argv, size_t argc, struct qu_refusals *out)
{
	struct qu_argv v;
	if (unreadable(p, out))
		return;
	if (argc == 0 || qu_argv_from_array((int)argc, argv, &v) < 0) {
		qu_refusals_add(out, "the command line cannot be read, so what it would make cannot be checked");
		return;
	}
	for (size_t i = 0; i < v.n; i++)
		if (v.a[i].opt && v.a[i].val)
			option_paths(p, v.a[i].opt, v.a[i].val, out);
	qu_argv_free(&v);
}
