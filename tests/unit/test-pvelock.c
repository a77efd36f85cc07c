/* Proxmox's lock of a VM (upgrade/pvelock.c): which command lines are Proxmox's (their
 * -pidfile is qemu-server's DIR/VMID.pid), and that a lock directory someone other than root
 * can change is not taken for Proxmox's. */
#include "tests/unit/unit.h"
#include "upgrade/pvelock.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void vmid_from_pidfile(void **state)
{
	assert_int_equal(qu_pve_vmid_of_pidfile("/var/run/qemu-server/100.pid"), 100);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/999999999.pid"), 999999999);
	assert_int_equal(qu_pve_vmid_of_pidfile("qemu-server/4242.pid"), 4242);
	/* Not qemu-server's: another directory name, a VMID Proxmox never gives, another suffix. */
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/my-qemu-server/100.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/99.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/0100.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/1000000000.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/100.pid.x"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/10a.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("/run/qemu-server/"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile("100.pid"), 0);
	assert_int_equal(qu_pve_vmid_of_pidfile(""), 0);
}

/* A process whose command line is not Proxmox's: nothing to lock. */
static void not_proxmox(void **state)
{
	struct qu_pve_lock l;
	assert_int_equal(qu_pve_lock_take(getpid(), qu_now_us() + 1000000u, &l), 0);
	assert_int_equal(l.fd, -1);
	assert_int_equal(l.vmid, 0);
}

/* A process whose command line is qemu-server's: sh -c CMD -pidfile DIR/qemu-server/100.pid. */
/* *hold: the write end of its stdin; closing it lets sh exit. */
static pid_t proxmox_like(int *hold)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[1]);
		execl("/bin/sh", "/bin/sh", "-c", "read x", "-pidfile", "/nowhere/qemu-server/100.pid", (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	/* Until it runs sh: its command line is ours until the exec. */
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	for (int i = 0; i < 30000; i++) { /* up to 30 s on a loaded machine */
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		if (n > 8 && !memcmp(buf, "/bin/sh", 8))
			break;
		usleep(1000);
	}
	*hold = p[1];
	return pid;
}

/* The lock is taken in a directory only root can change, and not in one others can write. */
static void lock_dir_trusted_or_not(void **state)
{
	char dir[] = "/tmp/qu-pvelock.XXXXXX", file[64];
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/lock-100.conf", dir);
	setenv("QEMU_UPGRADE_PVE_LOCK_DIR", dir, 1);
	struct qu_pve_lock l;
	int hold;
	pid_t pid = proxmox_like(&hold);
	if (geteuid() == 0) {
		assert_int_equal(chmod(dir, 0755), 0);
		assert_int_equal(qu_pve_lock_take(pid, qu_now_us() + 1000000u, &l), 0);
		assert_int_equal(l.vmid, 100);
		assert_true(l.fd >= 0);
		assert_int_equal(access(file, F_OK), 0);
		qu_pve_lock_release(&l);
		unlink(file);
	}
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(qu_pve_lock_take(pid, qu_now_us() + 1000000u, &l), 0);
	assert_int_equal(l.vmid, 100);
	assert_int_equal(l.fd, -1);
	assert_int_not_equal(access(file, F_OK), 0);
	close(hold); /* sh reads EOF and exits */
	waitpid(pid, NULL, 0);
	unsetenv("QEMU_UPGRADE_PVE_LOCK_DIR");
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vmid_from_pidfile),
		cmocka_unit_test(not_proxmox),
		cmocka_unit_test(lock_dir_trusted_or_not),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
