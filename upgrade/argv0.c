/* Managers recognise their VMs by argv[0]: Proxmox's qemu-server believes the PID in a VM's
 * pidfile only when /proc/PID/cmdline starts with a name ending in "kvm" or naming qemu-*
 * (it starts /usr/bin/kvm, a link to qemu-system-x86_64; docs/proxmox.md), and people read it
 * in ps. The new QEMU runs from the probed file by descriptor, so argv[0] is only a name: it
 * stays the old one while that still names the program that runs, and becomes the new
 * binary's path when it would name another, so that nobody reads a name for a program that is
 * not running. Either way it is never executed: the probed file runs by descriptor, no wrapper. */
#include "upgrade/argv0.h"
#include "qemu-integration/binary.h"
#include "qemu-integration/opts.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether the old argv[0] leads to the new binary: an absolute path, walked as for a program
 * to run (links followed only where nobody but root could have made them), to the very file
 * that was probed. A relative name would be resolved against the tool's directory, not the
 * VM's: it never matches. */
static int names_target(const char *argv0, const struct qu_binary *target)
{
	dev_t dev;
	ino_t ino;
	if (argv0[0] != '/')
		return 0;
	int fd = qu_binary_open(argv0, (uid_t)-1, NULL, &dev, &ino);
	if (fd < 0) {
		qu_err_clear(); /* a name that leads nowhere trusted is simply not kept */
		return 0;
	}
	close(fd);
	return dev == target->dev && ino == target->ino;
}

int qu_plan_argv0(const struct qu_vm *vm, struct qu_plan *p)
{
	const char *old = vm->argv.prog;
	/* qu_rewrite wrote the new binary's path. The file now at the old executable's path (a
	 * package upgrade replaced it): whatever name the VM was started by (/usr/bin/kvm)
	 * named that path and names it still. */
	if (strcmp(p->target.path, vm->exe_path) && !names_target(old, &p->target)) {
		if (strcmp(old, p->argv.prog)) {
			char shown[256]; /* the VM's string: no control characters in root's output */
			qu_copy_printable(shown, sizeof(shown), old);
			qu_info("argv[0] %s names another program than the new binary: the new QEMU's argv[0] is %s",
				shown, p->argv.prog);
		}
		return 0;
	}
	char *name = strdup(old);
	if (!name)
		return -ENOMEM;
	free(p->argv.prog);
	p->argv.prog = name;
	return 0;
}
