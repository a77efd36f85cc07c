/* A -netdev value from the old QEMU's command line (qemu-integration/netdev.c and the tap part
 * of rewrite.c): qu_option_parse reads both forms alike, qu_netdev_fd_list reads only plain
 * descriptor lists, and what the rewriter leaves unrefused is a tap it carried: a value that
 * would make the new QEMU open a device or take a stranger's descriptor is always refused.
 * Input: the value. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/option.h"
#include "qemu-integration/opts.h"
#include "qemu-integration/rewrite.h"

static void check_list(const char *text)
{
	int fds[QU_MAX_QUEUES], n = text ? qu_netdev_fd_list(text, fds, QU_MAX_QUEUES) : -EINVAL;
	FUZZ_CHECK(n == -EINVAL || (n >= 1 && n <= QU_MAX_QUEUES));
	for (int i = 0; i < n; i++)
		FUZZ_CHECK(fds[i] >= 0 && fds[i] < (1 << 20));
}

/* The new -netdev of an unrefused tap: fd= or fds= naming tap descriptors the plan carries,
 * nothing that opens a device or runs a script. */
static void check_carried(const struct qu_rewrite *rw, const char *val)
{
	json_object *o = qu_option_parse("netdev", val);
	const char *type = qu_option_get(o, "type");
	if (type && !strcmp(type, "tap")) {
		const char *fd = qu_option_get(o, "fd"), *fds = qu_option_get(o, "fds");
		int list[QU_MAX_QUEUES], n = fd && fds ? -EINVAL : qu_netdev_fd_list(fd ? fd : fds ? fds : "", list, QU_MAX_QUEUES);
		FUZZ_CHECK(n > 0);
		for (int q = 0; q < n; q++) {
			size_t i = 0;
			while (i < rw->nfds && !(rw->fds[i].kind == QU_FD_TAP && rw->fds[i].target == list[q]))
				i++;
			FUZZ_CHECK(i < rw->nfds);
		}
		FUZZ_CHECK(!qu_option_get(o, "ifname") && !qu_option_get(o, "script") && !qu_option_get(o, "helper") &&
			   !qu_option_get(o, "downscript") && !qu_option_get(o, "br"));
	}
	json_object_put(o);
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strdup(data, size);
	json_object *o = qu_option_parse("netdev", text);
	if (text[0] != '{') {
		/* QemuOpts always parse, and both readers see the same type. */
		struct qu_opts q;
		FUZZ_CHECK(o && qu_opts_parse(text, "type", &q) == 0);
		const char *a = qu_opts_get(&q, "type"), *b = qu_option_get(o, "type");
		FUZZ_CHECK((!a && !b) || (a && b && !strcmp(a, b)));
		qu_opts_free(&q);
	}
	check_list(qu_option_get(o, "fd"));
	check_list(qu_option_get(o, "fds"));
	json_object_put(o);

	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_rewrite *rw = calloc(1, sizeof(*rw));
	FUZZ_CHECK(vm && rw);
	vm->pid = 0; /* no such process: taps by name are not found, fd= taps have no name */
	snprintf(vm->machine, sizeof(vm->machine), "pc-q35-7.2");
	snprintf(rw->target.path, sizeof(rw->target.path), "/usr/bin/qemu-system-x86_64");
	FUZZ_CHECK(qu_argv_from_array(3, (char *const[]){ "qemu", "-netdev", text }, &vm->argv) == 0);
	if (qu_find_taps(vm) == 0 && qu_rewrite(vm, rw) == 0 && !rw->refusals.n) {
		long i = qu_argv_find(&rw->argv, "netdev", 0);
		FUZZ_CHECK(i >= 0);
		check_carried(rw, rw->argv.a[i].val);
	}
	qu_argv_free(&rw->argv);
	qu_argv_free(&vm->argv);
	free(rw);
	free(vm);
	free(text);
	return 0;
}
