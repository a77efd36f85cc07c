#include "remote/target.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/ramblocks.h"
#include "remote/announce.h"
#include "remote/blk/nbd.h"
#include "remote/tls.h"
#include "upgrade/clock.h"
#include "upgrade/context.h"
#include "upgrade/fault.h"
#include "upgrade/fdpass/asuser.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/fdpass/procfd.h"
#include "upgrade/io.h"
#include "upgrade/journal.h"
#include "upgrade/kv.h"
#include "upgrade/launcher.h"
#include "upgrade/memory.h"
#include "upgrade/log.h"
#include "upgrade/plan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define TARGET_MAX_WORDS 4096
#define TARGET_MAX_FDS 64
#define TARGET_MAX_DISKS 16
#define TARGET_MAX_CREATED (TARGET_MAX_FDS + TARGET_MAX_DISKS)

struct target_fd {
	int target;
	unsigned kind;
	char name[128];
	char spec[QU_SUN_PATH_MAX + 64];
};

struct target_disk {
	char path[PATH_MAX];
	char format[16];
	unsigned long long size;
	char device[64];
};

struct qu_target {
	char *argv[TARGET_MAX_WORDS + 1], *envp[TARGET_MAX_WORDS + 1];
	size_t nargv, nenvp;
	char *cwd, *context;
	struct target_fd fds[TARGET_MAX_FDS];
	size_t nfds;
	struct target_disk disks[TARGET_MAX_DISKS];
	size_t ndisks;
	char created[TARGET_MAX_CREATED][PATH_MAX]; /* files made here, removed if not resumed: */
	int own[TARGET_MAX_CREATED];                /* 1: the agent's own (as root); 0: the VM's */
	size_t ncreated;
	char ctl_path[QU_SUN_PATH_MAX];
	pid_t pid;
	int pidfd;
	int stderr_rd;
	struct qu_qmp *ctl;
	int resumed;
	int no_tls;                 /* the tool asked for plain TCP (--no-tls) */
	const struct qu_seal *seal; /* the session, whose key the TLS key derives from */
	unsigned long long booking; /* this host's memory ledger: the copy's room, while we run */
	struct qu_tls tls;
};

/* The session's record, <state dir>/agent-<session pid>.session: what the agent's listener
 * must undo if this session process dies without doing it itself (killed, out of memory):
 * the new QEMU unless it was resumed, and the files made for it: "created=" the VM user's
 * (removed as that user, "uid=", "gid=", "groups="), "own=" the agent's (the TLS key).
 * Rewritten at each change. */
static void record_path(pid_t session, char *buf, size_t len)
{
	snprintf(buf, len, "%s/agent-%d.session", qu_state_dir(), (int)session);
}

/* The VM's user, from the context (root when none came): what is made for the VM is made as
 * that user, only where that user may make it (upgrade/fdpass/asuser.h). */
static void vm_ident(const struct qu_target *t, struct qu_ident *who)
{
	struct qu_context *c = calloc(1, sizeof(*c));
	memset(who, 0, sizeof(*who));
	who->umask = 077;
	if (c && t->context && qu_context_decode(t->context, c) == 0)
		qu_ident_of(c, who);
	free(c);
}

/* The identity a record names, for removing the VM's files of a session that died. */
static void record_ident(const char *text, struct qu_ident *who)
{
	char groups[1024];
	memset(who, 0, sizeof(*who));
	who->uid = (uid_t)qu_kv_num(text, "uid", 65534);
	who->gid = (gid_t)qu_kv_num(text, "gid", 65534);
	if (qu_kv_get(text, "groups", groups, sizeof(groups)) == 0)
		for (char *s = NULL, *g = strtok_r(groups, ",", &s); g && who->ngroups < QU_CTX_MAX_GROUPS;
		     g = strtok_r(NULL, ",", &s))
			who->groups[who->ngroups++] = (gid_t)strtoul(g, NULL, 10);
}

static void record_write(const struct qu_target *t)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	record_path(getpid(), path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	mkdir(qu_state_dir(), 0700); /* the images may come before anything else made it */
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "qemu=%d\nqemu_start=%llu\nresumed=%d\nctl=%s\n", (int)t->pid,
		t->pid > 0 ? qu_proc_starttime(t->pid) : 0ULL, t->resumed, t->ctl_path);
	struct qu_ident who;
	vm_ident(t, &who);
	fprintf(f, "uid=%u\ngid=%u\ngroups=", (unsigned)who.uid, (unsigned)who.gid);
	for (int i = 0; i < who.ngroups; i++)
		fprintf(f, "%s%u", i ? "," : "", (unsigned)who.groups[i]);
	fprintf(f, "\n");
	for (size_t i = 0; i < t->ncreated; i++)
		fprintf(f, "%s=%s\n", t->own[i] ? "own" : "created", t->created[i]);
	if (fclose(f) == 0)
		rename(tmp, path);
}

int qu_target_cleanup_session(pid_t session, char *what, size_t len)
{
	char path[PATH_MAX], *text = NULL;
	record_path(session, path, sizeof(path));
	if (qu_read_file(path, &text, NULL) < 0)
		return 0;
	pid_t qemu = (pid_t)qu_kv_num(text, "qemu", 0);
	unsigned long long start = (unsigned long long)qu_kv_num(text, "qemu_start", 0);
	int resumed = (int)qu_kv_num(text, "resumed", 0), killed = 0;
	if (!resumed && qemu > 0 && qu_proc_alive(qemu, start)) {
		int pfd = qu_pidfd_open(qemu);
		if (pfd >= 0 && qu_proc_alive(qemu, start) && qu_pidfd_kill(pfd, SIGKILL) == 0)
			killed = qu_pidfd_wait_exit(pfd, qu_now_us() + 10000000u) == 0;
		qu_close(&pfd);
	}
	if (!resumed) {
		struct qu_ident who;
		record_ident(text, &who);
		/* Files, then the directories they were in: the VM's as its user, ours as root. */
		for (char *s = NULL, *line = strtok_r(text, "\n", &s); line; line = strtok_r(NULL, "\n", &s))
			if (!strncmp(line, "created=", 8))
				qu_remove_as(&who, line + 8);
			else if (!strncmp(line, "own=", 4) || !strncmp(line, "ctl=", 4))
				remove(strchr(line, '=') + 1);
	}
	free(text);
	unlink(path);
	snprintf(what, len, "session %d ended without cleaning up: %s", (int)session,
		 resumed ? "its QEMU runs the guest, left as it is" : killed ? "its new QEMU stopped, its files removed"
								 : "its files removed");
	return 1;
}

struct qu_target *qu_target_new(void)
{
	struct qu_target *t = calloc(1, sizeof(*t));
	if (t) {
		t->pidfd = -1;
		t->stderr_rd = -1;
	}
	return t;
}

void qu_target_free(struct qu_target *t)
{
	if (!t)
		return;
	qu_qmp_close(t->ctl);
	if (!t->resumed && t->pid > 0) {
		/* Our child (the launcher made us its subreaper), so its PID cannot be reused
		 * before we reap it. */
		if (t->pidfd < 0 || qu_pidfd_kill(t->pidfd, SIGKILL) < 0)
			kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		qu_info("agent: new QEMU %d stopped (not resumed)", (int)t->pid);
	}
	if (!t->resumed) {
		struct qu_ident who;
		vm_ident(t, &who);
		for (size_t i = 0; i < t->ncreated; i++)
			if (t->own[i])
				remove(t->created[i]);
			else
				qu_remove_as(&who, t->created[i]);
	}
	if (t->ctl_path[0])
		unlink(t->ctl_path);
	char record[PATH_MAX];
	record_path(getpid(), record, sizeof(record));
	unlink(record);
	if (t->booking)
		qu_memory_unbook(t->booking);
	/* The key is of no use once the session ends, whatever became of the guest. */
	qu_tls_remove(NULL, &t->tls, 0);
	qu_close(&t->pidfd);
	qu_close(&t->stderr_rd);
	for (size_t i = 0; i < t->nargv; i++)
		free(t->argv[i]);
	for (size_t i = 0; i < t->nenvp; i++)
		free(t->envp[i]);
	free(t->cwd);
	free(t->context);
	free(t);
}

int qu_target_add(struct qu_target *t, struct qu_rec *rec)
{
	char **slot = NULL;
	switch (rec->type) {
	case QU_REC_ARG:
		if (t->nargv == TARGET_MAX_WORDS)
			return -E2BIG;
		slot = &t->argv[t->nargv++];
		break;
	case QU_REC_ENV:
		if (t->nenvp == TARGET_MAX_WORDS)
			return -E2BIG;
		slot = &t->envp[t->nenvp++];
		break;
	case QU_REC_CWD:
		free(t->cwd);
		slot = &t->cwd;
		break;
	case QU_REC_CONTEXT:
		free(t->context);
		slot = &t->context;
		break;
	case QU_REC_FD: {
		/* Nothing but specs cross hosts. */
		if (rec->fd >= 0 || t->nfds == TARGET_MAX_FDS || qu_get_u32(rec->payload) >= 259)
			return -EINVAL;
		struct target_fd *f = &t->fds[t->nfds++];
		f->target = (int)qu_get_u32(rec->payload);
		f->kind = qu_get_u32(rec->payload + 4);
		snprintf(f->name, sizeof(f->name), "%s", (const char *)rec->payload + 8);
		snprintf(f->spec, sizeof(f->spec), "%s", qu_rec_fd_spec(rec));
		return 0;
	}
	default:
		return -EBADMSG;
	}
	*slot = (char *)rec->payload;
	rec->payload = NULL;
	return 0;
}

int qu_target_probe(struct qu_target *t, const char *call, uint64_t deadline_us, char *reply, size_t len)
{
	char path[PATH_MAX], machine[128];
	struct qu_binary *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	qu_kv_get(call, "binary", path, sizeof(path));
	qu_kv_get(call, "machine", machine, sizeof(machine));
	/* As nobody, with a fixed environment: what the peer sent is for the new QEMU alone. */
	int r = qu_binary_probe(path, (uid_t)-1, QU_NOBODY, QU_NOBODY, deadline_us, b), has = 0;
	if (r == 0 && machine[0] && (has = qu_binary_has_machine(b, machine, deadline_us)) < 0)
		r = qu_err(has, "%s: `-machine help` failed", path);
	if (r == 0) {
		char ver[48];
		snprintf(ver, sizeof(ver), "%d.%d.%d", b->ver[0], b->ver[1], b->ver[2]);
		reply[0] = '\0';
		qu_kv_add(reply, len, "version", ver);
		qu_kv_add(reply, len, "version_line", b->version_line);
		qu_kv_addf(reply, len, "machine", "%d", has);
		/* What this host could give a copy of the guest. */
		char *mi = NULL;
		if (qu_read_file("/proc/meminfo", &mi, NULL) == 0) {
			char *m = strstr(mi, "MemAvailable:");
			if (m)
				qu_kv_addf(reply, len, "mem_available", "%llu", strtoull(m + 13, NULL, 10) * 1024ull);
			free(mi);
		}
	}
	free(b);
	/* An older tool sent the VM's environment before a probe: never used, the launch brings
	 * its own. */
	for (size_t i = 0; i < t->nenvp; i++)
		free(t->envp[i]);
	t->nenvp = 0;
	return r;
}

int qu_target_tls(struct qu_target *t, const char *call, const struct qu_seal *seal)
{
	t->no_tls = qu_kv_num(call, "on", 1) == 0;
	t->seal = seal;
	return 0;
}

int qu_target_disk(struct qu_target *t, const char *call)
{
	if (t->ndisks == TARGET_MAX_DISKS)
		return qu_err(-E2BIG, "more than %d disks to copy", TARGET_MAX_DISKS);
	struct target_disk *d = &t->disks[t->ndisks];
	qu_kv_get(call, "path", d->path, sizeof(d->path));
	qu_kv_get(call, "format", d->format, sizeof(d->format));
	qu_kv_get(call, "device", d->device, sizeof(d->device));
	long long size = qu_kv_num(call, "size", -1);
	if (d->path[0] != '/' || !d->format[0] || !d->device[0] || size <= 0 || strspn(d->format, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(d->format))
		return qu_err(-EINVAL, "disk request without an absolute path, format, device and size");
	d->size = (unsigned long long)size;
	t->ndisks++;
	return 0;
}

/* own: made by the agent for itself (removed as root); else made as the VM's user. */
static void remember(struct qu_target *t, const char *path, int own)
{
	if (t->ncreated < TARGET_MAX_CREATED) {
		t->own[t->ncreated] = own;
		snprintf(t->created[t->ncreated++], sizeof(t->created[0]), "%s", path);
	}
	record_write(t);
}

/* The VM's user and group, from the context (root when none came). */
static void vm_owner(const struct qu_target *t, uid_t *uid, gid_t *gid)
{
	struct qu_ident who;
	vm_ident(t, &who);
	*uid = who.uid;
	*gid = who.gid;
}


static const char *find_qemu_img(char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/qemu-img", dir);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* A new file of the VM's user, mode 0600, that did not exist: made as that user (so only
 * where that user may make files, and never through a link), never over an existing file
 * (another VM's disk, or this one's if the storage is shared after all). flags: O_WRONLY and
 * perhaps O_APPEND. Returns the open descriptor. */
static int create_new(struct qu_target *t, const char *path, const char *what, int flags)
{
	struct qu_ident who;
	vm_ident(t, &who);
	int fd = qu_open_as(&who, path, flags | O_CREAT | O_EXCL | O_NOCTTY, 0600);
	if (fd == -EEXIST)
		return qu_err(-EEXIST, "%s exists on this host already: the %s would overwrite it; remove it%s", path,
			      what, strcmp(what, "disk copy") ? "" : ", or pass --shared-storage if it is the same storage");
	if (fd < 0)
		return qu_err(fd, "cannot create %s as uid %u (the VM's user): %s", path, (unsigned)who.uid,
			      strerror(-fd));
	remember(t, path, 0);
	return fd;
}

/* Images to copy into: created empty here, then formatted by qemu-img running as the VM's
 * user, who can touch nothing the VM could not. */
__attribute__((noinline)) static int make_disks(struct qu_target *t, uint64_t deadline_us)
{
	char img[PATH_MAX], size[32], out[1024];
	if (t->ndisks && !find_qemu_img(img, sizeof(img)))
		return qu_err(-ENOENT, "qemu-img is not installed on this host: it makes the images to copy the disks into");
	uid_t uid;
	gid_t gid;
	vm_owner(t, &uid, &gid);
	for (size_t i = 0; i < t->ndisks; i++) {
		struct target_disk *d = &t->disks[i];
		int fd = create_new(t, d->path, "disk copy", O_WRONLY);
		if (fd < 0)
			return fd;
		close(fd);
		snprintf(size, sizeof(size), "%llu", d->size);
		char *argv[] = { img, (char *)"create", (char *)"-q", (char *)"-f", d->format, d->path, size, NULL };
		int r = qu_run_capture(img, -1, argv, uid ? uid : (uid_t)-1, uid ? gid : (gid_t)-1, deadline_us, out,
				       sizeof(out));
		if (r != 0)
			return qu_err(r < 0 ? r : -EIO, "cannot create %s (%s, %s bytes): %s", d->path, d->format, size,
				      r < 0 ? strerror(-r) : out);
	}
	return 0;
}

/* Bound as the VM's user: the socket file is that user's, made where that user may. */
static int make_listener(struct qu_target *t, const char *path)
{
	struct qu_ident who;
	if (path[0] != '/' || strlen(path) >= QU_SUN_PATH_MAX)
		return qu_err(-EINVAL, "listening socket path '%s' is not usable here", path);
	vm_ident(t, &who);
	int fd = qu_listen_as(&who, path, 16);
	if (fd == -EADDRINUSE)
		return qu_err(-EEXIST, "%s exists on this host already (another VM's socket?): remove it first", path);
	if (fd < 0)
		return qu_err(fd, "cannot listen on %s as uid %u (the VM's user): %s", path, (unsigned)who.uid,
			      strerror(-fd));
	remember(t, path, 0);
	return fd;
}

/* A process of this network namespace that holds a queue of tap ifname (its fdinfo says
 * "iff: NAME"), or 0. */
static pid_t tap_holder(const char *ifname)
{
	char ours[64], theirs[64], path[600], *text = NULL, want[IFNAMSIZ + 8];
	ssize_t n = readlink("/proc/self/ns/net", ours, sizeof(ours) - 1);
	if (n < 0)
		return 0;
	ours[n] = '\0';
	snprintf(want, sizeof(want), "iff:\t%s\n", ifname);
	DIR *proc = opendir("/proc");
	pid_t found = 0;
	for (struct dirent *p; proc && !found && (p = readdir(proc));) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", p->d_name);
		n = readlink(path, theirs, sizeof(theirs) - 1);
		if (n < 0 || (theirs[n] = '\0', strcmp(theirs, ours)))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fdinfo", p->d_name);
		DIR *fds = opendir(path);
		for (struct dirent *f; fds && !found && (f = readdir(fds));) {
			snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", p->d_name, f->d_name);
			if (f->d_name[0] != '.' && qu_read_file(path, &text, NULL) == 0) {
				found = strstr(text, want) ? (pid_t)atoi(p->d_name) : 0;
				free(text);
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	return found;
}

/* The tap must exist here already (made and bridged by the host's network setup): a tap
 * that TUNSETIFF would create on the fly would be attached to nothing. Nobody may hold it:
 * a multiqueue tap would take us in as one more queue of another VM's network. */
static int open_tap(const char *spec)
{
	char ifname[IFNAMSIZ + 8], sys[64];
	qu_kv_get(spec, "ifname", ifname, sizeof(ifname));
	if (!ifname[0] || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/'))
		return qu_err(-EINVAL, "a tap without a usable interface name ('%s')", ifname);
	snprintf(sys, sizeof(sys), "/sys/class/net/%s", ifname);
	if (access(sys, F_OK) < 0)
		return qu_err(-ENODEV, "tap '%s' does not exist on this host: create it there first (e.g. `ip tuntap add "
			      "dev %s mode tap`, attached like on the source)", ifname, ifname);
	pid_t holder = tap_holder(ifname);
	if (holder)
		return qu_err(-EBUSY, "tap '%s' is in use on this host by PID %d (another VM?): give the VM a tap of its "
			      "own there", ifname, (int)holder);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return qu_err(-errno, "cannot open /dev/net/tun: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (qu_kv_num(spec, "queues", 1) > 1)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot open tap '%s': %s", ifname, strerror(e));
	}
	return fd;
}

/* Log files reopen at their path, appending, as the VM's user (who may write only what it
 * could write anyway; a new one is that user's); anything else (a pipe, a socket, a terminal
 * of the source host) has no meaning here and becomes /dev/null. */
static int open_stdio(struct qu_target *t, const char *spec)
{
	char path[PATH_MAX];
	struct qu_ident who;
	qu_kv_get(spec, "path", path, sizeof(path));
	if (path[0] != '/' || !strncmp(path, "/dev/", 5) || !strncmp(path, "/proc/", 6))
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	vm_ident(t, &who);
	int fd = qu_open_as(&who, path, O_WRONLY | O_APPEND | O_NOCTTY, 0);
	if (fd == -ENOENT)
		return create_new(t, path, "log", O_WRONLY | O_APPEND);
	return fd < 0 ? qu_err(fd, "cannot open %s for the new QEMU's output as uid %u (the VM's user): %s", path,
			       (unsigned)who.uid, strerror(-fd)) : fd;
}

/* Not inlined: each helper has its own path buffers, and together they would overflow the
 * frame limit of the sanitizer build. */
__attribute__((noinline)) static int make_fd(struct qu_target *t, const struct target_fd *f)
{
	switch (f->kind) {
	case QU_FD_RAM: {
		long long size = qu_kv_num(f->spec, "size", -1);
		int fd = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
		if (size <= 0 || fd < 0 || ftruncate(fd, (off_t)size) < 0) {
			int e = size <= 0 ? EINVAL : errno;
			if (fd >= 0)
				close(fd);
			return qu_err(-e, "cannot make a %lld-byte memfd for %s: %s", size, f->name, strerror(e));
		}
		return fd;
	}
	case QU_FD_LISTENER: {
		char path[PATH_MAX];
		qu_kv_get(f->spec, "path", path, sizeof(path));
		return make_listener(t, path);
	}
	case QU_FD_TAP:
		return open_tap(f->spec);
	case QU_FD_VHOST: {
		int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
		return fd < 0 ? qu_err(-errno, "cannot open /dev/vhost-net for %s: %s", f->name, strerror(errno)) : fd;
	}
	case QU_FD_STDIO:
		return open_stdio(t, f->spec);
	}
	return qu_err(-EOPNOTSUPP, "%s (kind %u) cannot be re-created on another host", f->name, f->kind);
}

static int ctl_listen(struct qu_target *t)
{
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return qu_err(-errno, "cannot create %s: %s", qu_state_dir(), strerror(errno));
	snprintf(t->ctl_path, sizeof(t->ctl_path), "%s/agent-%d.ctl", qu_state_dir(), (int)getpid());
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->ctl_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(t->ctl_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 2) < 0) {
		int e = errno;
		close(fd);
		return qu_err(-e, "cannot listen on %s: %s", t->ctl_path, strerror(e));
	}
	return fd;
}

/* What the new QEMU printed before it died, appended to the current error. */
static void add_stderr(struct qu_target *t)
{
	qu_err_append_output(t->stderr_rd, "the new QEMU");
}

/* The port QEMU bound for `migrate-incoming tcp:HOST:0` (query-migrate's socket-address). */
static int incoming_port(struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *mig = NULL, *sa, *e, *port;
	int r = qu_qmp_execute(q, "query-migrate", NULL, -1, deadline_us, &mig), p = -ENOENT;
	if (r < 0)
		return r;
	if (json_object_object_get_ex(mig, "socket-address", &sa) && json_object_is_type(sa, json_type_array) &&
	    json_object_array_length(sa) > 0 && (e = json_object_array_get_idx(sa, 0)) &&
	    json_object_object_get_ex(e, "port", &port) && json_object_get_string(port))
		p = atoi(json_object_get_string(port));
	json_object_put(mig);
	return p > 0 ? p : -ENOENT;
}

static int start_incoming(struct qu_target *t, const char *host, uint64_t deadline_us, char *uri, size_t len)
{
	struct qu_mig_settings want = { .events = 1 };
	if (!t->no_tls) {
		if (!t->seal)
			return qu_err(-EPROTO, "TLS asked for without a sealed session");
		uid_t uid;
		gid_t gid;
		vm_owner(t, &uid, &gid);
		int r = qu_tls_add(t->ctl, t->seal, "server", uid, gid, deadline_us, &t->tls);
		if (r < 0)
			return r;
		/* The key file is read at each handshake: it stays until the resume. */
		char key[PATH_MAX];
		snprintf(key, sizeof(key), "%.*s/keys.psk", PATH_MAX - 16, t->tls.dir);
		remember(t, key, 1);
		remember(t, t->tls.dir, 1);
		want.tls_set = 1;
		snprintf(want.tls_creds, sizeof(want.tls_creds), "%s", QU_TLS_ID);
	}
	char any[96];
	snprintf(any, sizeof(any), "tcp:%s:0", host);
	int r = qu_mig_incoming(t->ctl, &want, any, deadline_us);
	if (r < 0)
		return r;
	int port = incoming_port(t->ctl, deadline_us);
	if (port < 0)
		return qu_err(port, "the new QEMU does not say which port it listens on for the migration");
	snprintf(uri, len, "tcp:%s:%d", host, port);
	return 0;
}

/* The new QEMU's RAM blocks (firmware and ROMs among them), for the tool to compare with the
 * old QEMU's before it pauses it. Left out when they cannot be read or do not fit: the tool
 * then relies on the load. */
__attribute__((noinline)) static void add_ramblocks(struct qu_target *t, uint64_t deadline_us, char *reply, size_t len)
{
	struct qu_ramblock *b = calloc(QU_MAX_RAMBLOCKS, sizeof(*b));
	char *text = malloc(len);
	int n = b && text ? qu_ramblocks_query(t->ctl, deadline_us, b, QU_MAX_RAMBLOCKS) : -ENOMEM;
	if (n > 0 && qu_ramblocks_pack(b, (size_t)n, text, len) == 0)
		qu_kv_add(reply, len, "ramblocks", text);
	free(text);
	free(b);
}

/* Moves into this host side by side must not overcommit it: the guest's RAM (and a margin
 * for the new QEMU) is booked in the same ledger local copies use, for as long as this
 * session runs; the plan checked MemAvailable alone. */
static int book_memory(struct qu_target *t)
{
	long long need = 256LL << 20;
	for (size_t i = 0; i < t->nfds; i++)
		if (t->fds[i].kind == QU_FD_RAM)
			need += qu_kv_num(t->fds[i].spec, "size", 0);
	struct qu_context *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	if (t->context)
		qu_context_decode(t->context, ctx);
	ctx->ncgroups = 0; /* this host's room, not the source's cgroups */
	int r = qu_memory_book(need, ctx, &t->booking);
	free(ctx);
	return r < 0 ? qu_err_wrap(r, "this host's memory") : 0;
}

int qu_target_start(struct qu_target *t, const char *host, uint64_t deadline_us, char *reply, size_t len)
{
	struct qu_launch_fd fds[TARGET_MAX_FDS + 3];
	int made[TARGET_MAX_FDS + 3], r = 0, have_stderr = 0, errpipe[2] = { -1, -1 };
	size_t n = 0;

	if (t->nargv == 0 || t->pid > 0)
		return qu_err(-EINVAL, "nothing to start, or started already");
	t->argv[t->nargv] = NULL;
	t->envp[t->nenvp] = NULL;
	/* Whatever the tool sent, the new QEMU must wait paused for the migration: one that ran
	 * the guest on its own would be a second copy of it. */
	int paused = 0, incoming = 0;
	for (size_t i = 1; i < t->nargv; i++) {
		paused |= !strcmp(t->argv[i], "-S");
		incoming |= !strcmp(t->argv[i], "-incoming") && i + 1 < t->nargv && !strcmp(t->argv[i + 1], "defer");
	}
	if (!paused || !incoming)
		return qu_err(-EINVAL, "the command line lacks -S or -incoming defer: not starting it");
	if ((r = book_memory(t)) < 0)
		return r;
	if ((r = make_disks(t, deadline_us)) < 0)
		return r;
	int ctl = ctl_listen(t);
	if (ctl < 0)
		return ctl;
	record_write(t);
	made[n] = ctl;
	fds[n++] = (struct qu_launch_fd){ ctl, QU_FD_CTL, QU_FD_CONTROL, "private monitor", NULL };
	/* Only a binary root installed, and exactly the file checked: by descriptor. */
	int prog = qu_binary_open(t->argv[0], (uid_t)-1, NULL, NULL, NULL);
	if (prog < 0) {
		r = qu_err_wrap(prog, "the new QEMU");
		goto out;
	}
	made[n] = prog;
	fds[n++] = (struct qu_launch_fd){ prog, 0, QU_FD_PROGRAM, "program", NULL };
	for (size_t i = 0; i < t->nfds; i++) {
		int fd = make_fd(t, &t->fds[i]);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		have_stderr |= t->fds[i].target == 2;
		made[n] = fd;
		fds[n++] = (struct qu_launch_fd){ fd, t->fds[i].target, t->fds[i].kind, t->fds[i].name, NULL };
	}
	/* With no log for stderr, a pipe: a new QEMU that fails to start can say why. */
	if (!have_stderr) {
		if (pipe2(errpipe, O_CLOEXEC) < 0) {
			r = qu_err(-errno, "pipe: %s", strerror(errno));
			goto out;
		}
		made[n] = errpipe[1];
		fds[n++] = (struct qu_launch_fd){ errpipe[1], 2, QU_FD_STDIO, "stderr (captured)", NULL };
		t->stderr_rd = errpipe[0];
	}
	struct qu_launch spec = { .argv = t->argv, .envp = t->envp, .cwd = t->cwd, .context = t->context,
				  .fds = fds, .nfds = n };
	r = qu_launch_local(&spec, deadline_us, &t->pid);
	if (r < 0) {
		qu_err_wrap(r, "starting the new QEMU");
		goto out;
	}
	t->pidfd = qu_pidfd_open(t->pid);
	if (t->pidfd < 0) {
		r = qu_err(t->pidfd, "pidfd_open(%d): %s", (int)t->pid, strerror(-t->pidfd));
		goto out;
	}
	record_write(t);
	qu_info("agent: new QEMU started: PID %d", (int)t->pid);
	char uri[128], nbd[128] = "";
	if ((r = qu_qmp_connect(t->ctl_path, deadline_us, &t->ctl)) < 0 ||
	    (r = start_incoming(t, host, deadline_us, uri, sizeof(uri))) < 0) {
		add_stderr(t);
		goto out;
	}
	if (t->ndisks) {
		const char *devices[TARGET_MAX_DISKS];
		for (size_t i = 0; i < t->ndisks; i++)
			devices[i] = t->disks[i].device;
		if ((r = qu_nbd_export(t->ctl, host, devices, t->ndisks, t->no_tls ? NULL : QU_TLS_ID, deadline_us, nbd,
				       sizeof(nbd))) < 0)
			goto out;
	}
	reply[0] = '\0';
	qu_kv_addf(reply, len, "pid", "%d", (int)t->pid);
	qu_kv_add(reply, len, "migrate", uri);
	qu_kv_addf(reply, len, "tls", "%d", !t->no_tls);
	if (nbd[0])
		qu_kv_add(reply, len, "nbd", nbd);
	add_ramblocks(t, deadline_us, reply, len);
out:
	for (size_t i = 0; i < n; i++)
		close(made[i]);
	return r;
}

int qu_target_resumed(const struct qu_target *t) { return t->resumed; }

int qu_target_resume(struct qu_target *t, uint64_t deadline_us, char *reply, size_t len)
{
	char state[32];
	if (!t->ctl)
		return qu_err(-EINVAL, "no new QEMU to resume");
	int r = qu_mig_wait_incoming(t->ctl, t->pidfd, deadline_us);
	if (r < 0) {
		add_stderr(t);
		return r;
	}
	if (t->ndisks && (r = qu_nbd_stop(t->ctl, deadline_us)) < 0)
		return qu_err_wrap(r, "closing the disk exports");
	if ((r = qu_fault(QU_FI_AGENT_BEFORE_CONT)) < 0)
		return r;
	/* From the `cont` on, the guest runs here: whatever happens next, this QEMU stays. */
	t->resumed = 1;
	record_write(t);
	if ((r = qu_qmp_execute(t->ctl, "cont", NULL, -1, deadline_us, NULL)) < 0 ||
	    (r = qu_qmp_query_string(t->ctl, "query-status", "status", deadline_us, state, sizeof(state))) < 0 ||
	    (r = qu_fault(QU_FI_AGENT_AFTER_CONT)) < 0)
		return r;
	if (strcmp(state, "running"))
		return qu_err(-EIO, "the new QEMU is in run state '%s' after cont", state);
	int64_t resumed = 0;
	qu_qmp_event_time(t->ctl, "RESUME", qu_now_us() + 1000000u, &resumed);
	/* No handshake comes any more: the key goes, and the VM is left as one started here
	 * (a later upgrade of it, local or not, chooses its own transport). */
	char creds[64] = "";
	qu_qmp_query_string(t->ctl, "query-migrate-parameters", "tls-creds", deadline_us, creds, sizeof(creds));
	if (t->tls.added) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tls-creds", json_object_new_string(""));
		if (qu_qmp_execute(t->ctl, "migrate-set-parameters", args, -1, deadline_us, NULL) < 0)
			qu_info("agent: warning: the new QEMU keeps migration parameter tls-creds: %s", qu_err_msg());
	}
	qu_tls_remove(t->ctl, &t->tls, deadline_us);
	int a = qu_announce(t->ctl, deadline_us);
	reply[0] = '\0';
	qu_kv_addf(reply, len, "resumed_us", "%lld", (long long)resumed);
	qu_kv_addf(reply, len, "announced", "%d", a == 0);
	qu_kv_addf(reply, len, "tls", "%d", !strcmp(creds, QU_TLS_ID)); /* what the load went through */
	if (a < 0)
		qu_kv_add(reply, len, "announce_error", qu_err_msg());
	return 0;
}
