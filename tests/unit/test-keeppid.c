/* --keep-pid (cpr-exec): the plan's decisions (qu_keep_pid_blockers in upgrade/keeppid.c) and
 * the command line the exec gets (qu_rewrite with QU_STRATEGY_CPR_EXEC), from a struct qu_vm
 * built by hand the way inspect fills it. */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/opts.h"
#include "qemu-integration/rewrite.h"
#include "qemu-integration/vm.h"
#include "upgrade/inspect.h"
#include "upgrade/keeppid.h"

#define NEW_QEMU "/opt/qemu-11.1/bin/qemu-system-x86_64"

/* A VM as the research ran it (docs/cpr-exec-research.md): 11.1, memfd RAM, aux-ram-share. */
static const char *const cmdline[] = {
	"/usr/bin/qemu-system-x86_64",
	"-accel", "tcg",
	"-machine", "q35,memory-backend=mem0",
	"-machine", "aux-ram-share=on",
	"-object", "memory-backend-memfd,id=mem0,size=256M,share=on",
	"-m", "256M",
	"-nodefaults", "-display", "none",
	"-chardev", "file,id=serial0,path=/run/vm/serial.log",
	"-serial", "chardev:serial0",
	"-qmp", "unix:/run/vm/qmp.sock,server=on,wait=off",
	"-netdev", "tap,id=n0,ifname=cprx0,script=no,downscript=no",
	"-device", "virtio-net-pci,netdev=n0",
	"-pidfile", "/run/vm/qemu.pid",
	"-daemonize",
	"-S",
	NULL,
};

struct fix {
	struct qu_vm *vm;
	struct qu_rewrite *rw;
	struct qu_refusals *why;
	int target[3];
};

static void set_cmdline(struct qu_vm *vm, const char *const *words)
{
	int n = 0;
	while (words[n])
		n++;
	qu_argv_free(&vm->argv);
	assert_int_equal(qu_argv_from_array(n, (char *const *)words, &vm->argv), 0);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (!f || !(f->vm = calloc(1, sizeof(*f->vm))) || !(f->rw = calloc(1, sizeof(*f->rw))) ||
	    !(f->why = calloc(1, sizeof(*f->why))))
		return -1;
	struct qu_vm *vm = f->vm;
	vm->pid = 4242;
	vm->ver[0] = 11, vm->ver[1] = 1, vm->ver[2] = 3;
	f->target[0] = 11, f->target[1] = 1, f->target[2] = 3;
	snprintf(vm->machine, sizeof(vm->machine), "pc-q35-11.1");
	snprintf(vm->qmp_path, sizeof(vm->qmp_path), "/run/vm/qmp.sock");
	vm->aux_ram_share = 1;
	vm->nram = 1;
	struct qu_ram *r = &vm->ram[0];
	snprintf(r->id, sizeof(r->id), "mem0");
	snprintf(r->qom_type, sizeof(r->qom_type), "memory-backend-memfd");
	r->size = 256u << 20;
	r->share = 1;
	r->arg = 6; /* "-object" is option 6 of the flattened words above, counted as inspect does */
	r->old_fd = 11;
	vm->ntaps = 1;
	struct qu_tap *t = &vm->taps[0];
	snprintf(t->id, sizeof(t->id), "n0");
	snprintf(t->ifname, sizeof(t->ifname), "cprx0");
	t->old_fds[0] = 14;
	t->nfds = 1;
	set_cmdline(vm, cmdline);
	t->arg = qu_argv_find(&vm->argv, "netdev", 0);
	r->arg = qu_argv_find(&vm->argv, "object", 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	qu_vm_free(f->vm);
	qu_argv_free(&f->rw->argv);
	qu_argv_free(&f->rw->back_argv);
	free(f->vm);
	free(f->rw);
	free(f->why);
	free(f);
	return 0;
}

#define FIX(state) ((struct fix *)*(state))

/* The reasons as one string, for matching. */
static char *all_reasons(const struct qu_refusals *why)
{
	char *s = qu_refusals_join(why, " | ");
	assert_non_null(s);
	return s;
}

static void assert_reason(const struct qu_refusals *why, const char *part)
{
	char *s = all_reasons(why);
	if (!strstr(s, part))
		fail_msg("no reason mentions '%s' in: %s", part, s);
	free(s);
}

static void research_vm_keeps_its_pid(void **state)
{
	struct fix *f = FIX(state);
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 0);
	assert_int_equal(f->why->n, 0);
}

static void old_qemu_before_10_2_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->ver[0] = 10, f->vm->ver[1] = 1, f->vm->ver[2] = 0;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "the running QEMU is 10.1.0");
	assert_reason(f->why, "QEMU 10.2");
}

static void new_binary_before_10_2_refused(void **state)
{
	struct fix *f = FIX(state);
	f->target[0] = 10, f->target[1] = 0, f->target[2] = 13;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "the new binary is QEMU 10.0.13");
}

static void exactly_10_2_accepted(void **state)
{
	struct fix *f = FIX(state);
	f->vm->ver[0] = 10, f->vm->ver[1] = 2, f->vm->ver[2] = 0;
	f->target[0] = 10, f->target[1] = 2, f->target[2] = 0;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 0);
}

static void spawn_deny_refused(void **state)
{
	struct fix *f = FIX(state);
	assert_int_equal(qu_argv_add(&f->vm->argv, "sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
				     "resourcecontrol=deny"), 0);
	assert_true(qu_sandbox_denies_spawn(&f->vm->argv));
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "spawn=deny");
}

static void sandbox_without_spawn_deny_accepted(void **state)
{
	struct fix *f = FIX(state);
	assert_int_equal(qu_argv_add(&f->vm->argv, "sandbox", "on,spawn=allow"), 0);
	assert_false(qu_sandbox_denies_spawn(&f->vm->argv));
	assert_int_equal(qu_argv_add(&f->vm->argv, "sandbox", "enable=off,spawn=deny"), 0);
	assert_false(qu_sandbox_denies_spawn(&f->vm->argv)); /* a filter that is off denies nothing */
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 0);
}

static void private_ram_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->ram[0].share = 0;
	qu_keep_pid_blockers(f->vm, f->target, f->why);
	assert_reason(f->why, "guest RAM 'mem0' is memory-backend-memfd with share=off");
	memset(f->why, 0, sizeof(*f->why));
	f->vm->nram = 0; /* plain -m */
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "plain -m");
}

static void ram_backend_kind_refused(void **state)
{
	struct fix *f = FIX(state);
	snprintf(f->vm->ram[0].qom_type, sizeof(f->vm->ram[0].qom_type), "memory-backend-ram");
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "memory-backend-ram");
}

static void file_ram_accepted(void **state)
{
	struct fix *f = FIX(state);
	snprintf(f->vm->ram[0].qom_type, sizeof(f->vm->ram[0].qom_type), "memory-backend-file");
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 0);
}

static void object_added_ram_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->ram[0].arg = -1;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "not on the command line");
}

static void no_aux_ram_share_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->aux_ram_share = 0;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "aux-ram-share=on");
}

static void no_qmp_path_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->qmp_path[0] = '\0';
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 1);
	assert_reason(f->why, "no socket path");
}

static void pty_vhost_fdset_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->nptys = 1;
	snprintf(f->vm->ptys[0].chardev, sizeof(f->vm->ptys[0].chardev), "console0");
	f->vm->taps[0].vhost = 1;
	f->vm->nfdset_fds = 1;
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 3);
	assert_reason(f->why, "chardev 'console0' is a pty");
	assert_reason(f->why, "tap 'n0' uses vhost-net");
	assert_reason(f->why, "descriptor sets");
}

/* Every blocker at once, so that fixing one does not reveal the next on the following try. */
static void every_blocker_told(void **state)
{
	struct fix *f = FIX(state);
	f->vm->ver[1] = 0;
	f->vm->ver[0] = 9;
	f->target[0] = 9;
	f->vm->aux_ram_share = 0;
	f->vm->ram[0].share = 0;
	assert_int_equal(qu_argv_add(&f->vm->argv, "sandbox", "on,spawn=deny"), 0);
	assert_int_equal(qu_keep_pid_blockers(f->vm, f->target, f->why), 5);
	for (unsigned i = 0; i < f->why->n; i++)
		assert_non_null(strstr(f->why->why[i], "--keep-pid: "));
}

/* ---- the command line of the exec ---- */

static void rewrite_for_exec(struct fix *f)
{
	f->rw->strategy = QU_STRATEGY_CPR_EXEC;
	snprintf(f->rw->target.path, sizeof(f->rw->target.path), NEW_QEMU);
	memcpy(f->rw->target.ver, f->target, sizeof(f->target));
	assert_int_equal(qu_rewrite(f->vm, f->rw), 0);
}

static const char *value_of(const struct qu_argv *v, const char *opt)
{
	long i = qu_argv_find(v, opt, 0);
	return i < 0 ? NULL : v->a[i].val ? v->a[i].val : "";
}

static void exec_argv_as_the_research_found(void **state)
{
	struct fix *f = FIX(state);
	rewrite_for_exec(f);
	const struct qu_argv *v = &f->rw->argv;
	char *s = all_reasons(&f->rw->refusals);
	if (f->rw->refusals.n)
		fail_msg("refused: %s", s);
	free(s);
	/* execvp runs argv[0]: the new binary, by its absolute path. */
	assert_string_equal(v->prog, NEW_QEMU);
	assert_null(value_of(v, "daemonize")); /* a second fork would change the PID */
	assert_null(value_of(v, "S"));         /* the image resumes the guest by itself */
	assert_string_equal(value_of(v, "incoming"), "defer");
	assert_int_equal(qu_argv_find(v, "incoming", (size_t)qu_argv_find(v, "incoming", 0) + 1), -1);
	/* RAM stays as it is: CPR maps the preserved memfd by the backend's name. */
	assert_string_equal(value_of(v, "object"), "memory-backend-memfd,id=mem0,size=256M,share=on");
	/* The serial file is opened again: appended to, not truncated. */
	assert_non_null(strstr(value_of(v, "chardev"), "append=on"));
	/* The QMP socket by path: the new image binds it anew (nothing carried). */
	assert_string_equal(value_of(v, "qmp"), "unix:/run/vm/qmp.sock,server=on,wait=off");
	/* The tap QEMU opened by name stays open across the exec: the same descriptor, by number. */
	assert_string_equal(value_of(v, "netdev"), "tap,id=n0,fd=14");
	/* Kept at their own numbers (and held for a rollback): the RAM memfd and the tap. */
	assert_int_equal(f->rw->nfds, 2);
	assert_int_equal(f->rw->fds[0].kind, QU_FD_RAM);
	assert_int_equal(f->rw->fds[0].old_fd, 11);
	assert_int_equal(f->rw->fds[0].target, 11);
	assert_int_equal(f->rw->fds[1].kind, QU_FD_TAP);
	assert_int_equal(f->rw->fds[1].old_fd, 14);
	assert_int_equal(f->rw->fds[1].target, 14);
	/* No private monitor of the tool: the exec has no descriptor of ours to inherit. */
	for (size_t i = 0; i < v->n; i++)
		assert_null(v->a[i].val ? strstr(v->a[i].val, QU_CTL_CHARDEV) : NULL);
	assert_string_equal(value_of(v, "pidfile"), "/run/vm/qemu.pid");
	/* The way back after the exec: the old binary's name, the same command line, but RAM a
	 * file on the kept memfd (a fresh QEMU would make new memory for a memfd backend). */
	const struct qu_argv *b = &f->rw->back_argv;
	assert_string_equal(b->prog, "/usr/bin/qemu-system-x86_64");
	assert_int_equal(b->n, v->n);
	assert_string_equal(value_of(b, "object"), "memory-backend-file,id=mem0,size=256M,share=on,mem-path=/proc/self/fd/11");
	assert_string_equal(value_of(b, "netdev"), "tap,id=n0,fd=14");
	assert_string_equal(value_of(b, "incoming"), "defer");
}

/* A command line that an earlier upgrade wrote (fd= forms) is its own input: inherited
 * descriptors stay at their numbers, the tool's old private monitor goes. */
static void exec_argv_of_an_earlier_upgrade(void **state)
{
	struct fix *f = FIX(state);
	static const char *const again[] = {
		"/usr/bin/qemu-system-x86_64", "-machine", "pc-q35-11.1,memory-backend=mem0", "-machine", "aux-ram-share=on",
		"-object", "memory-backend-file,id=mem0,size=256M,share=on,mem-path=/proc/self/fd/7",
		"-chardev", "socket,id=qemu-upgrade-mon12,fd=5,server=on,wait=off",
		"-mon", "chardev=qemu-upgrade-mon12,mode=control",
		"-netdev", "tap,id=n0,fd=9",
		"-chardev", "socket,id=qemu-upgrade-ctl,fd=3,server=on,wait=off",
		"-mon", "chardev=qemu-upgrade-ctl,mode=control",
		"-incoming", "defer", "-S", NULL,
	};
	set_cmdline(f->vm, again);
	snprintf(f->vm->ram[0].qom_type, sizeof(f->vm->ram[0].qom_type), "memory-backend-file");
	f->vm->ram[0].arg = qu_argv_find(&f->vm->argv, "object", 0);
	f->vm->taps[0].arg = qu_argv_find(&f->vm->argv, "netdev", 0);
	f->vm->taps[0].old_fds[0] = 9;
	f->vm->nlis = 1;
	struct qu_listener *l = &f->vm->lis[0];
	snprintf(l->chardev, sizeof(l->chardev), "qemu-upgrade-mon12");
	snprintf(l->path, sizeof(l->path), "/run/vm/qmp.sock");
	l->arg = qu_argv_find(&f->vm->argv, "chardev", 0);
	l->control = 1;
	l->old_fd = 5;
	rewrite_for_exec(f);
	const struct qu_argv *v = &f->rw->argv;
	char *s = all_reasons(&f->rw->refusals);
	if (f->rw->refusals.n)
		fail_msg("refused: %s", s);
	free(s);
	assert_string_equal(value_of(v, "object"), "memory-backend-file,id=mem0,size=256M,share=on,mem-path=/proc/self/fd/7");
	assert_string_equal(value_of(v, "netdev"), "tap,id=n0,fd=9");
	assert_string_equal(value_of(v, "chardev"), "socket,id=qemu-upgrade-mon12,fd=5,server=on,wait=off");
	assert_int_equal(qu_argv_find(v, "S", 0), -1);
	for (size_t i = 0; i < v->n; i++)
		assert_null(v->a[i].val ? strstr(v->a[i].val, QU_CTL_CHARDEV) : NULL);
	assert_int_equal(f->rw->nfds, 3); /* RAM, listener, tap */
	assert_string_equal(value_of(&f->rw->back_argv, "object"),
			    "memory-backend-file,id=mem0,size=256M,share=on,mem-path=/proc/self/fd/11");
}

/* The one fact only the live process tells: whether a descriptor would survive the exec. */
static void cloexec_read_from_fdinfo(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int plain = dup(p[0]);
	assert_true(plain >= 0);
	assert_int_equal(qu_fd_cloexec(getpid(), p[0]), 1);
	assert_int_equal(qu_fd_cloexec(getpid(), plain), 0);
	close(p[0]);
	close(p[1]);
	close(plain);
	assert_true(qu_fd_cloexec(getpid(), plain) < 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(research_vm_keeps_its_pid),
		T(old_qemu_before_10_2_refused),
		T(new_binary_before_10_2_refused),
		T(exactly_10_2_accepted),
		T(spawn_deny_refused),
		T(sandbox_without_spawn_deny_accepted),
		T(private_ram_refused),
		T(ram_backend_kind_refused),
		T(file_ram_accepted),
		T(object_added_ram_refused),
		T(no_aux_ram_share_refused),
		T(no_qmp_path_refused),
		T(pty_vhost_fdset_refused),
		T(every_blocker_told),
		T(exec_argv_as_the_research_found),
		T(exec_argv_of_an_earlier_upgrade),
		T(cloexec_read_from_fdinfo),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
