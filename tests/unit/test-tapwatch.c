/* The tap watchers (upgrade/tapwatch.c): which taps get one (the down script QEMU would have
 * run: its downscript=, its default when none is given, none for "no", "" or a tap given by
 * fd=), the lock file's name, and a real watcher on a real tap that this test opens itself
 * (standing in for the old QEMU: the tap is found in this process by its name, as in a QEMU):
 * it runs the script once with the tap's name when the tap goes, a second start for the same
 * tap keeps the first watcher, a persistent tap counts as gone when its last descriptor
 * closes, and a script that cannot be opened safely gets no watcher but a warning. */
#include "tests/unit/unit.h"
#include "qemu-integration/netdev.h"
#include "upgrade/fdpass/pidfd.h"
#include "upgrade/tapwatch.h"

#include <libgen.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

static struct qu_vm vm;
static char top[PATH_MAX];

static void cmdline(const char *netdev)
{
	char *argv[] = { (char *)"qemu-system-x86_64", (char *)"-netdev", (char *)netdev, NULL };
	qu_argv_free(&vm.argv);
	qu_fdtab_free(&vm.fds);
	memset(&vm, 0, sizeof(vm));
	vm.pid = getpid();
	/* As inspect does: taps are found in the one read of /proc/PID/fd. */
	assert_int_equal(qu_fdtab_read(vm.pid, &vm.fds), 0);
	assert_int_equal(qu_argv_from_array(3, argv, &vm.argv), 0);
	assert_int_equal(qu_find_taps(&vm), 0);
	/* Not needed after the taps are found; freed now, since the watcher forks from here. */
	qu_fdtab_free(&vm.fds);
	assert_int_equal(vm.ntaps, 1);
}

static const char *script_for(const char *netdev)
{
	static char s[PATH_MAX];
	cmdline(netdev);
	return qu_tapwatch_script(&vm, &vm.taps[0], s, sizeof(s)) ? s : "(none)";
}

/* Which taps' down scripts QEMU would run, in both forms of -netdev. */
static void which_taps(void **state)
{
	assert_string_equal(script_for("tap,id=n0,ifname=qutwx0,script=no,downscript=/etc/down"), "/etc/down");
	assert_string_equal(script_for("type=tap,id=net0,ifname=tap100i0,script=/up,downscript=/var/lib/qemu-server/pve-bridgedown"),
			    "/var/lib/qemu-server/pve-bridgedown");
	assert_string_equal(script_for("tap,id=n0,ifname=qutwx0"), QU_TAPWATCH_DEFAULT_SCRIPT);
	assert_string_equal(script_for("tap,id=n0,ifname=qutwx0,downscript=no"), "(none)");
	assert_string_equal(script_for("tap,id=n0,ifname=qutwx0,downscript="), "(none)");
	assert_string_equal(script_for("{\"type\":\"tap\",\"id\":\"n0\",\"ifname\":\"qutwx0\",\"downscript\":\"/j/down\"}"),
			    "/j/down");
	/* Given by fd= (libvirt, or an earlier upgrade): QEMU runs no script for it. */
	assert_string_equal(script_for("tap,id=n0,fd=3,downscript=/etc/down"), "(none)");
	assert_string_equal(script_for("{\"type\":\"tap\",\"id\":\"n0\",\"fd\":\"3\"}"), "(none)");
	(void)state;
}

static void lock_name(void **state)
{
	char p[PATH_MAX];
	setenv("QEMU_UPGRADE_STATE_DIR", "/run/x", 1);
	qu_tapwatch_lock_path(4026531840ull, 7, p, sizeof(p));
	assert_string_equal(p, "/run/x/tapwatch-4026531840-7.lock");
	unsetenv("QEMU_UPGRADE_STATE_DIR");
	qu_tapwatch_lock_path(1, 12, p, sizeof(p));
	assert_string_equal(p, "/run/qemu-upgrade/tapwatch-1-12.lock");
	(void)state;
}

static void path_in(char *buf, size_t len, const char *rel)
{
	assert_true(snprintf(buf, len, "%s/%s", top, rel) < (int)len);
}

/* The down script: it writes "down TAP as UID" to scripts.log. */
static void write_script(const char *path)
{
	static char log[PATH_MAX + 32], text[2 * PATH_MAX + 128];
	path_in(log, sizeof(log), "scripts.log");
	snprintf(text, sizeof(text), "#!/bin/sh\necho \"down $1 as $(id -u)\" >>%s\n", log);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static int setup(void **state)
{
	static char self[PATH_MAX], p[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* Under the build directory: root's directories all the way up, as a script's must be. */
	snprintf(top, sizeof(top), "%s/tapwatch.XXXXXX", dirname(self));
	assert_non_null(mkdtemp(top));
	assert_int_equal(chmod(top, 0755), 0);
	path_in(p, sizeof(p), "state");
	assert_int_equal(mkdir(p, 0700), 0);
	setenv("QEMU_UPGRADE_STATE_DIR", p, 1);
	path_in(p, sizeof(p), "watch.log");
	setenv("QEMU_UPGRADE_TAPWATCH_LOG", p, 1);
	path_in(p, sizeof(p), "down");
	write_script(p);
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 32];
	/* A persistent tap left by a failed check would keep its watcher waiting. */
	snprintf(cmd, sizeof(cmd), "ip link del qutp%d 2>/dev/null", (int)getpid() % 100000);
	if (system(cmd) != 0) {
		/* gone already, as it should be */
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	assert_int_equal(system(cmd), 0);
	unsetenv("QEMU_UPGRADE_STATE_DIR");
	unsetenv("QEMU_UPGRADE_TAPWATCH_LOG");
	qu_argv_free(&vm.argv);
	memset(&vm, 0, sizeof(vm));
	(void)state;
	return 0;
}

/* A tap opened as QEMU opens one by ifname= (it goes with its last descriptor unless persistent). */
static int open_tap(const char *name, int persist)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (persist && ioctl(fd, TUNSETPERSIST, 1) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static char *slurp(const char *rel)
{
	static char buf[4096];
	char p[PATH_MAX + 32];
	path_in(p, sizeof(p), rel);
	buf[0] = '\0';
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/* Until rel holds want (10 s). */
static int wait_for(const char *rel, const char *want)
{
	for (int i = 0; i < 1000; i++) {
		if (strstr(slurp(rel), want))
			return 1;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int locks_in_state(void)
{
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s/state')\"", top);
	return system(cmd) != 0;
}

/* Both steps, the taps taken from this process (standing in for the old QEMU). */
static int start(int pidfd, char *out, size_t len)
{
	int fds[QU_MAX_NETDEVS];
	qu_tapwatch_take(&vm, pidfd, fds);
	return qu_tapwatch_start(&vm, fds, getpid(), out, len);
}

static void watch_one(const char *name, int persist)
{
	static char netdev[PATH_MAX + 128], down[PATH_MAX + 32], lock[PATH_MAX];
	char out[1024] = "", again[1024] = "", want[64];
	struct stat ns;
	int tap = open_tap(name, persist);
	if (tap < 0) {
		note("no tap here (%s): skipped", strerror(errno));
		skip();
	}
	path_in(down, sizeof(down), "down");
	snprintf(netdev, sizeof(netdev), "tap,id=n0,ifname=%s,script=no,downscript=%s", name, down);
	cmdline(netdev);
	assert_int_equal(vm.taps[0].nfds, 1);
	int pidfd = qu_pidfd_open(getpid());
	assert_true(pidfd >= 0);
	assert_int_equal(start(pidfd, out, sizeof(out)), 1);
	note("started: %s", out);
	assert_non_null(strstr(out, "runs when the tap goes (watcher PID"));
	/* One watcher per tap: a second upgrade's start keeps it. */
	assert_int_equal(start(pidfd, again, sizeof(again)), 0);
	note("again: %s", again);
	assert_non_null(strstr(again, "watched already"));
	assert_int_equal(stat("/proc/self/ns/net", &ns), 0);
	qu_tapwatch_lock_path((unsigned long long)ns.st_ino, (int)if_nametoindex(name), lock, sizeof(lock));
	assert_int_equal(access(lock, F_OK), 0);
	assert_string_equal(slurp("scripts.log"), ""); /* not while the tap is held */
	close(pidfd);
	uint64_t t0 = qu_now_us();
	close(tap); /* QEMU's exit */
	snprintf(want, sizeof(want), "down %s as 0\n", name);
	assert_true(wait_for("scripts.log", want));
	note("the script ran within %.0f ms of the tap's close (polled every 10 ms)", (double)(qu_now_us() - t0) / 1000.0);
	assert_true(wait_for("watch.log", "exit status 0"));
	note("watcher: %s", slurp("watch.log"));
	for (int i = 0; i < 500 && locks_in_state(); i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_false(locks_in_state()); /* the watcher took its lock file with it */
	assert_string_equal(slurp("scripts.log"), want); /* once */
	if (persist) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "ip link del %s", name);
		assert_int_equal(system(cmd), 0);
	}
}

static void runs_once_when_the_tap_goes(void **state)
{
	char name[IFNAMSIZ];
	snprintf(name, sizeof(name), "qutw%d", (int)getpid() % 100000);
	watch_one(name, 0);
	(void)state;
}

/* A persistent tap stays when QEMU closes it: it counts as gone when it loses its carrier
 * (here a tap that is down, whose carrier change makes no event: asked for every second). */
static void persistent_tap(void **state)
{
	char name[IFNAMSIZ];
	snprintf(name, sizeof(name), "qutp%d", (int)getpid() % 100000);
	watch_one(name, 1);
	(void)state;
}

/* A script another user could change, or one QEMU would look for in its working directory:
 * no watcher, a warning that says why. */
static void unsafe_script_warned(void **state)
{
	static char netdev[PATH_MAX + 128], dir[PATH_MAX + 32];
	char name[IFNAMSIZ], out[1024] = "";
	snprintf(name, sizeof(name), "qutu%d", (int)getpid() % 100000);
	int tap = open_tap(name, 0);
	if (tap < 0)
		skip();
	int pidfd = qu_pidfd_open(getpid());
	path_in(dir, sizeof(dir), "open");
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	path_in(dir, sizeof(dir), "open/down");
	write_script(dir);
	snprintf(netdev, sizeof(netdev), "tap,id=n0,ifname=%s,downscript=%s", name, dir);
	cmdline(netdev);
	assert_int_equal(start(pidfd, out, sizeof(out)), 0);
	note("%s", out);
	assert_non_null(strstr(out, "warning: tap"));
	assert_non_null(strstr(out, "not watched, it will not run when the VM stops"));
	assert_non_null(strstr(out, "another user could change what runs"));
	out[0] = '\0';
	snprintf(netdev, sizeof(netdev), "tap,id=n0,ifname=%s,downscript=down.sh", name);
	cmdline(netdev);
	assert_int_equal(start(pidfd, out, sizeof(out)), 0);
	note("%s", out);
	assert_non_null(strstr(out, "not an absolute path"));
	assert_false(locks_in_state());
	close(pidfd);
	close(tap);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(which_taps),
		cmocka_unit_test(lock_name),
		cmocka_unit_test_setup_teardown(runs_once_when_the_tap_goes, setup, teardown),
		cmocka_unit_test_setup_teardown(persistent_tap, setup, teardown),
		cmocka_unit_test_setup_teardown(unsafe_script_warned, setup, teardown),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
