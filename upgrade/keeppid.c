#include "upgrade/keeppid.h"
#include "qemu-integration/opts.h"
#include "upgrade/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int at_least(const int v[3], int major, int minor)
{
	return v[0] > major || (v[0] == major && v[1] >= minor);
}

int qu_sandbox_denies_spawn(const struct qu_argv *argv)
{
	int deny = 0;
	for (long i = -1; (i = qu_argv_find(argv, "sandbox", (size_t)(i + 1))) >= 0;) {
		struct qu_opts o;
		if (!argv->a[i].val || qu_opts_parse(argv->a[i].val, "enable", &o) < 0)
			continue;
		const char *spawn = qu_opts_get(&o, "spawn");
		/* QEMU applies the last -sandbox; a filter that is off denies nothing. */
		deny = qu_opts_get_bool(&o, "enable") && spawn && !strcmp(spawn, "deny");
		qu_opts_free(&o);
	}
	return deny;
}

/* The RAM cpr-exec keeps in place: every block a shared memfd or file that QEMU made from the
 * command line (CPR preserves the descriptors of such blocks across the exec, and the new
 * image finds them by name); the machine's small blocks too, which takes aux-ram-share=on. */
static unsigned ram_blockers(const struct qu_vm *vm, struct qu_refusals *why)
{
	unsigned n = 0;
	if (vm->nram == 0) {
		qu_refusals_add(why, "--keep-pid: guest RAM is plain -m (private memory), which cpr-exec cannot keep "
				"across the exec: start the VM with -object memory-backend-memfd,id=mem0,size=S,share=on "
				"-machine memory-backend=mem0,aux-ram-share=on");
		return 1;
	}
	for (size_t i = 0; i < vm->nram; i++) {
		const struct qu_ram *r = &vm->ram[i];
		int kind_ok = !strcmp(r->qom_type, "memory-backend-memfd") || !strcmp(r->qom_type, "memory-backend-file");
		if (!r->share || !kind_ok) {
			qu_refusals_add(why, "--keep-pid: guest RAM '%s' is %s%s, which cpr-exec cannot keep across the "
					"exec: it needs memory-backend-memfd or -file with share=on", r->id, r->qom_type,
					r->share ? "" : " with share=off");
			n++;
		} else if (r->arg < 0) {
			qu_refusals_add(why, "--keep-pid: memory backend '%s' is not on the command line (added with "
					"object-add?), so the new image would not create it", r->id);
			n++;
		}
	}
	if (!vm->aux_ram_share) {
		qu_refusals_add(why, "--keep-pid: the VM runs without -machine aux-ram-share=on, so the machine's own "
				"small RAM blocks (ROMs, ACPI tables) are private and cannot be kept across the exec; it "
				"can only be set when the VM starts");
		n++;
	}
	return n;
}

unsigned qu_keep_pid_blockers(const struct qu_vm *vm, const int target_ver[3], struct qu_refusals *why)
{
	unsigned before = qu_refusals_count(why);
	if (!at_least(vm->ver, QU_CPR_EXEC_MAJOR, QU_CPR_EXEC_MINOR))
		qu_refusals_add(why, "--keep-pid: the running QEMU is %d.%d.%d, and cpr-exec (the exec that keeps the "
				"PID) came with QEMU %d.%d: only a VM started by QEMU >= %d.%d can keep its PID; upgrade "
				"without --keep-pid", vm->ver[0], vm->ver[1], vm->ver[2], QU_CPR_EXEC_MAJOR,
				QU_CPR_EXEC_MINOR, QU_CPR_EXEC_MAJOR, QU_CPR_EXEC_MINOR);
	if (!at_least(target_ver, QU_CPR_EXEC_MAJOR, QU_CPR_EXEC_MINOR))
		qu_refusals_add(why, "--keep-pid: the new binary is QEMU %d.%d.%d, which cannot load a cpr-exec state "
				"(QEMU >= %d.%d): upgrade without --keep-pid", target_ver[0], target_ver[1], target_ver[2],
				QU_CPR_EXEC_MAJOR, QU_CPR_EXEC_MINOR);
	ram_blockers(vm, why);
	if (qu_sandbox_denies_spawn(&vm->argv))
		qu_refusals_add(why, "--keep-pid: the VM runs under -sandbox ...,spawn=deny, whose seccomp filter makes "
				"the exec fail (the PID can be kept only by an exec); upgrade without --keep-pid, or start "
				"the VM without spawn=deny");
	if (!vm->qmp_path[0])
		qu_refusals_add(why, "--keep-pid: the VM's QMP monitor has no socket path; the exec closes every "
				"connection, and the tool reaches the new image again through that path");
	for (size_t i = 0; i < vm->nptys; i++)
		qu_refusals_add(why, "--keep-pid: chardev '%s' is a pty, which the new image would open anew (the "
				"guest's console would move to another /dev/pts): not built for cpr-exec; upgrade without "
				"--keep-pid", vm->ptys[i].chardev);
	for (size_t i = 0; i < vm->ntaps; i++)
		if (vm->taps[i].vhost)
			qu_refusals_add(why, "--keep-pid: tap '%s' uses vhost-net, which cpr-exec has not been measured "
					"with here: upgrade without --keep-pid", vm->taps[i].id);
	if (vm->nfdset_fds || qu_argv_find(&vm->argv, "add-fd", 0) >= 0)
		qu_refusals_add(why, "--keep-pid: the VM has descriptor sets (-add-fd, QMP add-fd), whose members "
				"QEMU holds close-on-exec: they would not reach the new image; upgrade without --keep-pid");
	return qu_refusals_count(why) - before;
}

int qu_fd_cloexec(pid_t pid, int fd)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	int r = qu_read_file(path, &text, NULL);
	if (r < 0)
		return r;
	/* "flags:\t0100002": octal, O_CLOEXEC among them. */
	const char *f = strstr(text, "flags:");
	unsigned long flags = 0;
	r = f && sscanf(f + 6, "%lo", &flags) == 1 ? !!(flags & O_CLOEXEC) : -EPROTO;
	free(text);
	return r;
}
