/* One watcher process per carried tap whose down script QEMU no longer runs (tapwatch.h). */
#include "upgrade/tapwatch.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/option.h"
#include "upgrade/clock.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/journal.h"
#include "upgrade/log.h"
#include "upgrade/pvelock.h"
#include "upgrade/run.h"
#include "upgrade/spawn.h"
#include "upgrade/statedir.h"
#include "upgrade/testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* How long the tool waits for a watcher to say it is in place. */
#define STARTED_TIMEOUT_MS 5000
/* How long a watcher waits for Proxmox's lock of the VM before it runs the script anyway
 * (QEMU itself takes no lock to run it). */
#define PVE_LOCK_WAIT_S 120

int qu_tapwatch_script(const struct qu_vm *vm, const struct qu_tap *t, char *script, size_t len)
{
	script[0] = '\0';
	if (!t->downscript || t->arg < 0 || (size_t)t->arg >= vm->argv.n)
		return 0;
	json_object *o = qu_option_parse("netdev", vm->argv.a[t->arg].val);
	const char *s = qu_option_get(o, "downscript");
	int r = 0;
	/* What QEMU's tap backend does: no downscript= means its default; "no" or "" none. */
	if (!s)
		r = snprintf(script, len, "%s", QU_TAPWATCH_DEFAULT_SCRIPT) < (int)len;
	else if (*s && strcmp(s, "no"))
		r = snprintf(script, len, "%s", s) < (int)len;
	json_object_put(o);
	if (!r)
		script[0] = '\0';
	return r;
}

void qu_tapwatch_lock_path(unsigned long long netns_ino, int ifindex, char *buf, size_t len)
{
	snprintf(buf, len, "%s/tapwatch-%llu-%d.lock", qu_state_dir(), netns_ino, ifindex);
}

/* What a watcher needs, filled by the tool before the fork. */
struct watch {
	char ifname[IFNAMSIZ];
	int persist;               /* a persistent tap outlives its last descriptor */
	char script[PATH_MAX];
	uid_t uid;                 /* QEMU's: the script runs as QEMU ran it */
	gid_t gid;
	long vmid;                 /* Proxmox's VM, 0 when not */
	pid_t qemu;                /* the new QEMU, for the log */
	unsigned long long netns_ino;
};

static void wlog(int prio, const struct watch *w, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void wlog(int prio, const struct watch *w, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	syslog(prio, "tap watcher for %s (QEMU %d): %s", w->ifname, (int)w->qemu, msg);
	/* The tests read what the watcher did from a file of their own. */
	const char *log = qu_test_env("QEMU_UPGRADE_TAPWATCH_LOG");
	int fd = log ? open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
	if (fd >= 0) {
		dprintf(fd, "%d %s %s\n", (int)getpid(), w->ifname, msg);
		close(fd);
	}
}

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (fd >= 0 && n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		return; /* the tool stopped listening: nothing to tell */
}

/* The lock that makes this the tap's only watcher: 1 taken (*fd), 0 another watcher holds it
 * (*holder), -errno. The file is unlinked by its holder when done: a lock taken on a file no
 * longer at the path locks nothing, so check and try again (as upgrade/journal.c does). */
static int take_lock(const char *path, int *fd, pid_t *holder)
{
	if (mkdir(qu_state_dir(), 0700) < 0 && errno != EEXIST)
		return -errno;
	for (;;) {
		struct stat a, b;
		*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (*fd < 0)
			return -errno;
		if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
			int e = errno;
			close(*fd);
			*fd = -1;
			if (e != EWOULDBLOCK)
				return -e;
			*holder = qu_flock_holder(path);
			return 0;
		}
		if (fstat(*fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return 1;
		close(*fd);
	}
}

static int ask_link(int nl, int ifindex)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST,
			 .nlmsg_seq = 1 },
		  .i = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex } };
	return send(nl, &req, sizeof(req), 0) < 0 ? -errno : 0;
}

/* IFLA_CARRIER of a link message: 1, 0, or -1 when it has none. */
static int carrier_of(struct nlmsghdr *h)
{
	struct ifinfomsg *i = NLMSG_DATA(h);
	int left = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*i));
	for (struct rtattr *a = IFLA_RTA(i); RTA_OK(a, left); a = RTA_NEXT(a, left))
		if (a->rta_type == IFLA_CARRIER && RTA_PAYLOAD(a) >= 1)
			return *(unsigned char *)RTA_DATA(a) != 0;
	return -1;
}

/* Until the tap is gone: deleted (RTM_DELLINK, or the answer to our question says there is no
 * such link), or, for a persistent tap, without carrier (tun turns it off when the last
 * descriptor closes; a persistent tap is not deleted then). Every
 * length is the kernel's, checked by NLMSG_OK/RTA_OK. 0, or -errno. */
static int wait_gone(int nl, const struct watch *w, int ifindex)
{
	static char buf[32768];
	for (;;) {
		/* A carrier change of a link that is down makes no event: a persistent tap's is
		 * asked for every second. */
		struct pollfd p = { .fd = nl, .events = POLLIN };
		int pr = poll(&p, 1, w->persist ? 1000 : -1);
		if (pr == 0) {
			int r = ask_link(nl, ifindex);
			if (r < 0)
				return r;
			continue;
		}
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr < 0)
			continue;
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ENOBUFS)
				return -errno;
			/* Messages were lost: ask again whether the tap is still there. */
			int r = ask_link(nl, ifindex);
			if (r < 0)
				return r;
			continue;
		}
		int left = (int)n;
/* NLMSG_OK compares the header's unsigned length with an int, as the kernel's headers mean it to
 * (an unsigned count would wrap below zero after an unaligned last message). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				if (e->error == -ENODEV)
					return 0;
				continue;
			}
			if ((h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
				continue;
			struct ifinfomsg *i = NLMSG_DATA(h);
			if (i->ifi_index != ifindex)
				continue;
			if (h->nlmsg_type == RTM_DELLINK || (w->persist && carrier_of(h) == 0))
				return 0;
		}
#pragma GCC diagnostic pop
	}
}

/* Runs the script as QEMU would at its exit: its path opened under the rules for programs to
 * run (no path walked through a directory another user could change; the file root's or
 * QEMU's user's, not writable by others), executed by descriptor as QEMU's user, with the
 * tap's name as its one argument, a fixed environment, killed after the timeout. */
static void run_script(const struct watch *w)
{
	char out[512] = "", user[48];
	uid_t allowed = w->uid ? w->uid : (uid_t)-1;
	int fd = qu_binary_open(w->script, allowed, NULL, NULL, NULL);
	if (fd < 0) {
		wlog(LOG_ERR, w, "down script not run: %s", qu_err_msg());
		return;
	}
	char *argv[] = { (char *)w->script, (char *)w->ifname, NULL };
	int as_root = w->uid == 0 && w->gid == 0;
	snprintf(user, sizeof(user), "%u:%u", (unsigned)w->uid, (unsigned)w->gid);
	int st = qu_run_capture(NULL, fd, argv, as_root ? (uid_t)-1 : w->uid, w->gid,
				qu_now_us() + QU_TAPWATCH_SCRIPT_TIMEOUT_S * 1000000ull, out, sizeof(out));
	close(fd);
	for (char *c = out; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	if (st < 0)
		wlog(LOG_ERR, w, "ran %s %s as %s: %s%s%s", w->script, w->ifname, user,
		     st == -ETIMEDOUT ? "killed after the timeout" : strerror(-st), out[0] ? "; it said: " : "", out);
	else
		wlog(st ? LOG_WARNING : LOG_INFO, w, "ran %s %s as %s: exit status %d%s%s", w->script, w->ifname, user, st,
		     out[0] ? "; it said: " : "", out);
}

/* The watcher itself: descriptors 3 (our copy of the tap), 4 (its network namespace) and 5
 * (the line to the tool), nothing else. Never returns. */
__attribute__((noreturn)) static int watcher(void *arg)
{
	const struct watch *w = arg;
	char path[PATH_MAX];
	int lock = -1, nl = -1;
	pid_t holder = 0;
	openlog("qemu-upgrade", LOG_PID, LOG_DAEMON);
	if (setns(4, CLONE_NEWNET) < 0) {
		say(5, "error cannot enter the tap's network namespace: %s", strerror(errno));
		_exit(1);
	}
	close(4);
	int ifindex = (int)if_nametoindex(w->ifname);
	if (ifindex <= 0) {
		say(5, "error no interface %s in its network namespace: %s", w->ifname, strerror(errno));
		_exit(1);
	}
	qu_tapwatch_lock_path(w->netns_ino, ifindex, path, sizeof(path));
	int r = take_lock(path, &lock, &holder);
	if (r <= 0) {
		/* An earlier upgrade's watcher serves the same tap: the tap is the same. */
		if (r == 0)
			say(5, "kept %d", (int)holder);
		else
			say(5, "error cannot take %s: %s", path, strerror(-r));
		_exit(r < 0);
	}
	dprintf(lock, "pid=%d\nifname=%s\nscript=%s\nuid=%u\ngid=%u\nvmid=%ld\nqemu=%d\n", (int)getpid(), w->ifname,
		w->script, (unsigned)w->uid, (unsigned)w->gid, w->vmid, (int)w->qemu);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		say(5, "error cannot listen to link events: %s", strerror(errno));
		unlink(path);
		_exit(1);
	}
	/* Our copy must not keep the tap alive; closing it may delete the tap already (its QEMU
	 * gone meanwhile), which the subscription now sees. So does the question that follows,
	 * for a tap gone before the subscription. */
	close(3);
	if ((r = ask_link(nl, ifindex)) < 0) {
		say(5, "error cannot ask for %s: %s", w->ifname, strerror(-r));
		unlink(path);
		_exit(1);
	}
	say(5, "ok %d", (int)getpid());
	close(5);
	wlog(LOG_INFO, w, "watching (ifindex %d); its down script %s runs when it goes", ifindex, w->script);
	if ((r = wait_gone(nl, w, ifindex)) < 0) {
		wlog(LOG_ERR, w, "cannot follow link events any more (%s): down script %s not run", strerror(-r), w->script);
		unlink(path);
		_exit(1);
	}
	close(nl);
	struct qu_pve_lock pve;
	if (qu_pve_lock_take_vmid(w->vmid, qu_now_us() + PVE_LOCK_WAIT_S * 1000000ull, &pve) < 0)
		wlog(LOG_WARNING, w, "runs its down script without Proxmox's lock: %s", qu_err_msg());
	else if (pve.fd >= 0)
		wlog(LOG_INFO, w, "gone; took Proxmox's lock of VM %ld after %.0f ms", w->vmid, pve.wait_ms);
	/* A tap of the same name that is another link is a new QEMU's (a VM started again, by
	 * then): the script would take its network down. */
	int now = (int)if_nametoindex(w->ifname);
	if (now > 0 && now != ifindex)
		wlog(LOG_WARNING, w, "gone, but a new %s (ifindex %d) exists already: its down script %s not run for it",
		     w->ifname, now, w->script);
	else
		run_script(w);
	qu_pve_lock_release(&pve);
	unlink(path); /* still holding it: nobody can take a stale one */
	_exit(0);
}

/* In the tool: the watch for one tap, from our copy of its descriptor. */
static int describe(int tap, const struct qu_vm *vm, const char *script, pid_t new_pid, struct watch *w)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memset(w, 0, sizeof(*w));
	if (ioctl(tap, TUNGETIFF, &ifr) < 0)
		return qu_err(-errno, "TUNGETIFF: %s", strerror(errno));
	snprintf(w->ifname, sizeof(w->ifname), "%.*s", IFNAMSIZ - 1, ifr.ifr_name);
	w->persist = !!(ifr.ifr_flags & IFF_PERSIST);
	snprintf(w->script, sizeof(w->script), "%s", script);
	w->uid = vm->ctx.uid;
	w->gid = vm->ctx.gid;
	w->vmid = vm->pidfile[0] ? qu_pve_vmid_of_pidfile(vm->pidfile) : 0;
	w->qemu = new_pid;
	return 0;
}

/* Detached (spawn.h), holding our copy of the tap (3), its network namespace (4) and the
 * line back (5); returns the line's other end, or -errno. */
static int spawn(const struct watch *w, int tap, int netns, pid_t *pid)
{
	int line[2];
	if (pipe2(line, O_CLOEXEC) < 0)
		return qu_err(-errno, "pipe: %s", strerror(errno));
	int fds[] = { tap, netns, line[1] };
	/* Nothing else: the VM's and Proxmox's locks, the guardian's link are the tool's. */
	struct qu_spawn s = { .fds = fds, .nfds = 3, .name = "qu-tapwatch" };
	int r = qu_spawn_detached(&s, watcher, (void *)w, pid);
	close(line[1]);
	if (r < 0) {
		close(line[0]);
		return r;
	}
	return line[0];
}

/* The watcher's first line: "ok PID", "kept PID" or "error WHY". */
static void hear(int line, char *got, size_t len)
{
	size_t used = 0;
	uint64_t deadline = qu_now_us() + STARTED_TIMEOUT_MS * 1000ull;
	got[0] = '\0';
	while (used + 1 < len) {
		uint64_t now = qu_now_us();
		struct pollfd p = { .fd = line, .events = POLLIN };
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000) + 1) <= 0)
			break;
		ssize_t n = read(line, got + used, len - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	got[used] = '\0';
}

static void add(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *out, size_t len, const char *fmt, ...)
{
	size_t used = strlen(out);
	if (used + 3 >= len)
		return;
	if (used)
		used += (size_t)snprintf(out + used, len - used, "; ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out + used, len - used, fmt, ap);
	va_end(ap);
}

/* One tap: 1 watcher started, 0 kept or skipped (out says which). tap: our copy, or -errno. */
static int watch_tap(const struct qu_vm *vm, const struct qu_tap *t, int tap, pid_t new_pid, char *out, size_t len)
{
	char script[PATH_MAX], got[512];
	struct watch w;
	struct stat st;
	const char *name = t->ifname[0] ? t->ifname : t->id;
	if (!qu_tapwatch_script(vm, t, script, sizeof(script)) || t->nfds <= 0)
		return 0;
	if (script[0] != '/') {
		add(out, len, "warning: tap %s: down script %s not watched: not an absolute path (QEMU would look for it "
		    "in its working directory)", name, script);
		return 0;
	}
	if (vm->ctx.userns) {
		add(out, len, "warning: tap %s: down script %s not watched: QEMU runs in a user namespace", name, script);
		return 0;
	}
	/* Checked now, for the report; the watcher opens it again when it runs it. */
	int fd = qu_binary_open(script, vm->ctx.uid ? vm->ctx.uid : (uid_t)-1, NULL, NULL, NULL);
	if (fd < 0) {
		if (!strcmp(script, QU_TAPWATCH_DEFAULT_SCRIPT) && stat(script, &st) < 0 && errno == ENOENT) {
			qu_err_clear();
			qu_debug("tap %s: QEMU's default down script %s does not exist: nothing to run", name, script);
			return 0;
		}
		add(out, len, "warning: tap %s: down script not watched, it will not run when the VM stops: %s", name,
		    qu_err_msg());
		return 0;
	}
	close(fd);
	if (tap < 0) {
		add(out, len, "warning: tap %s: down script %s not watched: cannot take the tap: %s", name, script,
		    strerror(-tap));
		return 0;
	}
	int netns = ioctl(tap, TUNGETDEVNETNS);
	int r = netns < 0 ? qu_err(-errno, "TUNGETDEVNETNS: %s", strerror(errno)) : describe(tap, vm, script, new_pid, &w);
	if (r == 0 && fstat(netns, &st) < 0)
		r = qu_err(-errno, "fstat: %s", strerror(errno));
	int line = -1;
	pid_t a = 0;
	if (r == 0) {
		w.netns_ino = (unsigned long long)st.st_ino;
		r = line = spawn(&w, tap, netns, &a);
	}
	if (netns >= 0)
		close(netns);
	if (r < 0) {
		add(out, len, "warning: tap %s: down script %s not watched: %s", name, script, qu_err_msg());
		return 0;
	}
	hear(line, got, sizeof(got));
	close(line);
	if (!strncmp(got, "ok ", 3)) {
		add(out, len, "tap %s: down script %s runs when the tap goes (watcher PID %d)", w.ifname, script,
		    atoi(got + 3));
		return 1;
	}
	if (!strncmp(got, "kept ", 5)) {
		add(out, len, "tap %s: down script %s: watched already (watcher PID %d, an earlier upgrade's)", w.ifname,
		    script, atoi(got + 5));
		return 0;
	}
	add(out, len, "warning: tap %s: down script %s not watched: %s", w.ifname, script,
	    !strncmp(got, "error ", 6) ? got + 6 : "the watcher did not start");
	return 0;
}

void qu_tapwatch_take(const struct qu_vm *vm, int pidfd, int fds[QU_MAX_NETDEVS])
{
	char script[PATH_MAX];
	for (size_t i = 0; i < QU_MAX_NETDEVS; i++) {
		const struct qu_tap *t = &vm->taps[i];
		fds[i] = QU_TAPWATCH_NONE;
		if (i < vm->ntaps && t->nfds > 0 && qu_tapwatch_script(vm, t, script, sizeof(script)))
			fds[i] = qu_pidfd_getfd(pidfd, t->old_fds[0]); /* one queue names the tap */
	}
}

int qu_tapwatch_start(const struct qu_vm *vm, int fds[QU_MAX_NETDEVS], pid_t new_pid, char *out, size_t len)
{
	int n = 0;
	for (size_t i = 0; i < vm->ntaps && i < QU_MAX_NETDEVS; i++) {
		if (fds[i] == QU_TAPWATCH_NONE)
			continue; /* no down script: nothing taken */
		n += watch_tap(vm, &vm->taps[i], fds[i], new_pid, out, len);
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = QU_TAPWATCH_NONE;
	}
	return n;
}
