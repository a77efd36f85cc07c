/* Starts a program under a seccomp filter of its starter's (as systemd's SystemCallFilter=
 * or a container runtime would): everything allowed but kexec_load. For the tests of VMs that
 * run under a filter QEMU did not install itself. Usage: seccompwrap PROGRAM ARGS... */
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: seccompwrap PROGRAM ARGS...\n");
		return 2;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(1), SCMP_SYS(kexec_load), 0) < 0 || seccomp_load(ctx) < 0) {
		fprintf(stderr, "seccompwrap: cannot install the filter\n");
		return 1;
	}
	seccomp_release(ctx);
	execvp(argv[1], argv + 1);
	perror("seccompwrap: exec");
	return 127;
}
