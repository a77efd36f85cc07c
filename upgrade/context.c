#include "upgrade/context.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *status_field(const char *status, const char *key)
{
	const char *p = strstr(status, key);
	return p ? p + strlen(key) : NULL;
}

/* Where each cgroup hierarchy is mounted here, by its /proc/PID/cgroup "controllers" field
 * ("" for v2, "memory", "cpu,cpuacct", "name=systemd"). */
int qu_cgroup_mount(const char *controllers, char *out, size_t len)
{
	char *text = NULL, *save = NULL;
	int found = -ENOENT;
	if (qu_read_file("/proc/self/mountinfo", &text, NULL) < 0)
		return -ENOENT;
	for (char *line = strtok_r(text, "\n", &save); line && found; line = strtok_r(NULL, "\n", &save)) {
		char mnt[PATH_MAX], fstype[32], opts[512];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%31s %*s %511s", fstype, opts) != 2)
			continue;
		if (!*controllers) {
			if (!strcmp(fstype, "cgroup2")) {
				snprintf(out, len, "%s", mnt);
				found = 0;
			}
			continue;
		}
		if (strcmp(fstype, "cgroup"))
			continue;
		/* Every controller of the hierarchy must be among the mount's super options. */
		char want[256], *s2 = NULL;
		int all = 1;
		snprintf(want, sizeof(want), "%s", controllers);
		for (char *c = strtok_r(want, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) {
			char needle[80];
			snprintf(needle, sizeof(needle), ",%s,", c);
			char hay[520];
			snprintf(hay, sizeof(hay), ",%s,", opts);
			all &= strstr(hay, needle) != NULL;
		}
		if (all) {
			snprintf(out, len, "%s", mnt);
			found = 0;
		}
	}
	free(text);
	return found;
}

/* The cgroup.procs file of each cgroup a /proc/.../cgroup file names, as mounted here. */
static int cgroup_files(const char *cgroup_file, char (*procs)[PATH_MAX + 32], int max)
{
	char *text = NULL, *save = NULL;
	int n = 0;
	if (qu_read_file(cgroup_file, &text, NULL) < 0)
		return -ENOENT;
	for (char *line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL, mnt[PATH_MAX];
		if (!c2)
			continue;
		*c2 = '\0';
		if (qu_cgroup_mount(c1 + 1, mnt, sizeof(mnt)) < 0)
			continue;
		snprintf(procs[n++], sizeof(procs[0]), "%s%s/cgroup.procs", mnt, strcmp(c2 + 1, "/") ? c2 + 1 : "");
	}
	free(text);
	return n;
}

static void read_cgroups(pid_t pid, struct qu_context *c)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	int n = cgroup_files(path, c->cgroup_procs, QU_CTX_MAX_CGROUPS);
	c->ncgroups = n > 0 ? n : 0;
}

/* Whether this process is in the cgroup whose cgroup.procs file is procs already (the same
 * file name, made the same way from /proc/self/cgroup). */
static int in_cgroup(char (*mine)[PATH_MAX + 32], int nmine, const char *procs)
{
	for (int i = 0; i < nmine; i++)
		if (!strcmp(mine[i], procs))
			return 1;
	return 0;
}

/* /proc/PID/limits rather than prlimit(2): reading another user's limits that way needs
 * CAP_SYS_RESOURCE. The kernel prints the limits in RLIMIT_* order, the soft value in the
 * column from 26 and the hard one from 47. */
static rlim_t limit_value(const char *s)
{
	return !strncmp(s, "unlimited", 9) ? RLIM_INFINITY : (rlim_t)strtoull(s, NULL, 10);
}

static int read_limits(pid_t pid, struct qu_context *c)
{
	char path[64], *text = NULL, *save = NULL;
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	int r = qu_read_file(path, &text, NULL);
	if (r < 0)
		return qu_err(r, "cannot read %s: %s", path, strerror(-r));
	int i = -1;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		if (i < 0)
			continue; /* the header */
		if (i >= RLIM_NLIMITS || strlen(line) < 48)
			break;
		c->rlim[i].rlim_cur = limit_value(line + 26);
		c->rlim[i].rlim_max = limit_value(line + 47);
	}
	free(text);
	return i == RLIM_NLIMITS ? 0 : qu_err(-EPROTO, "cannot parse %s", path);
}

/* The LSM label, from the module's own file when the kernel has one (AppArmor since 5.8),
 * else the shared one (SELinux, older AppArmor). Without an LSM that labels processes the
 * read fails (EINVAL): nothing to carry. */
static void read_label(pid_t pid, struct qu_context *c)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/attr/apparmor/current", (int)pid);
	int apparmor = qu_read_file(path, &text, NULL) == 0;
	if (!apparmor) {
		snprintf(path, sizeof(path), "/proc/%d/attr/current", (int)pid);
		if (qu_read_file(path, &text, NULL) < 0)
			return;
	}
	text[strcspn(text, "\n")] = '\0';
	/* AppArmor writes "profile (mode)" or "unconfined"; SELinux "user:role:type:level". */
	char *mode = strstr(text, " (");
	apparmor |= mode != NULL || !strcmp(text, "unconfined");
	if (mode)
		*mode = '\0';
	if (text[0] && strcmp(text, "unconfined") && strlen(text) < sizeof(c->label)) {
		snprintf(c->lsm, sizeof(c->lsm), "%s", apparmor ? "apparmor" : "selinux");
		snprintf(c->label, sizeof(c->label), "%s", text);
	}
	free(text);
}

/* host ID -> the ID it has in the user namespace whose map (as this host sees it: "inside
 * outside count" lines) is in file; -ENOENT when it is not mapped there. */
static long long map_in(pid_t pid, const char *file, unsigned long long host)
{
	char path[64], *text = NULL, *save = NULL;
	long long id = -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if (qu_read_file(path, &text, NULL) < 0)
		return -ENOENT;
	for (char *line = strtok_r(text, "\n", &save); line && id < 0; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long in, out, n;
		if (sscanf(line, "%llu %llu %llu", &in, &out, &n) == 3 && host >= out && host - out < n)
			id = (long long)(in + (host - out));
	}
	free(text);
	return id;
}

static int read_userns(pid_t pid, struct qu_context *c)
{
	char theirs[64], ours[64];
	if (qu_proc_readlink(pid, "ns/user", theirs, sizeof(theirs)) < 0 ||
	    qu_proc_readlink(getpid(), "ns/user", ours, sizeof(ours)) < 0 || !strcmp(theirs, ours))
		return 0;
	long long u = map_in(pid, "uid_map", c->uid), g = map_in(pid, "gid_map", c->gid);
	if (u < 0 || g < 0)
		return qu_err(-EPROTO, "PID %d runs in a user namespace where its own uid %u or gid %u is not mapped",
			      (int)pid, (unsigned)c->uid, (unsigned)c->gid);
	c->userns = 1;
	c->ns_uid = (uid_t)u;
	c->ns_gid = (gid_t)g;
	return 0;
}

int qu_context_read(pid_t pid, struct qu_context *c)
{
	char path[64], *status = NULL, *oom = NULL;
	const char *v;
	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int r = qu_read_file(path, &status, NULL);
	if (r < 0)
		return qu_err(r, "cannot read %s: %s", path, strerror(-r));
	unsigned u, g, um;
	if (!(v = status_field(status, "\nUid:")) || sscanf(v, "%*u %u", &u) != 1 ||
	    !(v = status_field(status, "\nGid:")) || sscanf(v, "%*u %u", &g) != 1) {
		free(status);
		return qu_err(-EPROTO, "cannot parse %s", path);
	}
	c->uid = u; /* the effective IDs: what the process acts as */
	c->gid = g;
	c->umask = (v = status_field(status, "\nUmask:")) && sscanf(v, "%o", &um) == 1 ? um : 022;
	const char *capk[5] = { "\nCapInh:", "\nCapPrm:", "\nCapEff:", "\nCapBnd:", "\nCapAmb:" };
	unsigned long long *capv[5] = { &c->cap_inh, &c->cap_prm, &c->cap_eff, &c->cap_bnd, &c->cap_amb };
	for (int i = 0; i < 5; i++)
		if (!(v = status_field(status, capk[i])) || sscanf(v, "%llx", capv[i]) != 1)
			*capv[i] = 0;
	c->nnp = (v = status_field(status, "\nNoNewPrivs:")) && atoi(v) == 1;
	c->seccomp = (v = status_field(status, "\nSeccomp:")) ? atoi(v) : 0;
	c->seccomp_filters = (v = status_field(status, "\nSeccomp_filters:")) ? atoi(v) : 0;
	if ((v = status_field(status, "\nGroups:"))) {
		const char *end = strchr(v, '\n');
		for (char *p = (char *)v; p < end && c->ngroups < QU_CTX_MAX_GROUPS;) {
			char *next;
			unsigned long gr = strtoul(p, &next, 10);
			if (next == p)
				break;
			c->groups[c->ngroups++] = (gid_t)gr;
			p = next;
		}
	}
	free(status);
	errno = 0;
	c->nice = getpriority(PRIO_PROCESS, (id_t)pid);
	struct sched_param sp;
	c->policy = sched_getscheduler(pid);
	c->sched_priority = sched_getparam(pid, &sp) == 0 ? sp.sched_priority : 0;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	if (qu_read_file(path, &oom, NULL) == 0)
		c->oom_score_adj = atoi(oom);
	free(oom);
	if ((r = read_limits(pid, c)) < 0)
		return r;
	if (sched_getaffinity(pid, sizeof(c->affinity), &c->affinity) < 0)
		return qu_err(-errno, "sched_getaffinity(%d): %s", (int)pid, strerror(errno));
	read_cgroups(pid, c);
	read_label(pid, c);
	return read_userns(pid, c);
}

char *qu_context_encode(const struct qu_context *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "uid=%u\ngid=%u\numask=%o\nnice=%d\npolicy=%d\nsched_priority=%d\noom_score_adj=%d\n",
		(unsigned)c->uid, (unsigned)c->gid, (unsigned)c->umask, c->nice, c->policy, c->sched_priority,
		c->oom_score_adj);
	fprintf(f, "cap_inh=%llx\ncap_prm=%llx\ncap_eff=%llx\ncap_amb=%llx\ncap_bnd=%llx\n", c->cap_inh,
		c->cap_prm, c->cap_eff, c->cap_amb, c->cap_bnd);
	fprintf(f, "groups=");
	for (int i = 0; i < c->ngroups; i++)
		fprintf(f, "%s%u", i ? "," : "", (unsigned)c->groups[i]);
	fprintf(f, "\naffinity=");
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &c->affinity))
			fprintf(f, "%d,", cpu);
	fprintf(f, "\n");
	for (int i = 0; i < RLIM_NLIMITS; i++)
		fprintf(f, "rlimit%d=%llu:%llu\n", i, (unsigned long long)c->rlim[i].rlim_cur,
			(unsigned long long)c->rlim[i].rlim_max);
	for (int i = 0; i < c->ncgroups; i++)
		fprintf(f, "cgroup=%s\n", c->cgroup_procs[i]);
	fprintf(f, "nnp=%d\nseccomp=%d\nseccomp_filters=%d\n", c->nnp, c->seccomp, c->seccomp_filters);
	if (c->label[0])
		fprintf(f, "lsm=%s\nlabel=%s\n", c->lsm, c->label);
	if (c->userns)
		fprintf(f, "userns=1\nns_uid=%u\nns_gid=%u\n", (unsigned)c->ns_uid, (unsigned)c->ns_gid);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* A text field set from the record, its tail zeroed: a key given twice leaves nothing of the
 * longer first value behind the shorter second (the struct is compared whole). */
static void set_text(char *field, size_t size, const char *v)
{
	memset(field, 0, size);
	snprintf(field, size, "%s", v);
}

int qu_context_decode(const char *text, struct qu_context *c)
{
	char *copy = strdup(text), *save = NULL;
	if (!copy)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->umask = 022;
	for (int i = 0; i < RLIM_NLIMITS; i++)
		c->rlim[i].rlim_cur = c->rlim[i].rlim_max = RLIM_INFINITY;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		const char *k = line, *v = eq + 1;
		int idx;
		unsigned long long cur, max;
		if (!strcmp(k, "uid"))
			c->uid = (uid_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "gid"))
			c->gid = (gid_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "umask"))
			c->umask = (mode_t)strtoul(v, NULL, 8);
		else if (!strcmp(k, "nice"))
			c->nice = atoi(v);
		else if (!strcmp(k, "policy"))
			c->policy = atoi(v);
		else if (!strcmp(k, "sched_priority"))
			c->sched_priority = atoi(v);
		else if (!strcmp(k, "oom_score_adj"))
			c->oom_score_adj = atoi(v);
		else if (!strcmp(k, "cap_inh"))
			c->cap_inh = strtoull(v, NULL, 16);
		else if (!strcmp(k, "cap_prm"))
			c->cap_prm = strtoull(v, NULL, 16);
		else if (!strcmp(k, "cap_eff"))
			c->cap_eff = strtoull(v, NULL, 16);
		else if (!strcmp(k, "cap_amb"))
			c->cap_amb = strtoull(v, NULL, 16);
		else if (!strcmp(k, "cap_bnd"))
			c->cap_bnd = strtoull(v, NULL, 16);
		else if (!strcmp(k, "groups"))
			for (const char *p = v; *p && c->ngroups < QU_CTX_MAX_GROUPS; p += strcspn(p, ",") + !!p[strcspn(p, ",")])
				c->groups[c->ngroups++] = (gid_t)strtoul(p, NULL, 10);
		else if (!strcmp(k, "affinity"))
			for (const char *p = v; *p; p += strcspn(p, ",") + !!p[strcspn(p, ",")]) {
				int cpu = atoi(p);
				if (cpu >= 0 && cpu < CPU_SETSIZE)
					CPU_SET(cpu, &c->affinity);
			}
		else if (sscanf(k, "rlimit%d", &idx) == 1 && idx >= 0 && idx < RLIM_NLIMITS &&
			 sscanf(v, "%llu:%llu", &cur, &max) == 2) {
			c->rlim[idx].rlim_cur = (rlim_t)cur;
			c->rlim[idx].rlim_max = (rlim_t)max;
		} else if (!strcmp(k, "cgroup") && c->ncgroups < QU_CTX_MAX_CGROUPS)
			snprintf(c->cgroup_procs[c->ncgroups++], sizeof(c->cgroup_procs[0]), "%s", v);
		else if (!strcmp(k, "nnp"))
			c->nnp = atoi(v) != 0;
		else if (!strcmp(k, "seccomp"))
			c->seccomp = atoi(v);
		else if (!strcmp(k, "seccomp_filters"))
			c->seccomp_filters = atoi(v);
		else if (!strcmp(k, "lsm"))
			set_text(c->lsm, sizeof(c->lsm), v);
		else if (!strcmp(k, "label"))
			set_text(c->label, sizeof(c->label), v);
		else if (!strcmp(k, "userns"))
			c->userns = atoi(v) != 0;
		else if (!strcmp(k, "ns_uid"))
			c->ns_uid = (uid_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "ns_gid"))
			c->ns_gid = (gid_t)strtoul(v, NULL, 10);
	}
	free(copy);
	return 0;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = qu_write_full(fd, text, strlen(text));
	close(fd);
	return r;
}

static int cap_last(void)
{
	int last = (int)cap_max_bits() - 1;
	return last > 63 ? 63 : last;
}

/* The user the new QEMU acts as where it runs: in its user namespace when it has one. */
static uid_t acting_uid(const struct qu_context *c)
{
	return c->userns ? c->ns_uid : c->uid;
}

/* The bounding set: what the old QEMU's lacked goes. For root it is also what execve grants
 * (root gets its whole bounding set), so it is narrowed to what the old QEMU holds: a root
 * QEMU whose starter dropped capabilities (or set SECBIT_NOROOT, which no other process can
 * read) does not get them back. */
static int apply_bounding_set(const struct qu_context *c)
{
	if (!c->cap_bnd)
		return 0; /* not given (an older sender): leave the bounding set alone */
	unsigned long long keep = c->cap_bnd;
	if (acting_uid(c) == 0)
		keep &= c->cap_prm;
	for (int cap = 0; cap <= cap_last(); cap++)
		if (!(keep & (1ULL << cap)) && CAP_IS_SUPPORTED(cap) && cap_drop_bound(cap) < 0)
			return -errno;
	return prctl(PR_SET_KEEPCAPS, acting_uid(c) != 0 && c->cap_amb, 0, 0, 0) < 0 ? -errno : 0;
}

/* A non-root QEMU keeps capabilities across execve only as ambient ones: set them, with
 * the permitted and inheritable sets they need. */
static int apply_caps_after(const struct qu_context *c)
{
	if (acting_uid(c) == 0 || !c->cap_amb)
		return 0;
	cap_t caps = cap_init();
	if (!caps)
		return -ENOMEM;
	int r = 0;
	for (int cap = 0; cap <= cap_last(); cap++) {
		cap_value_t v = cap;
		if (c->cap_prm & (1ULL << cap))
			r |= cap_set_flag(caps, CAP_PERMITTED, 1, &v, CAP_SET);
		if ((c->cap_inh | c->cap_amb) & (1ULL << cap))
			r |= cap_set_flag(caps, CAP_INHERITABLE, 1, &v, CAP_SET);
		if (c->cap_eff & (1ULL << cap))
			r |= cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_SET);
	}
	if (r == 0 && cap_set_proc(caps) < 0)
		r = -errno;
	cap_free(caps);
	for (int cap = 0; r == 0 && cap <= cap_last(); cap++)
		if ((c->cap_amb & (1ULL << cap)) && cap_set_ambient(cap, CAP_SET) < 0)
			r = -errno;
	return r < 0 ? r : 0;
}

/* The label the new QEMU gets at its execve (an exec transition, as aa_change_onexec() and
 * setexeccon() do): it never starts unconfined. A write that fails stops the launch. */
static int apply_label(const struct qu_context *c)
{
	char text[sizeof(c->label) + 8];
	if (!c->label[0])
		return 0;
	int apparmor = !strcmp(c->lsm, "apparmor");
	snprintf(text, sizeof(text), "%s%s", apparmor ? "exec " : "", c->label);
	int r = apparmor ? write_text("/proc/self/attr/apparmor/exec", text) : -ENOENT;
	if (r == -ENOENT)
		r = write_text("/proc/self/attr/exec", text);
	return r;
}

int qu_context_apply(const struct qu_context *c, char *what, size_t len)
{
	char num[32];
	int r;
#define FAIL(...) do { snprintf(what, len, __VA_ARGS__); return r; } while (0)
	snprintf(num, sizeof(num), "%d", (int)getpid());
	/* A join moves the process even into the cgroup it is in, under the kernel's cgroup
	 * locks taken for writing (10 such joins took 0.88 ms here; more where that lock waits
	 * for an RCU grace period): skip the cgroups this process is in already, which for a VM
	 * in the tool's own cgroups is all of them. Unknown (unreadable): join them all. */
	char (*mine)[PATH_MAX + 32] = malloc(QU_CTX_MAX_CGROUPS * sizeof(*mine));
	int nmine = mine ? cgroup_files("/proc/self/cgroup", mine, QU_CTX_MAX_CGROUPS) : 0;
	for (int i = 0; i < c->ncgroups; i++)
		if (!in_cgroup(mine, nmine, c->cgroup_procs[i]) && (r = write_text(c->cgroup_procs[i], num)) < 0) {
			free(mine);
			FAIL("cannot join the cgroup %s", c->cgroup_procs[i]);
		}
	free(mine);
	for (int i = 0; i < RLIM_NLIMITS; i++)
		if (setrlimit((enum __rlimit_resource)i, &c->rlim[i]) < 0 && (r = -errno))
			FAIL("cannot set resource limit %d", i);
	if (CPU_COUNT(&c->affinity) && sched_setaffinity(0, sizeof(c->affinity), &c->affinity) < 0 && (r = -errno))
		FAIL("cannot set the CPU affinity");
	struct sched_param sp = { .sched_priority = c->sched_priority };
	if (sched_setscheduler(0, c->policy, &sp) < 0 && (r = -errno))
		FAIL("cannot set the scheduling policy %d", c->policy);
	if (setpriority(PRIO_PROCESS, 0, c->nice) < 0 && (r = -errno))
		FAIL("cannot set the nice value %d", c->nice);
	snprintf(num, sizeof(num), "%d", c->oom_score_adj);
	if ((r = write_text("/proc/self/oom_score_adj", num)) < 0)
		FAIL("cannot set oom_score_adj %d", c->oom_score_adj);
	umask(c->umask);
	if ((r = apply_label(c)) < 0)
		FAIL("cannot give the new QEMU the %s label '%s'", c->lsm, c->label);
	/* As this host sees them: inside a user namespace the old QEMU's groups are kept as they
	 * are, and could not be set there. */
	if (setgroups((size_t)c->ngroups, c->groups) < 0 && (r = -errno))
		FAIL("cannot set the supplementary groups");
#undef FAIL
	return 0;
}

int qu_context_apply_identity(const struct qu_context *c, char *what, size_t len)
{
	int r;
	gid_t gid = c->userns ? c->ns_gid : c->gid;
#define FAIL(...) do { snprintf(what, len, __VA_ARGS__); return r; } while (0)
	if ((r = apply_bounding_set(c)) < 0)
		FAIL("cannot drop capabilities from the bounding set");
	if (setresgid(gid, gid, gid) < 0 && (r = -errno))
		FAIL("cannot set group %u", (unsigned)gid);
	if (setresuid(acting_uid(c), acting_uid(c), acting_uid(c)) < 0 && (r = -errno))
		FAIL("cannot set user %u", (unsigned)acting_uid(c));
	if ((r = apply_caps_after(c)) < 0)
		FAIL("cannot set the capabilities (permitted %llx, ambient %llx)", c->cap_prm, c->cap_amb);
	if (c->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 && (r = -errno))
		FAIL("cannot set no_new_privs");
#undef FAIL
	return 0;
}

/* name -> tid of each thread of pid. */
static int thread_named(pid_t pid, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	int tid = -1;
	if (!d)
		return -1;
	for (struct dirent *e; tid < 0 && (e = readdir(d));) {
		char p[300], *comm = NULL;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		if (qu_read_file(p, &comm, NULL) == 0) {
			comm[strcspn(comm, "\n")] = '\0';
			if (!strcmp(comm, name))
				tid = atoi(e->d_name);
			free(comm);
		}
	}
	closedir(d);
	return tid;
}

int qu_thread_affinity_copy(pid_t from, pid_t to)
{
	char path[64];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)from);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	for (struct dirent *e; (e = readdir(d));) {
		char p[300], *comm = NULL;
		cpu_set_t set;
		if (e->d_name[0] == '.' || atoi(e->d_name) == from)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/comm", (int)from, e->d_name);
		if (qu_read_file(p, &comm, NULL) < 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		/* Only threads QEMU names after what they do: vCPUs, I/O threads. */
		int tid = strncmp(comm, "CPU ", 4) && strncmp(comm, "IO ", 3) ? -1 : thread_named(to, comm);
		if (tid > 0 && sched_getaffinity(atoi(e->d_name), sizeof(set), &set) == 0 &&
		    sched_setaffinity(tid, sizeof(set), &set) == 0)
			n++;
		free(comm);
	}
	closedir(d);
	return n;
}
