/* The probe cache (qemu-integration/probecache.c): an entry is used only for the same file
 * (device, inode, size, mtime, ctime), the same probe words and the same uid:gid, and only
 * when it is root's file that nobody else can write; and qu_binary_probe() reads it (a forged
 * entry's version comes back) and writes it (a real probe leaves one). */
#include "tests/unit/unit.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/probecache.h"

#include <sys/wait.h>

#define SYSTEM_QEMU "/usr/bin/qemu-system-x86_64"

static char dir[] = "/tmp/qu-probecache.XXXXXX";

static int setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	setenv("QEMU_UPGRADE_CACHE_DIR", dir, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t entries(void)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));)
		n += !strncmp(e->d_name, "probe-", 6);
	if (d)
		closedir(d);
	return n;
}

static void round_trip_and_mismatches(void **state)
{
	struct stat st = { .st_dev = 42, .st_ino = 4242, .st_size = 1000 };
	st.st_mtim.tv_sec = 100;
	st.st_ctim.tv_sec = 200;
	char buf[256];
	int status = -1;
	qu_probe_cache_put("--version", 65534, 65534, &st, 0, "QEMU emulator version 7.2.22\n");
	assert_int_equal(qu_probe_cache_get("--version", 65534, 65534, &st, &status, buf, sizeof(buf)), 0);
	assert_int_equal(status, 0);
	assert_string_equal(buf, "QEMU emulator version 7.2.22\n");
	/* Another probe, another user, another group: no entry. */
	assert_int_equal(qu_probe_cache_get("-machine help", 65534, 65534, &st, &status, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(qu_probe_cache_get("--version", 1000, 65534, &st, &status, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(qu_probe_cache_get("--version", 65534, 1000, &st, &status, buf, sizeof(buf)), -ENOENT);
	/* The same inode changed (size, mtime, ctime): not used. */
	struct stat other = st;
	other.st_ctim.tv_nsec = 1;
	assert_int_equal(qu_probe_cache_get("--version", 65534, 65534, &other, &status, buf, sizeof(buf)), -ENOENT);
	other = st;
	other.st_size = 1001;
	assert_int_equal(qu_probe_cache_get("--version", 65534, 65534, &other, &status, buf, sizeof(buf)), -ENOENT);
	other = st;
	other.st_mtim.tv_sec = 101;
	assert_int_equal(qu_probe_cache_get("--version", 65534, 65534, &other, &status, buf, sizeof(buf)), -ENOENT);
	/* An answer longer than the caller takes: not used. */
	assert_int_equal(qu_probe_cache_get("--version", 65534, 65534, &st, &status, buf, 8), -ENOENT);
	/* A non-zero status is kept as it was. */
	qu_probe_cache_put("-id 0 --version", 65534, 65534, &st, 1, "qemu: -id: invalid option\n");
	assert_int_equal(qu_probe_cache_get("-id 0 --version", 65534, 65534, &st, &status, buf, sizeof(buf)), 0);
	assert_int_equal(status, 1);
}

static void entry_others_could_write_is_ignored(void **state)
{
	struct stat st = { .st_dev = 43, .st_ino = 1, .st_size = 1 };
	char buf[256], path[512];
	int status;
	qu_probe_cache_put("--version", 0, 0, &st, 0, "QEMU emulator version 1.0.0\n");
	DIR *d = opendir(dir);
	path[0] = '\0';
	for (struct dirent *e; d && (e = readdir(d));)
		if (strstr(e->d_name, "-43-1-") || strstr(e->d_name, "-2b-1-"))
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
	closedir(d);
	assert_true(path[0]);
	assert_int_equal(qu_probe_cache_get("--version", 0, 0, &st, &status, buf, sizeof(buf)), 0);
	assert_int_equal(chmod(path, 0622), 0);
	assert_int_equal(qu_probe_cache_get("--version", 0, 0, &st, &status, buf, sizeof(buf)), -ENOENT);
	/* Garbage in an entry's place: not used either. */
	assert_int_equal(chmod(path, 0600), 0);
	FILE *f = fopen(path, "w");
	fputs("qemu-upgrade probe 1 uid=0 status=0\nQEMU emulator version 9.9.9\n", f);
	fclose(f);
	assert_int_equal(qu_probe_cache_get("--version", 0, 0, &st, &status, buf, sizeof(buf)), -ENOENT);
}

/* qu_binary_probe in a child of its own (a fresh memo): the major version it read, or -1. */
static int probe_in_child(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct qu_binary b;
		uid_t u = geteuid() == 0 ? 65534 : getuid();
		gid_t g = geteuid() == 0 ? 65534 : getgid();
		_exit(qu_binary_probe(SYSTEM_QEMU, (uid_t)-1, u, g, qu_now_us() + 30000000u, &b) < 0 ? 255 : b.ver[0]);
	}
	int ws;
	waitpid(pid, &ws, 0);
	return WIFEXITED(ws) && WEXITSTATUS(ws) != 255 ? WEXITSTATUS(ws) : -1;
}

static void binary_probe_writes_and_reads_it(void **state)
{
	if (geteuid() != 0)
		skip(); /* entries are used only when they are root's */
	size_t before = entries();
	int real = probe_in_child();
	assert_true(real >= 5);
	assert_int_equal(entries(), before + 1);
	/* A forged entry for the same file and user: the probe answers from it, not from QEMU. */
	struct stat st;
	assert_int_equal(stat(SYSTEM_QEMU, &st), 0);
	qu_probe_cache_put("--version", 65534, 65534, &st, 0, "QEMU emulator version 99.1.0\n");
	assert_int_equal(probe_in_child(), 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_and_mismatches),
		cmocka_unit_test(entry_others_could_write_is_ignored),
		cmocka_unit_test(binary_probe_writes_and_reads_it),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
