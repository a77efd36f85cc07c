/* The new QEMU's command line (qu_rewrite in qemu-integration/rewrite.c), from a struct qu_vm
 * built by hand the way inspect would fill it. */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/opts.h"
#include "upgrade/plan.h"
#include "upgrade/stream.h"
#include "qemu-integration/vm.h"
#include "upgrade/inspect.h"
#include "qemu-integration/monitors.h"
#include "qemu-integration/netdev.h"
#include "qemu-integration/ptys.h"

#include <json-c/json.h>

#define NEW_QEMU "/opt/qemu-new/bin/qemu-system-x86_64"
#define MACHINE "pc-q35-7.2"

/* A realistic command line, as /proc/PID/cmdline shows it (prog first). */
static const char *const realistic[] = {
	"/usr/bin/qemu-system-x86_64",
	"-name", "guest=vm1,debug-threads=on",
	"-machine", "q35,accel=kvm,memory-backend=mem0",
	"-cpu", "host",
	"-m", "1G,slots=2,maxmem=4G",
	"-object", "memory-backend-memfd,id=mem0,size=1G,share=on,seal=on,prealloc=on,prealloc-threads=2,"
		   "discard-data=on",
	"-object", "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"mem1\",\"size\":536870912,\"share\":true,"
		   "\"hugetlb\":false,\"hugetlbsize\":2097152,\"seal\":true,\"prealloc\":true}",
	"-device", "pc-dimm,id=dimm1,memdev=mem1",
	"-qmp", "unix:/run/vm1/qmp.sock,server=on,wait=off",
	"-chardev", "socket,id=hmp0,path=/run/vm1/hmp.sock,server=on,wait=on",
	"-mon", "chardev=hmp0,mode=readline",
	"-chardev", "file,id=log0,path=/var/log/vm1/serial.log",
	"-serial", "chardev:log0",
	"-pidfile", "/run/vm1/qemu.pid",
	"-daemonize",
	"-incoming", "tcp:0:4444",
	"-chardev", "socket,id=qemu-upgrade-ctl,fd=3",
	"-mon", "chardev=qemu-upgrade-ctl,mode=control",
	"-nodefaults",
	"-display", "none",
	"-S",
	"-netdev", "user,id=n0",
	"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
	"-drive", "file=/var/lib/vm1/disk,,a.qcow2,if=virtio,format=qcow2",
	NULL,
};

#define OLD_FD_MEM0 21
#define OLD_FD_MEM1 22
#define OLD_FD_QMP 31
#define OLD_FD_HMP 32

struct fix {
	struct qu_vm *vm;
	struct qu_plan *plan;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->vm = calloc(1, sizeof(*f->vm));
	f->plan = calloc(1, sizeof(*f->plan));
	if (!f->vm || !f->plan) {
		free(f->vm);
		free(f->plan);
		free(f);
		return -1;
	}
	snprintf(f->vm->machine, sizeof(f->vm->machine), MACHINE);
	f->vm->ver[0] = 7;
	f->vm->ver[1] = 2;
	f->vm->ver[2] = 22;
	snprintf(f->plan->target.path, sizeof(f->plan->target.path), NEW_QEMU);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	qu_vm_free(f->vm);
	qu_plan_free(f->plan);
	free(f->vm);
	free(f->plan);
	free(f);
	return 0;
}

#define FIX(state) ((struct fix *)*(state))

/* ---- building the VM ---- */

static void set_cmdline(struct qu_vm *vm, const char *const *words)
{
	int n = 0;
	while (words[n])
		n++;
	assert_int_equal(qu_argv_from_array(n, (char *const *)words, &vm->argv), 0);
}

/* Index of the -object whose id is id (QemuOpts or JSON form). */
static long object_index(const struct qu_argv *v, const char *id)
{
	for (long i = -1; (i = qu_argv_find(v, "object", (size_t)(i + 1))) >= 0;) {
		const char *val = v->a[i].val;
		int hit = 0;
		if (val[0] == '{') {
			json_object *o = json_tokener_parse(val), *x;
			hit = o && json_object_object_get_ex(o, "id", &x) && !strcmp(json_object_get_string(x), id);
			json_object_put(o);
		} else {
			struct qu_opts o;
			assert_int_equal(qu_opts_parse(val, "qom-type", &o), 0);
			const char *oid = qu_opts_get(&o, "id");
			hit = oid && !strcmp(oid, id);
			qu_opts_free(&o);
		}
		if (hit)
			return i;
	}
	return -1;
}

/* Index of the option opt whose QemuOpts key has value val. */
static long opt_index(const struct qu_argv *v, const char *opt, const char *implied, const char *key,
		      const char *val)
{
	for (long i = -1; (i = qu_argv_find(v, opt, (size_t)(i + 1))) >= 0;) {
		struct qu_opts o;
		assert_int_equal(qu_opts_parse(v->a[i].val, implied, &o), 0);
		const char *x = qu_opts_get(&o, key);
		int hit = x && !strcmp(x, val);
		qu_opts_free(&o);
		if (hit)
			return i;
	}
	return -1;
}

static void add_ram(struct qu_vm *vm, const char *id, const char *qom_type, int old_fd)
{
	struct qu_ram *r = &vm->ram[vm->nram++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->qom_type, sizeof(r->qom_type), "%s", qom_type);
	r->share = 1;
	r->size = 1u << 30;
	r->arg = object_index(&vm->argv, id);
	assert_true(r->arg >= 0);
	r->old_fd = old_fd;
	snprintf(r->backing, sizeof(r->backing), "/memfd:%s (deleted)", id);
}

/* A -qmp/-qmp-pretty/-monitor unix:PATH,server=on listener, as qu_find_listeners names it. */
static void add_legacy(struct qu_vm *vm, const char *opt, const char *path, int old_fd)
{
	long i = qu_argv_find(&vm->argv, opt, 0);
	assert_true(i >= 0);
	struct qu_listener *l = &vm->lis[vm->nlis++];
	memset(l, 0, sizeof(*l));
	snprintf(l->chardev, sizeof(l->chardev), "qemu-upgrade-mon%ld", i);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->arg = i;
	l->legacy = 1;
	l->control = strcmp(opt, "monitor") != 0;
	l->pretty = !strcmp(opt, "qmp-pretty");
	l->old_fd = old_fd;
}

static void add_chardev_listener(struct qu_vm *vm, const char *id, const char *path, int control,
				 int old_fd)
{
	long i = opt_index(&vm->argv, "chardev", "backend", "id", id);
	assert_true(i >= 0);
	struct qu_listener *l = &vm->lis[vm->nlis++];
	memset(l, 0, sizeof(*l));
	snprintf(l->chardev, sizeof(l->chardev), "%s", id);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->arg = i;
	l->control = control;
	l->old_fd = old_fd;
}

static void realistic_vm(struct qu_vm *vm)
{
	set_cmdline(vm, realistic);
	add_ram(vm, "mem0", "memory-backend-memfd", OLD_FD_MEM0);
	add_ram(vm, "mem1", "memory-backend-memfd", OLD_FD_MEM1);
	add_legacy(vm, "qmp", "/run/vm1/qmp.sock", OLD_FD_QMP);
	add_chardev_listener(vm, "hmp0", "/run/vm1/hmp.sock", 0, OLD_FD_HMP);
}

/* ---- looking at the result ---- */

static size_t count_opt(const struct qu_argv *v, const char *opt)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		n += v->a[i].opt && !strcmp(v->a[i].opt, opt);
	return n;
}

static size_t count_opt_val(const struct qu_argv *v, const char *opt, const char *val)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		n += v->a[i].opt && !strcmp(v->a[i].opt, opt) && v->a[i].val && !strcmp(v->a[i].val, val);
	return n;
}

/* The one carried descriptor with old_fd; its target. */
static int target_of(const struct qu_plan *p, int old_fd, unsigned kind)
{
	int t = -1, hits = 0;
	for (size_t i = 0; i < p->nfds; i++) {
		if (p->fds[i].old_fd != old_fd)
			continue;
		hits++;
		assert_int_equal(p->fds[i].kind, kind);
		t = p->fds[i].target;
	}
	assert_int_equal(hits, 1);
	return t;
}

/* Records the first mismatch in err (so that the caller can free before failing: a failing
 * assertion longjmps out, and ASan would count what it skipped as leaks). */
static void expect_opt(const struct qu_opts *o, const char *key, const char *val, char *err, size_t len)
{
	const char *x = qu_opts_get(o, key);
	if (err[0])
		return;
	if (!val && x)
		snprintf(err, len, "'%s' should be gone but is '%s'", key, x);
	else if (val && !x)
		snprintf(err, len, "'%s' is missing (wanted '%s')", key, val);
	else if (val && strcmp(x, val))
		snprintf(err, len, "'%s' is '%s', wanted '%s'", key, x, val);
}

static void check_opts_backend(const struct qu_plan *p, long arg, const char *id, int target)
{
	char path[32], err[512] = "";
	struct qu_opts o;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", target);
	assert_string_equal(p->argv.a[arg].opt, "object");
	assert_int_equal(qu_opts_parse(p->argv.a[arg].val, "qom-type", &o), 0);
	if (!o.implied) /* written as "memory-backend-file,..." */
		snprintf(err, sizeof(err), "qom-type not in first place");
	expect_opt(&o, "qom-type", "memory-backend-file", err, sizeof(err));
	expect_opt(&o, "id", id, err, sizeof(err));
	expect_opt(&o, "mem-path", path, err, sizeof(err));
	expect_opt(&o, "share", "on", err, sizeof(err));
	const char *gone[] = { "hugetlb", "hugetlbsize", "seal", "prealloc", "prealloc-threads",
			       "discard-data", NULL };
	for (const char **k = gone; *k; k++)
		expect_opt(&o, *k, NULL, err, sizeof(err));
	qu_opts_free(&o);
	if (err[0])
		fail_msg("-object %s: %s", p->argv.a[arg].val, err);
}

static void check_json_backend(const struct qu_plan *p, long arg, const char *id, int target)
{
	char path[32], err[512] = "";
	json_object *o, *v;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", target);
	assert_string_equal(p->argv.a[arg].opt, "object");
	assert_int_equal(p->argv.a[arg].val[0], '{');
	o = json_tokener_parse(p->argv.a[arg].val);
	assert_non_null(o);
	const char *want[][2] = { { "qom-type", "memory-backend-file" }, { "id", id }, { "mem-path", path } };
	for (size_t i = 0; i < 3 && !err[0]; i++)
		if (!json_object_object_get_ex(o, want[i][0], &v) || strcmp(json_object_get_string(v), want[i][1]))
			snprintf(err, sizeof(err), "'%s' is not '%s'", want[i][0], want[i][1]);
	if (!err[0] && (!json_object_object_get_ex(o, "share", &v) || !json_object_is_type(v, json_type_boolean) ||
			!json_object_get_boolean(v)))
		snprintf(err, sizeof(err), "share is not true");
	if (!err[0] && !json_object_object_get_ex(o, "size", NULL))
		snprintf(err, sizeof(err), "size is gone");
	const char *gone[] = { "hugetlb", "hugetlbsize", "seal", "prealloc", "prealloc-threads",
			       "discard-data", NULL };
	for (const char **k = gone; *k && !err[0]; k++)
		if (json_object_object_get_ex(o, *k, NULL))
			snprintf(err, sizeof(err), "'%s' should be gone", *k);
	json_object_put(o);
	if (err[0])
		fail_msg("-object %s: %s", p->argv.a[arg].val, err);
}

/* The -chardev at arg is a carried listener: socket, id, fd=target, server=on, wait=off. */
static void check_listener_chardev(const struct qu_plan *p, long arg, const char *id, int target)
{
	char fd[16], err[512] = "";
	struct qu_opts o;
	snprintf(fd, sizeof(fd), "%d", target);
	assert_string_equal(p->argv.a[arg].opt, "chardev");
	assert_int_equal(qu_opts_parse(p->argv.a[arg].val, "backend", &o), 0);
	if (!o.implied)
		snprintf(err, sizeof(err), "backend not in first place");
	expect_opt(&o, "backend", "socket", err, sizeof(err));
	expect_opt(&o, "id", id, err, sizeof(err));
	expect_opt(&o, "fd", fd, err, sizeof(err));
	expect_opt(&o, "server", "on", err, sizeof(err));
	expect_opt(&o, "wait", "off", err, sizeof(err));
	expect_opt(&o, "path", NULL, err, sizeof(err));
	qu_opts_free(&o);
	if (err[0])
		fail_msg("-chardev %s: %s", p->argv.a[arg].val, err);
}

static void assert_not_refused(const struct qu_plan *p)
{
	if (qu_refusals_count(&p->refusals))
		fail_msg("unexpected refusal: %s", p->refusals.why[0]);
}

/* The refusal that mentions needle, or NULL. */
static const char *refusal_with(const struct qu_plan *p, const char *needle)
{
	for (unsigned i = 0; i < p->refusals.n; i++)
		if (strstr(p->refusals.why[i], needle))
			return p->refusals.why[i];
	return NULL;
}

static void rewrite_ok(struct qu_vm *vm, struct qu_plan *p)
{
	int r = qu_rewrite(vm, &p->rw);
	if (r < 0)
		fail_msg("qu_rewrite: %d %s", r, qu_err_msg());
	assert_not_refused(p);
}

/* ---- the realistic command line ---- */

static void realistic_rewrite(void **state)
{
	struct qu_vm *vm = FIX(state)->vm;
	struct qu_plan *p = FIX(state)->plan;
	realistic_vm(vm);
	rewrite_ok(vm, p);
	const struct qu_argv *a = &p->argv;
	if (getenv("QU_UNIT_DUMP")) /* QU_UNIT_DUMP=1 shows the new command line as TAP comments */
		for (size_t i = 0; i < a->n; i++)
			note("%s%s %s", a->a[i].opt ? "-" : "", a->a[i].opt ? a->a[i].opt : "",
			     a->a[i].val ? a->a[i].val : "");

	assert_string_equal(a->prog, NEW_QEMU);

	/* Machine pinned, its other properties kept. */
	assert_int_equal(count_opt(a, "machine") + count_opt(a, "M"), 1);
	long m = qu_argv_find(a, "machine", 0);
	assert_string_equal(a->a[m].val, MACHINE ",accel=kvm,memory-backend=mem0");

	/* RAM: file backends on the carried descriptors. */
	int t0 = target_of(p, OLD_FD_MEM0, QU_FD_RAM), t1 = target_of(p, OLD_FD_MEM1, QU_FD_RAM);
	check_opts_backend(p, vm->ram[0].arg, "mem0", t0);
	check_json_backend(p, vm->ram[1].arg, "mem1", t1);
	assert_int_equal(count_opt(a, "object"), 2);

	/* Listeners: the legacy -qmp became a -chardev with a -mon; the HMP chardev kept its -mon. */
	int tq = target_of(p, OLD_FD_QMP, QU_FD_LISTENER), th = target_of(p, OLD_FD_HMP, QU_FD_LISTENER);
	check_listener_chardev(p, vm->lis[0].arg, vm->lis[0].chardev, tq);
	check_listener_chardev(p, vm->lis[1].arg, "hmp0", th);
	assert_int_equal(count_opt(a, "qmp"), 0);
	char mon[128];
	snprintf(mon, sizeof(mon), "chardev=%s,mode=control", vm->lis[0].chardev);
	assert_int_equal(count_opt_val(a, "mon", mon), 1);
	assert_int_equal(count_opt_val(a, "mon", "chardev=hmp0,mode=readline"), 1);

	/* Fresh-start options gone, exactly one of the tool's own. */
	assert_int_equal(count_opt(a, "daemonize"), 0);
	assert_int_equal(count_opt(a, "incoming"), 1);
	assert_int_equal(count_opt_val(a, "incoming", "defer"), 1);
	assert_int_equal(count_opt(a, "S"), 1);
	assert_null(a->a[qu_argv_find(a, "S", 0)].val);
	assert_int_equal(opt_index(a, "chardev", "backend", "id", QU_CTL_CHARDEV) >= 0, 1);
	size_t ctl = 0;
	for (long i = -1; (i = qu_argv_find(a, "chardev", (size_t)(i + 1))) >= 0;)
		ctl += strstr(a->a[i].val, QU_CTL_CHARDEV) != NULL;
	assert_int_equal(ctl, 1);
	assert_int_equal(count_opt_val(a, "chardev", "socket,id=" QU_CTL_CHARDEV ",fd=3,server=on,wait=off"), 1);
	assert_int_equal(count_opt_val(a, "mon", "chardev=" QU_CTL_CHARDEV ",mode=control"), 1);

	/* The serial log appends; the pidfile, the disk (with its ",," path) and the rest stay. */
	assert_int_equal(count_opt_val(a, "chardev", "file,id=log0,path=/var/log/vm1/serial.log,append=on"), 1);
	assert_int_equal(count_opt_val(a, "serial", "chardev:log0"), 1);
	assert_int_equal(count_opt_val(a, "pidfile", "/run/vm1/qemu.pid"), 1);
	assert_int_equal(count_opt_val(a, "drive", "file=/var/lib/vm1/disk,,a.qcow2,if=virtio,format=qcow2"), 1);
	assert_int_equal(count_opt_val(a, "netdev", "user,id=n0"), 1);
	assert_int_equal(count_opt_val(a, "name", "guest=vm1,debug-threads=on"), 1);
	assert_int_equal(count_opt(a, "nodefaults"), 1);
	assert_int_equal(count_opt_val(a, "display", "none"), 1);

	/* Four descriptors carried, none on 0-4 (stdio, the control monitor, migration). */
	assert_int_equal(p->nfds, 4);
	for (size_t i = 0; i < p->nfds; i++) {
		assert_true(p->fds[i].target >= QU_FD_FIRST_CARRIED);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(p->fds[i].target, p->fds[j].target);
		assert_true(p->fds[i].name[0] != '\0');
	}
}

static void second_upgrade_is_idempotent(void **state)
{
	struct qu_vm *vm = FIX(state)->vm;
	struct qu_plan *p = FIX(state)->plan;
	realistic_vm(vm);
	rewrite_ok(vm, p);

	/* The new QEMU's command line is what the next upgrade finds in /proc. */
	char **words = qu_argv_flatten(&p->argv);
	assert_non_null(words);
	struct qu_vm *vm2 = calloc(1, sizeof(*vm2));
	struct qu_plan *p2 = calloc(1, sizeof(*p2));
	assert_non_null(vm2);
	assert_non_null(p2);
	snprintf(vm2->machine, sizeof(vm2->machine), MACHINE);
	memcpy(vm2->ver, vm->ver, sizeof(vm->ver));
	snprintf(p2->target.path, sizeof(p2->target.path), NEW_QEMU);
	set_cmdline(vm2, (const char *const *)words);
	add_ram(vm2, "mem0", "memory-backend-file", target_of(p, OLD_FD_MEM0, QU_FD_RAM));
	add_ram(vm2, "mem1", "memory-backend-file", target_of(p, OLD_FD_MEM1, QU_FD_RAM));
	/* Listeners as inspect finds them: -chardev socket,...,fd=N,server=on now. */
	assert_int_equal(qu_find_listeners(vm2), 0);
	assert_int_equal(vm2->nlis, 2);
	assert_string_equal(vm2->lis[0].chardev, vm->lis[0].chardev);
	assert_int_equal(vm2->lis[0].old_fd, target_of(p, OLD_FD_QMP, QU_FD_LISTENER));
	assert_true(vm2->lis[0].control);
	assert_false(vm2->lis[0].legacy);
	assert_string_equal(vm2->lis[1].chardev, "hmp0");
	assert_int_equal(vm2->lis[1].old_fd, target_of(p, OLD_FD_HMP, QU_FD_LISTENER));
	assert_false(vm2->lis[1].control);

	rewrite_ok(vm2, p2);
	char **words2 = qu_argv_flatten(&p2->argv);
	assert_non_null(words2);
	size_t k = 0;
	for (; words[k] && words2[k]; k++)
		assert_string_equal(words2[k], words[k]);
	assert_null(words[k]);
	assert_null(words2[k]);
	assert_int_equal(p2->nfds, p->nfds);
	for (size_t i = 0; i < p->nfds; i++) {
		assert_int_equal(p2->fds[i].target, p->fds[i].target);
		assert_int_equal(p2->fds[i].kind, p->fds[i].kind);
	}
	qu_strv_free(words);
	qu_strv_free(words2);
	qu_vm_free(vm2);
	qu_plan_free(p2);
	free(vm2);
	free(p2);
}

static void find_listeners_agrees_with_hand_made(void **state)
{
	struct qu_vm *vm = FIX(state)->vm;
	realistic_vm(vm);
	struct qu_listener want[2];
	memcpy(want, vm->lis, sizeof(want));
	assert_int_equal(qu_find_listeners(vm), 0);
	/* The earlier upgrade's control chardev (fd=3, no server) is not a listener. */
	assert_int_equal(vm->nlis, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(vm->lis[i].chardev, want[i].chardev);
		assert_string_equal(vm->lis[i].path, want[i].path);
		assert_int_equal(vm->lis[i].arg, want[i].arg);
		assert_int_equal(vm->lis[i].legacy, want[i].legacy);
		assert_int_equal(vm->lis[i].control, want[i].control);
	}
}

/* ---- one behaviour at a time ---- */

static void rewrite_words(struct fix *f, const char *const *words)
{
	set_cmdline(f->vm, words);
	int r = qu_rewrite(f->vm, &f->plan->rw);
	if (r < 0)
		fail_msg("qu_rewrite: %d %s", r, qu_err_msg());
}

static void machine_alias_pinned(void **state)
{
	const char *w[] = { "qemu", "-machine", "q35", NULL };
	rewrite_words(FIX(state), w);
	assert_int_equal(count_opt(&FIX(state)->plan->argv, "machine"), 1);
	assert_int_equal(count_opt_val(&FIX(state)->plan->argv, "machine", MACHINE), 1);
}

static void machine_M_pinned(void **state)
{
	const char *w[] = { "qemu", "-M", "q35,accel=tcg", NULL };
	rewrite_words(FIX(state), w);
	const struct qu_argv *a = &FIX(state)->plan->argv;
	assert_int_equal(count_opt(a, "M") + count_opt(a, "machine"), 1);
	assert_int_equal(count_opt_val(a, "machine", MACHINE ",accel=tcg"), 1);
}

static void machine_type_key_pinned(void **state)
{
	const char *w[] = { "qemu", "-machine", "accel=kvm", "-machine", "type=q35,smm=off", NULL };
	rewrite_words(FIX(state), w);
	const struct qu_argv *a = &FIX(state)->plan->argv;
	assert_int_equal(count_opt_val(a, "machine", "accel=kvm"), 1);
	assert_int_equal(count_opt_val(a, "machine", "type=" MACHINE ",smm=off"), 1);
	assert_int_equal(count_opt(a, "machine"), 2);
}

static void machine_added_when_absent(void **state)
{
	const char *w[] = { "qemu", "-m", "1G", NULL };
	rewrite_words(FIX(state), w);
	assert_int_equal(count_opt_val(&FIX(state)->plan->argv, "machine", MACHINE), 1);
}

/* The machine type and RAM block names come from QMP: a hostile answer stays one value. */
static void hostile_machine_type_stays_a_value(void **state)
{
	struct fix *f = FIX(state);
	snprintf(f->vm->machine, sizeof(f->vm->machine), "pc-q35-7.2,accel=xen,x=y");
	const char *w[] = { "qemu", "-m", "1G", NULL };
	rewrite_words(f, w);
	long i = qu_argv_find(&f->plan->argv, "machine", 0);
	assert_true(i >= 0);
	struct qu_opts o;
	assert_int_equal(qu_opts_parse(f->plan->argv.a[i].val, "type", &o), 0);
	assert_int_equal(o.n, 1);
	assert_string_equal(qu_opts_get(&o, "type"), "pc-q35-7.2,accel=xen,x=y");
	qu_opts_free(&o);
}

/* The machine's own 1 GiB block (plain -m: no -object) as QMP named it, copied, rewritten. */
static void copy_machine_ram(struct fix *f, const char *id, const char *qom_type, uint64_t page_size)
{
	struct qu_ram *r = &f->vm->ram[f->vm->nram++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->qom_type, sizeof(r->qom_type), "%s", qom_type);
	r->size = 1u << 30;
	r->arg = -1;
	r->old_fd = -1;
	r->page_size = page_size;
	f->plan->convert_mask = 1;
	assert_int_equal(qu_rewrite(f->vm, &f->plan->rw), 0);
}

static void hostile_ram_id_stays_a_value(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-m", "1G", NULL };
	set_cmdline(f->vm, w);
	copy_machine_ram(f, "pc.ram,mem-path=/etc/shadow", "memory-backend-ram", 0);
	long i = object_index(&f->plan->argv, "pc.ram,mem-path=/etc/shadow");
	assert_true(i >= 0);
	struct qu_opts o;
	assert_int_equal(qu_opts_parse(f->plan->argv.a[i].val, "qom-type", &o), 0);
	assert_int_equal(o.n, 5);
	assert_string_equal(qu_opts_get(&o, "mem-path"), "/proc/self/fd/5");
	qu_opts_free(&o);
	assert_true(opt_index(&f->plan->argv, "machine", NULL, "memory-backend", "pc.ram,mem-path=/etc/shadow") >= 0);
}

/* -mem-path (huge pages for plain -m) copied into a backend: QEMU refuses -mem-path beside
 * -machine memory-backend=, so it goes. */
static void copied_mem_path_is_dropped(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-m", "1G", "-mem-path", "/dev/hugepages", NULL };
	set_cmdline(f->vm, w);
	copy_machine_ram(f, "pc.ram", "memory-backend-file", 2u << 20);
	assert_int_equal(qu_argv_find(&f->plan->argv, "mem-path", 0), -1);
	assert_true(object_index(&f->plan->argv, "pc.ram") >= 0);
	assert_true(opt_index(&f->plan->argv, "machine", NULL, "memory-backend", "pc.ram") >= 0);
	/* The copy is made on huge pages of the same size. */
	assert_int_equal(f->plan->fds[f->plan->nfds - 1].page_size, 2u << 20);
}

static void backend_opts_drops_memfd_props(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object",
			    "memory-backend-memfd,id=m0,size=256M,share=on,seal=on,prealloc=on,prealloc-threads=4",
			    NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 9);
	rewrite_ok(f->vm, f->plan);
	check_opts_backend(f->plan, 0, "m0", target_of(f->plan, 9, QU_FD_RAM));
	assert_string_equal(f->plan->argv.a[0].val,
			    "memory-backend-file,id=m0,size=256M,share=on,mem-path=/proc/self/fd/5");
}

static void backend_opts_drops_hugetlb(void **state)
{
	/* memory-backend-file has no "hugetlb": QEMU refuses to start with "Invalid parameter
	 * 'hugetlb'", so the property must go like hugetlbsize does. */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object",
			    "memory-backend-memfd,id=m0,size=256M,share=on,hugetlb=on,hugetlbsize=2M", NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 9);
	rewrite_ok(f->vm, f->plan);
	check_opts_backend(f->plan, 0, "m0", target_of(f->plan, 9, QU_FD_RAM));
}

static void backend_opts_explicit_qom_type(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object", "qom-type=memory-backend-memfd,id=m0,size=256M,share=on", NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 9);
	rewrite_ok(f->vm, f->plan);
	check_opts_backend(f->plan, 0, "m0", target_of(f->plan, 9, QU_FD_RAM));
}

static void backend_file_gets_new_mem_path(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object",
			    "memory-backend-file,id=m0,size=256M,share=on,mem-path=/dev/shm/vm1,discard-data=on",
			    NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-file", 9);
	rewrite_ok(f->vm, f->plan);
	check_opts_backend(f->plan, 0, "m0", target_of(f->plan, 9, QU_FD_RAM));
}

static void backend_json_form(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object",
			    "{\"qom-type\":\"memory-backend-memfd\",\"id\":\"m0\",\"size\":268435456,\"share\":true,"
			    "\"hugetlb\":true,\"hugetlbsize\":2097152,\"seal\":false,\"prealloc\":true,"
			    "\"prealloc-threads\":2,\"discard-data\":true}",
			    NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 9);
	rewrite_ok(f->vm, f->plan);
	check_json_backend(f->plan, 0, "m0", target_of(f->plan, 9, QU_FD_RAM));
}

static void ram_without_descriptor_not_carried(void **state)
{
	struct fix *f = FIX(state);
	const char *val = "memory-backend-memfd,id=m0,size=256M,share=on";
	const char *w[] = { "qemu", "-object", val, NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", -1);
	assert_int_equal(qu_rewrite(f->vm, &f->plan->rw), 0);
	assert_int_equal(f->plan->nfds, 0);
	assert_string_equal(f->plan->argv.a[0].val, val);
}

static void legacy_qmp_pretty_listener(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-qmp-pretty", "unix:/run/q.sock,server=on,wait=off", NULL };
	set_cmdline(f->vm, w);
	add_legacy(f->vm, "qmp-pretty", "/run/q.sock", 40);
	rewrite_ok(f->vm, f->plan);
	const struct qu_argv *a = &f->plan->argv;
	check_listener_chardev(f->plan, 0, "qemu-upgrade-mon0", target_of(f->plan, 40, QU_FD_LISTENER));
	assert_int_equal(count_opt_val(a, "mon", "chardev=qemu-upgrade-mon0,mode=control,pretty=on"), 1);
	assert_int_equal(count_opt(a, "qmp-pretty"), 0);
}

static void legacy_monitor_listener(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-monitor", "unix:/run/hmp.sock,server=on,wait=off", NULL };
	set_cmdline(f->vm, w);
	add_legacy(f->vm, "monitor", "/run/hmp.sock", 40);
	rewrite_ok(f->vm, f->plan);
	check_listener_chardev(f->plan, 0, "qemu-upgrade-mon0", target_of(f->plan, 40, QU_FD_LISTENER));
	assert_int_equal(count_opt_val(&f->plan->argv, "mon", "chardev=qemu-upgrade-mon0,mode=readline"), 1);
	assert_int_equal(count_opt(&f->plan->argv, "monitor"), 0);
}

static void chardev_listener_wait_becomes_off(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-chardev", "socket,id=mon0,path=/run/m.sock,server,wait", "-mon",
			    "chardev=mon0,mode=control", NULL };
	set_cmdline(f->vm, w);
	add_chardev_listener(f->vm, "mon0", "/run/m.sock", 1, 40);
	rewrite_ok(f->vm, f->plan);
	check_listener_chardev(f->plan, 0, "mon0", target_of(f->plan, 40, QU_FD_LISTENER));
	/* The -mon it had is all it needs: no second one. */
	assert_int_equal(count_opt_val(&f->plan->argv, "mon", "chardev=mon0,mode=control"), 1);
}

static void fresh_start_options_dropped(void **state)
{
	const char *w[] = { "qemu", "-S", "-daemonize", "-incoming", "defer", "-incoming", "unix:/x", "-S",
			    "-chardev", "socket,id=qemu-upgrade-ctl,fd=3", "-mon",
			    "chardev=qemu-upgrade-ctl,mode=control", NULL };
	rewrite_words(FIX(state), w);
	const struct qu_argv *a = &FIX(state)->plan->argv;
	assert_int_equal(count_opt(a, "daemonize"), 0);
	assert_int_equal(count_opt(a, "S"), 1);
	assert_int_equal(count_opt(a, "incoming"), 1);
	assert_int_equal(count_opt_val(a, "incoming", "defer"), 1);
	assert_int_equal(count_opt(a, "chardev"), 1);
	assert_int_equal(count_opt(a, "mon"), 1);
	assert_not_refused(FIX(state)->plan);
}

static void serial_file_becomes_appending_chardev(void **state)
{
	const char *w[] = { "qemu", "-serial", "file:/var/log/vm/serial.log", NULL };
	rewrite_words(FIX(state), w);
	const struct qu_argv *a = &FIX(state)->plan->argv;
	long s = qu_argv_find(a, "serial", 0);
	assert_true(s >= 0);
	assert_true(!strncmp(a->a[s].val, "chardev:", 8));
	const char *id = a->a[s].val + 8;
	long c = opt_index(a, "chardev", "backend", "id", id);
	assert_true(c >= 0);
	struct qu_opts o;
	char err[256] = "";
	assert_int_equal(qu_opts_parse(a->a[c].val, "backend", &o), 0);
	expect_opt(&o, "backend", "file", err, sizeof(err));
	expect_opt(&o, "path", "/var/log/vm/serial.log", err, sizeof(err));
	expect_opt(&o, "append", "on", err, sizeof(err));
	qu_opts_free(&o);
	if (err[0])
		fail_msg("-chardev %s: %s", a->a[c].val, err);
}

static void file_chardev_append_replaces_off(void **state)
{
	const char *w[] = { "qemu", "-chardev", "file,id=l,path=/tmp/l.log,append=off", NULL };
	rewrite_words(FIX(state), w);
	assert_int_equal(count_opt_val(&FIX(state)->plan->argv, "chardev", "file,id=l,path=/tmp/l.log,append=on"), 1);
}

static void targets_after_stdio(void **state)
{
	/* plan_make puts stdout/stderr (targets 1 and 2) in plan->fds before qu_rewrite. */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object", "memory-backend-memfd,id=m0,size=1G,share=on", "-chardev",
			    "socket,id=c0,path=/run/c.sock,server=on,wait=off", NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 30);
	add_chardev_listener(f->vm, "c0", "/run/c.sock", 0, 31);
	f->plan->fds[0] = (struct qu_carried){ .old_fd = 1, .target = 1, .kind = QU_FD_STDIO };
	f->plan->fds[1] = (struct qu_carried){ .old_fd = 2, .target = 2, .kind = QU_FD_STDIO };
	f->plan->nfds = 2;
	rewrite_ok(f->vm, f->plan);
	assert_int_equal(f->plan->nfds, 4);
	assert_int_equal(target_of(f->plan, 30, QU_FD_RAM), QU_FD_FIRST_CARRIED);
	assert_int_equal(target_of(f->plan, 31, QU_FD_LISTENER), QU_FD_FIRST_CARRIED + 1);
	assert_int_equal(target_of(f->plan, 1, QU_FD_STDIO), 1);
}

static void too_many_descriptors(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-object", "memory-backend-memfd,id=m0,size=1G,share=on", NULL };
	set_cmdline(f->vm, w);
	add_ram(f->vm, "m0", "memory-backend-memfd", 30);
	f->plan->nfds = QU_MAX_CARRIED;
	for (size_t i = 0; i < QU_MAX_CARRIED; i++)
		f->plan->fds[i] = (struct qu_carried){ .old_fd = 100 + (int)i, .target = 5 + (int)i };
	assert_int_equal(qu_rewrite(f->vm, &f->plan->rw), -E2BIG);
	assert_int_equal(f->plan->nfds, QU_MAX_CARRIED);
}

/* ---- refusals ---- */

static void assert_refused(void **state, const char *const *words, const char *needle)
{
	struct fix *f = FIX(state);
	rewrite_words(f, words);
	if (!f->plan->refusals.n)
		fail_msg("not refused (wanted a refusal mentioning '%s')", needle);
	if (!refusal_with(f->plan, needle))
		fail_msg("no refusal mentions '%s'; the first: '%s'", needle, f->plan->refusals.why[0]);
}

static void refuse_netdev_tap(void **state)
{
	const char *w[] = { "qemu", "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device",
			    "virtio-net-pci,netdev=n0", NULL };
	assert_refused(state, w, "tap");
}

static void refuse_netdev_tap_type_key(void **state)
{
	/* The same tap device written with the type key, which QEMU 7.2 accepts. */
	const char *w[] = { "qemu", "-netdev", "type=tap,id=n0,ifname=tap0,script=no,downscript=no", NULL };
	assert_refused(state, w, "tap");
}

static void refuse_netdev_tap_json(void **state)
{
	/* And in JSON, which -netdev accepts since QEMU 7.1. */
	const char *w[] = { "qemu", "-netdev",
			    "{\"type\":\"tap\",\"id\":\"n0\",\"ifname\":\"tap0\",\"script\":\"no\",\"downscript\":\"no\"}",
			    NULL };
	assert_refused(state, w, "tap");
}

static void refuse_nic_tap(void **state)
{
	const char *w[] = { "qemu", "-nic", "tap,ifname=tap0,model=virtio-net-pci", NULL };
	assert_refused(state, w, "tap");
}

static void refuse_vhost_user(void **state)
{
	const char *w[] = { "qemu", "-netdev", "vhost-user,id=n0,chardev=c0", NULL };
	assert_refused(state, w, "vhost");
}

static void refuse_add_fd(void **state)
{
	const char *w[] = { "qemu", "-add-fd", "fd=10,set=2,opaque=rdonly:/img", NULL };
	assert_refused(state, w, "-add-fd");
	assert_non_null(refusal_with(FIX(state)->plan, "query-fdsets lists no member"));
}

static void add_fdset_member(struct qu_vm *vm, int set, int old_fd, const char *opaque)
{
	struct qu_fdset_fd *e = &vm->fdset_fds[vm->nfdset_fds++];
	*e = (struct qu_fdset_fd){ .set = set, .old_fd = old_fd, .has_opaque = opaque != NULL };
	if (opaque)
		snprintf(e->opaque, sizeof(e->opaque), "%s", opaque);
}

/* libvirt 9.0's serial log: -add-fd and a file chardev on /dev/fdset/N. QEMU closed the fd=
 * of the command line; the set's member (its dup, as query-fdsets lists it) is carried to a new
 * number, in the same set, with the same opaque, and the chardev's path stays. */
static void add_fd_carried(void **state)
{
	struct fix *f = FIX(state);
	add_fdset_member(f->vm, 0, 27, "serial0-log");
	add_fdset_member(f->vm, 1, 28, NULL);
	const char *w[] = { "qemu", "-add-fd", "set=0,fd=23,opaque=serial0-log", "-add-fd", "set=1,fd=24",
			    "-chardev", "file,id=charserial0,path=/dev/fdset/0,append=on", "-serial",
			    "chardev:charserial0", NULL };
	rewrite_words(f, w);
	assert_int_equal(f->plan->refusals.n, 0);
	assert_int_equal(f->plan->nfds, 2);
	for (size_t k = 0; k < 2; k++) {
		const struct qu_carried *c = &f->plan->fds[k];
		char want[64];
		assert_int_equal(c->kind, QU_FD_FDSET);
		assert_int_equal(c->old_fd, k ? 28 : 27);
		assert_true(c->target >= QU_FD_FIRST_CARRIED);
		if (k)
			snprintf(want, sizeof(want), "set=1,fd=%d", c->target);
		else
			snprintf(want, sizeof(want), "set=0,fd=%d,opaque=serial0-log", c->target);
		assert_int_equal(count_opt_val(&f->plan->argv, "add-fd", want), 1);
	}
	assert_int_equal(count_opt(&f->plan->argv, "add-fd"), 2);
	assert_int_equal(count_opt_val(&f->plan->argv, "chardev", "file,id=charserial0,path=/dev/fdset/0,append=on"), 1);
}

/* What cannot be carried stays refused, each with its reason. */
static void add_fd_refused_forms(void **state)
{
	static const struct {
		const char *val, *why;
	} cases[] = {
		{ "set=3,fd=10", "query-fdsets lists no member" },          /* not in the old QEMU */
		{ "set=0,fd=10,opaque=other", "query-fdsets lists no member" }, /* another opaque */
		{ "fd=10", "needs set= and fd= as numbers" },
		{ "set=0,fd=x", "needs set= and fd= as numbers" },
		{ "set=-1,fd=10", "needs set= and fd= as numbers" },
		{ "set=0,fd=10,opaque=a,flags=1", "other than set=" },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fix *f = FIX(state);
		qu_vm_free(f->vm);
		qu_plan_free(f->plan);
		memset(f->vm, 0, sizeof(*f->vm));
		memset(f->plan, 0, sizeof(*f->plan));
		snprintf(f->vm->machine, sizeof(f->vm->machine), MACHINE);
		snprintf(f->plan->target.path, sizeof(f->plan->target.path), NEW_QEMU);
		add_fdset_member(f->vm, 0, 27, "a");
		const char *w[] = { "qemu", "-add-fd", cases[k].val, NULL };
		rewrite_words(f, w);
		if (f->plan->refusals.n != 1 || !refusal_with(f->plan, cases[k].why) || !refusal_with(f->plan, cases[k].val))
			fail_msg("-add-fd %s: wanted one refusal saying '%s', got %u: %s", cases[k].val, cases[k].why,
				 f->plan->refusals.n, f->plan->refusals.n ? f->plan->refusals.why[0] : "");
		assert_int_equal(f->plan->nfds, 0);
	}
}

/* Two options of one set with the same opaque cannot be matched to their members. */
static void add_fd_ambiguous_refused(void **state)
{
	struct fix *f = FIX(state);
	add_fdset_member(f->vm, 0, 27, NULL);
	add_fdset_member(f->vm, 0, 28, NULL);
	const char *w[] = { "qemu", "-add-fd", "set=0,fd=10", "-add-fd", "set=0,fd=11", NULL };
	rewrite_words(f, w);
	assert_int_equal(f->plan->refusals.n, 2);
	assert_non_null(refusal_with(f->plan, "cannot be told apart"));
	assert_int_equal(f->plan->nfds, 0);
}

static void refuse_passed_in_fd(void **state)
{
	const char *w[] = { "qemu", "-netdev", "socket,id=n0,fd=9", NULL };
	assert_refused(state, w, "fd=");
}

/* A client socket is not refused: the new QEMU connects anew, retrying (QEMU 7.2 spelling). */
static void client_socket_chardev_reconnects(void **state)
{
	const char *w[] = { "qemu", "-chardev", "socket,id=c0,path=/run/other.sock", NULL };
	rewrite_words(FIX(state), w);
	assert_not_refused(FIX(state)->plan);
	assert_int_equal(count_opt_val(&FIX(state)->plan->argv, "chardev", "socket,id=c0,path=/run/other.sock,reconnect=1"), 1);
}

/* What Proxmox's qemu-server and qmeventd read back from /proc/PID/cmdline stays word for
 * word (docs/proxmox.md): argv[0] aside (the rewriter writes the new binary's path; upgrade/argv0.c decides), "-pidfile"
 * and its value as two words (qmeventd takes the VMID from it), -id, -name, -cpu (read
 * for a live migration), and the event socket keeps the reconnect it was given. */
static void proxmox_words_kept(void **state)
{
	const char *w[] = { "/usr/bin/kvm", "-id", "100", "-name", "vm100,debug-threads=on", "-no-shutdown",
			    "-chardev", "socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect=5",
			    "-mon", "chardev=qmp-event,mode=control", "-pidfile", "/var/run/qemu-server/100.pid",
			    "-daemonize", "-cpu", "kvm64,enforce,+kvm_pv_eoi", NULL };
	rewrite_words(FIX(state), w);
	const struct qu_argv *v = &FIX(state)->plan->argv;
	assert_not_refused(FIX(state)->plan);
	assert_string_equal(v->prog, FIX(state)->plan->target.path);
	assert_int_equal(count_opt_val(v, "id", "100"), 1);
	assert_int_equal(count_opt_val(v, "name", "vm100,debug-threads=on"), 1);
	assert_int_equal(count_opt_val(v, "pidfile", "/var/run/qemu-server/100.pid"), 1);
	assert_int_equal(count_opt_val(v, "cpu", "kvm64,enforce,+kvm_pv_eoi"), 1);
	assert_int_equal(count_opt_val(v, "chardev", "socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect=5"), 1);
	assert_int_equal(count_opt(v, "no-shutdown"), 1);
	assert_int_equal(count_opt(v, "daemonize"), 0);
	char **flat = qu_argv_flatten(v);
	size_t i = 0;
	while (flat[i] && strcmp(flat[i], "-pidfile"))
		i++;
	assert_non_null(flat[i]);
	assert_string_equal(flat[i + 1], "/var/run/qemu-server/100.pid");
	qu_strv_free(flat);
}

/* -vnc unix:PATH cannot be passed as a descriptor: its path is found, to be given back to
 * the old QEMU's socket on a rollback; a TCP display or a path too long for a socket is not. */
static void vnc_unix_path_found(void **state)
{
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	memcpy(longpath, "unix:/", 6);
	const char *w[] = { "qemu", "-vnc", "unix:/var/run/qemu-server/100.vnc,password=on", "-vnc", ":1",
			    "-vnc", longpath, NULL };
	struct qu_vm *vm = FIX(state)->vm;
	set_cmdline(vm, w);
	assert_int_equal(qu_find_rebound(vm), 0);
	assert_int_equal(vm->nrebound, 1);
	assert_string_equal(vm->rebound[0], "/var/run/qemu-server/100.vnc");
}

static void refuse_pty_chardev(void **state)
{
	const char *w[] = { "qemu", "-chardev", "pty,id=c0", NULL };
	assert_refused(state, w, "pty");
}

static void refuse_serial_stdio(void **state)
{
	const char *w[] = { "qemu", "-serial", "stdio", NULL };
	assert_refused(state, w, "stdio");
}

static void refuse_chardev_tcp_server(void **state)
{
	/* The new QEMU cannot bind the port the old one listens on ("Failed to find an available
	 * port: Address already in use"), just as with "-serial tcp:...,server=on", which is
	 * refused. */
	const char *w[] = { "qemu", "-chardev", "socket,id=s0,host=127.0.0.1,port=4555,server=on,wait=off",
			    "-serial", "chardev:s0", NULL };
	assert_refused(state, w, "");
}

static void legacy_serial_unix_server_carried_or_refused(void **state)
{
	/* -serial unix:PATH,server=on is a listening UNIX socket like -qmp unix:PATH,server=on, but
	 * is neither carried nor refused: the new QEMU unlinks PATH and binds its own socket, so
	 * after a rollback the old QEMU's serial socket has no path any more. */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-serial", "unix:/run/vm1/serial.sock,server=on,wait=off", NULL };
	set_cmdline(f->vm, w);
	assert_int_equal(qu_find_listeners(f->vm), 0);
	int r = qu_rewrite(f->vm, &f->plan->rw);
	assert_int_equal(r, 0);
	if (f->vm->nlis == 0 && !f->plan->refusals.n)
		fail_msg("-serial unix:...,server=on: not found as a listener and not refused; new "
			 "command line keeps '-serial %s'", f->plan->argv.a[0].val);
}

static void vhost_tap_gets_fresh_vhost_descriptors(void **state)
{
	/* Two queues with the old QEMU's vhost descriptors: the taps move, the vhost descriptors
	 * are new ones the tool opens (kind vhost, no old descriptor). */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", "tap,id=n0,fds=20:21,vhost=on,vhostfds=22:23", "-device",
			    "virtio-net-pci,netdev=n0,mq=on", NULL };
	set_cmdline(f->vm, w);
	assert_int_equal(qu_find_taps(f->vm), 0);
	assert_int_equal(f->vm->ntaps, 1);
	assert_true(f->vm->taps[0].vhost);
	assert_int_equal(qu_rewrite(f->vm, &f->plan->rw), 0);
	assert_not_refused(f->plan);
	const char *nd = NULL;
	for (size_t i = 0; i < f->plan->argv.n; i++)
		if (f->plan->argv.a[i].opt && !strcmp(f->plan->argv.a[i].opt, "netdev"))
			nd = f->plan->argv.a[i].val;
	assert_non_null(nd);
	int tap0 = -1, vh0 = -1, vh1 = -1, taps = 0, vhosts = 0;
	for (size_t i = 0; i < f->plan->nfds; i++) {
		if (f->plan->fds[i].kind == QU_FD_TAP) {
			if (!taps++)
				tap0 = f->plan->fds[i].target;
		} else if (f->plan->fds[i].kind == QU_FD_VHOST) {
			assert_int_equal(f->plan->fds[i].old_fd, -1);
			if (!vhosts++)
				vh0 = f->plan->fds[i].target;
			else
				vh1 = f->plan->fds[i].target;
		}
	}
	assert_int_equal(taps, 2);
	assert_int_equal(vhosts, 2);
	char want[96];
	snprintf(want, sizeof(want), "vhostfds=%d:%d", vh0, vh1);
	if (!strstr(nd, want) || strstr(nd, "vhost=on") || strstr(nd, "22:23"))
		fail_msg("netdev '%s' should have %s, no vhost=on and none of the old vhost descriptors", nd, want);
	snprintf(want, sizeof(want), "fds=%d:", tap0);
	assert_non_null(strstr(nd, want));
}

/* ---- taps in every form management tools write ---- */

/* The new command line's only -netdev. */
static const char *the_netdev(const struct qu_plan *p)
{
	const char *nd = NULL;
	for (size_t i = 0; i < p->argv.n; i++)
		if (p->argv.a[i].opt && !strcmp(p->argv.a[i].opt, "netdev")) {
			assert_null(nd);
			nd = p->argv.a[i].val;
		}
	assert_non_null(nd);
	return nd;
}

/* Rewrites words (taps found by qu_find_taps, as inspect does) without refusal; the new
 * -netdev is the JSON object want, member for member and type for type (QEMU refuses "fd":5). */
static void json_tap_becomes(void **state, const char *const *words, const char *want)
{
	struct fix *f = FIX(state);
	set_cmdline(f->vm, words);
	assert_int_equal(qu_find_taps(f->vm), 0);
	assert_int_equal(f->vm->ntaps, 1);
	rewrite_ok(f->vm, f->plan);
	const char *nd = the_netdev(f->plan);
	json_object *got = json_tokener_parse(nd), *exp = json_tokener_parse(want);
	int same = got && exp && json_object_equal(got, exp);
	json_object_put(got);
	json_object_put(exp);
	if (!same)
		fail_msg("-netdev %s, wanted %s", nd, want);
}

static void json_tap_fd_string(void **state)
{
	/* As libvirt writes it: the descriptor as a string. */
	const char *w[] = { "qemu", "-netdev", "{\"type\":\"tap\",\"fd\":\"25\",\"id\":\"hostnet0\"}", "-device",
			    "{\"driver\":\"virtio-net-pci\",\"netdev\":\"hostnet0\",\"id\":\"net0\"}", NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"hostnet0\",\"fd\":\"5\"}");
	assert_int_equal(target_of(FIX(state)->plan, 25, QU_FD_TAP), QU_FD_FIRST_CARRIED);
}

static void json_tap_fd_number(void **state)
{
	/* A number is read as well; what is written is a string, the one type QEMU takes. */
	const char *w[] = { "qemu", "-netdev", "{\"type\":\"tap\",\"fd\":25,\"id\":\"hostnet0\"}", NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"hostnet0\",\"fd\":\"5\"}");
	assert_int_equal(target_of(FIX(state)->plan, 25, QU_FD_TAP), QU_FD_FIRST_CARRIED);
}

static void json_tap_fds_two_queues(void **state)
{
	const char *w[] = { "qemu", "-netdev",
			    "{\"type\":\"tap\",\"fds\":\"26:25\",\"id\":\"hostnet0\",\"sndbuf\":1048576}", NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"hostnet0\",\"sndbuf\":1048576,\"fds\":\"5:6\"}");
	/* Queue order is the list's order, not the descriptors' */
	assert_int_equal(target_of(FIX(state)->plan, 26, QU_FD_TAP), QU_FD_FIRST_CARRIED);
	assert_int_equal(target_of(FIX(state)->plan, 25, QU_FD_TAP), QU_FD_FIRST_CARRIED + 1);
}

static void json_tap_vhostfd(void **state)
{
	/* libvirt with vhost-net: the old vhost descriptor (27) stays behind; the tool opens a
	 * new one (no old descriptor), and vhost=true goes (vhostfd= implies it). */
	const char *w[] = { "qemu", "-netdev",
			    "{\"type\":\"tap\",\"fd\":\"25\",\"vhost\":true,\"vhostfd\":\"27\",\"id\":\"hostnet0\"}",
			    NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"hostnet0\",\"fd\":\"5\",\"vhostfd\":\"6\"}");
	assert_int_equal(target_of(FIX(state)->plan, -1, QU_FD_VHOST), QU_FD_FIRST_CARRIED + 1);
	assert_int_equal(FIX(state)->plan->nfds, 2);
}

/* The tap's spec (what another host opens it by) says whether its queues carry a virtio-net
 * header, when inspect could read it from the descriptor, and nothing when it could not. */
static void tap_spec_vnet_hdr(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", "tap,id=n0,fd=25,vnet_hdr=off", NULL };
	set_cmdline(f->vm, w);
	assert_int_equal(qu_find_taps(f->vm), 0);
	assert_int_equal(f->vm->taps[0].vnet_hdr, -1); /* no pidfd in this fixture: unknown */
	f->vm->taps[0].vnet_hdr = 0;
	rewrite_ok(f->vm, f->plan);
	assert_string_equal(f->plan->fds[0].spec, "ifname=\nqueues=1\nvnet_hdr=0\n");
	assert_string_equal(the_netdev(f->plan), "tap,id=n0,fd=5");
}

static void json_tap_vhostfds_two_queues(void **state)
{
	const char *w[] = { "qemu", "-netdev",
			    "{\"type\":\"tap\",\"fds\":\"25:26\",\"vhost\":true,\"vhostfds\":\"27:28\",\"id\":\"n\"}", NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"n\",\"fds\":\"5:7\",\"vhostfds\":\"6:8\"}");
}

static void json_tap_rewritten_twice(void **state)
{
	/* The next upgrade reads this upgrade's output: the same tap, carried again. */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", "{\"type\":\"tap\",\"id\":\"n\",\"fds\":\"5:7\",\"vhostfds\":\"6:8\"}", NULL };
	json_tap_becomes(state, w, "{\"type\":\"tap\",\"id\":\"n\",\"fds\":\"5:7\",\"vhostfds\":\"6:8\"}");
	assert_int_equal(target_of(f->plan, 5, QU_FD_TAP), QU_FD_FIRST_CARRIED);
	assert_int_equal(target_of(f->plan, 7, QU_FD_TAP), QU_FD_FIRST_CARRIED + 2);
}

/* A tap the old QEMU opened by name, as qu_find_taps fills it from the VM's tun descriptors. */
static void add_named_tap(struct qu_vm *vm, const char *id, const char *ifname, int vhost, int downscript,
			  const int *old_fds, int n)
{
	struct qu_tap *t = &vm->taps[vm->ntaps++];
	memset(t, 0, sizeof(*t));
	t->arg = qu_argv_find(&vm->argv, "netdev", 0);
	assert_true(t->arg >= 0);
	snprintf(t->id, sizeof(t->id), "%s", id);
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
	t->vhost = vhost;
	t->downscript = downscript;
	memcpy(t->old_fds, old_fds, sizeof(int) * (size_t)n);
	t->nfds = n;
}

static void proxmox_tap_carried(void **state)
{
	/* Proxmox's form: type=tap, a bridge script and its down script, vhost=on. The tap's
	 * descriptor goes over, the scripts and the name go, and the rewrite is not refused by
	 * its own fd=. */
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev",
			    "type=tap,id=net0,ifname=tap100i0,script=/var/lib/qemu-server/pve-bridge,"
			    "downscript=/var/lib/qemu-server/pve-bridgedown,vhost=on",
			    "-device", "virtio-net-pci,mac=BC:24:11:00:00:01,netdev=net0,bus=pci.0,addr=0x12,id=net0", NULL };
	set_cmdline(f->vm, w);
	add_named_tap(f->vm, "net0", "tap100i0", 1, 1, (const int[]){ 30 }, 1);
	rewrite_ok(f->vm, f->plan);
	assert_string_equal(the_netdev(f->plan), "type=tap,id=net0,fd=5,vhostfd=6");
	assert_int_equal(target_of(f->plan, 30, QU_FD_TAP), QU_FD_FIRST_CARRIED);
}

static void type_tap_ifname_two_queues(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", "type=tap,id=net0,ifname=tap100i0,script=no,downscript=no,queues=2,vnet_hdr=on",
			    NULL };
	set_cmdline(f->vm, w);
	add_named_tap(f->vm, "net0", "tap100i0", 0, 0, (const int[]){ 30, 31 }, 2);
	rewrite_ok(f->vm, f->plan);
	assert_string_equal(the_netdev(f->plan), "type=tap,id=net0,fds=5:6");
	/* And once more, from that output (qu_find_taps reads fds=). */
	struct qu_vm *again = calloc(1, sizeof(*again));
	struct qu_plan *p2 = calloc(1, sizeof(*p2));
	assert_true(again && p2);
	snprintf(again->machine, sizeof(again->machine), MACHINE);
	snprintf(p2->target.path, sizeof(p2->target.path), NEW_QEMU);
	const char *w2[] = { "qemu", "-netdev", the_netdev(f->plan), NULL };
	set_cmdline(again, w2);
	int r = qu_find_taps(again);
	int ok = r == 0 && again->ntaps == 1 && again->taps[0].nfds == 2 && again->taps[0].old_fds[1] == 6 &&
		 qu_rewrite(again, &p2->rw) == 0 && !p2->refusals.n;
	char got[QU_REFUSAL_LEN];
	snprintf(got, sizeof(got), "%s", ok ? the_netdev(p2) : p2->refusals.n ? p2->refusals.why[0] : "(no tap found)");
	qu_vm_free(again);
	qu_plan_free(p2);
	free(again);
	free(p2);
	if (!ok || strcmp(got, "type=tap,id=net0,fds=5:6"))
		fail_msg("second rewrite: %s", got);
}

/* A tap inspect finds whose descriptors it cannot read: found, with no queue, and refused. */
static void assert_tap_unreadable(void **state, const char *netdev)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", netdev, NULL };
	set_cmdline(f->vm, w);
	assert_int_equal(qu_find_taps(f->vm), 0);
	assert_int_equal(f->vm->ntaps, 1);
	assert_int_equal(f->vm->taps[0].nfds, 0);
	assert_int_equal(qu_rewrite(f->vm, &f->plan->rw), 0);
	assert_non_null(refusal_with(f->plan, "this tap cannot be carried"));
}

static void refuse_json_tap_fd_name(void **state)
{
	/* QEMU takes a monitor's descriptor name for fd=: nothing this tool can find. */
	assert_tap_unreadable(state, "{\"type\":\"tap\",\"fd\":\"tapfd\",\"id\":\"n\"}");
}

static void refuse_tap_too_many_queues(void **state)
{
	/* More queues than the tool carries: refused, never carried cut short. */
	assert_tap_unreadable(state, "tap,id=n,fds=10:11:12:13:14:15:16:17:18");
}

static void refuse_tap_stranger_fd(void **state)
{
	/* fd= that no found tap carries (a stranger's descriptor), in each form: refused, and
	 * vhostfd= alone is no carried tap either. */
	const char *const lines[] = { "type=tap,id=n,fd=5", "tap,id=n,fd=5", "{\"type\":\"tap\",\"id\":\"n\",\"fd\":\"5\"}",
				      "tap,id=n,vhostfd=5", NULL };
	for (const char *const *l = lines; *l; l++) {
		struct fix *f = FIX(state);
		const char *w[] = { "qemu", "-netdev", *l, NULL };
		qu_vm_free(f->vm);
		qu_plan_free(f->plan);
		memset(f->vm, 0, sizeof(*f->vm));
		memset(f->plan, 0, sizeof(*f->plan));
		snprintf(f->plan->target.path, sizeof(f->plan->target.path), NEW_QEMU);
		assert_refused(state, w, "tap");
	}
}

static void netdev_fd_list_strict(void **state)
{
	int fds[3];
	assert_int_equal(qu_netdev_fd_list("25", fds, 1), 1);
	assert_int_equal(fds[0], 25);
	assert_int_equal(qu_netdev_fd_list("7:3:9", fds, 3), 3);
	assert_int_equal(fds[1], 3);
	const char *bad[] = { "", ":", "5:", ":5", "5::6", "-1", "5a", "x", "1048576", "99999999", "1:2:3:4", " 5", NULL };
	for (const char **b = bad; *b; b++)
		if (qu_netdev_fd_list(*b, fds, 3) != -EINVAL)
			fail_msg("'%s' was read as descriptors", *b);
}

/* Issue 15: an operator who fixes one blocker must not meet the next on the following try:
 * independent blockers on one command line are all reported. */
static void every_blocker_is_reported(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-snapshot", "-add-fd", "fd=10,set=2", "-netdev", "user,id=u0", "-chardev",
			    "pipe,id=p0,path=/tmp/fifo", "-netdev", "tap,id=n0", "-serial", "stdio", NULL };
	rewrite_words(f, w);
	const char *const want[] = { "-snapshot", "-add-fd fd=10,set=2", "-chardev pipe,id=p0",
				     "-netdev tap,id=n0", "-serial stdio", NULL };
	for (const char *const *n = want; *n; n++)
		if (!refusal_with(f->plan, *n))
			fail_msg("no refusal mentions '%s' (%u reported)", *n, f->plan->refusals.n);
	assert_int_equal(f->plan->refusals.n, 5);
	assert_int_equal(f->plan->refusals.more, 0);
}

/* An option with several faults is one blocker: it gets its first reason only (before, the
 * socket netdev's own reason; not also its fd=). */
static void one_reason_per_option(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-netdev", "socket,id=n0,fd=9", "-add-fd", "fd=10,set=2", NULL };
	rewrite_words(f, w);
	assert_int_equal(f->plan->refusals.n, 2);
	assert_non_null(strstr(f->plan->refusals.why[0], "socket networking cannot be carried"));
	assert_non_null(strstr(f->plan->refusals.why[1], "-add-fd"));
}

/* The list is bounded: past QU_MAX_REFUSALS the reasons are counted, not kept, and the
 * joined text says how many more there are. */
static void refusals_past_the_limit_are_counted(void **state)
{
	struct fix *f = FIX(state);
	const char *w[2 * QU_MAX_REFUSALS + 8];
	char vals[QU_MAX_REFUSALS + 3][32];
	size_t k = 0;
	w[k++] = "qemu";
	for (int i = 0; i < QU_MAX_REFUSALS + 3; i++) {
		snprintf(vals[i], sizeof(vals[i]), "fd=%d,set=%d", 10 + i, i);
		w[k++] = "-add-fd";
		w[k++] = vals[i];
	}
	w[k] = NULL;
	rewrite_words(f, w);
	assert_int_equal(f->plan->refusals.n, QU_MAX_REFUSALS);
	assert_int_equal(f->plan->refusals.more, 3);
	assert_int_equal(qu_refusals_count(&f->plan->refusals), QU_MAX_REFUSALS + 3);
	char *all = qu_refusals_join(&f->plan->refusals, "; ");
	assert_non_null(all);
	assert_non_null(strstr(all, "-add-fd fd=10,set=0: "));
	assert_non_null(strstr(all, "; (3 more)"));
	assert_null(strstr(all, "set=16"));
	free(all);
}

/* A reason already held is not told twice; the plan's own reasons come before the
 * rewriter's and stay. */
static void refusals_added_before_rewrite_stay(void **state)
{
	struct fix *f = FIX(state);
	qu_refusals_add(&f->plan->refusals, "the VM is not running (run state '%s')", "paused");
	qu_refusals_add(&f->plan->refusals, "the VM is not running (run state '%s')", "paused");
	const char *w[] = { "qemu", "-add-fd", "fd=10,set=2", NULL };
	rewrite_words(f, w);
	assert_int_equal(f->plan->refusals.n, 2);
	assert_string_equal(f->plan->refusals.why[0], "the VM is not running (run state 'paused')");
	assert_non_null(strstr(f->plan->refusals.why[1], "-add-fd"));
	char *all = qu_refusals_join(&f->plan->refusals, "; ");
	assert_non_null(all);
	assert_non_null(strstr(all, "'paused'); -add-fd fd=10,set=2: "));
	free(all);
}

static void no_refusal_for_ordinary_options(void **state)
{
	const char *w[] = { "qemu", "-netdev", "user,id=n0,hostfwd=tcp::2222-:22", "-device",
			    "virtio-net-pci,netdev=n0", "-drive", "file=/img,if=virtio", "-chardev",
			    "file,id=f,path=/tmp/f", NULL };
	rewrite_words(FIX(state), w);
	assert_not_refused(FIX(state)->plan);
}

/* QEMU's devices now (qom-list /machine/peripheral), as inspect reads them. */
static void peripherals(struct qu_vm *vm, const char *const *ids)
{
	vm->peripherals_known = 1;
	vm->nperipherals = 0;
	for (; *ids; ids++)
		snprintf(vm->peripherals[vm->nperipherals++], QU_MAX_DEVICE_ID, "%s", *ids);
}

/* A device the guest unplugged leaves the new command line (in either form); one added by
 * device_add is refused by name; devices without an id are not judged. */
static void hotplug_judged(void **state)
{
	struct fix *f = FIX(state);
	peripherals(f->vm, (const char *const[]){ "rp0", "hot0", "bal0", NULL });
	const char *w[] = { "qemu", "-device", "pcie-root-port,id=rp0,chassis=1", "-device",
			    "virtio-rng-pci,id=rng0,bus=rp0", "-device", "{\"driver\":\"virtio-rng-pci\",\"id\":\"rng1\"}",
			    "-device", "{\"driver\":\"virtio-balloon-pci\",\"id\":\"bal0\"}", "-device", "virtio-serial-pci",
			    NULL };
	rewrite_words(f, w);
	assert_int_equal(count_opt(&f->plan->argv, "device"), 3);
	assert_int_equal(count_opt_val(&f->plan->argv, "device", "pcie-root-port,id=rp0,chassis=1"), 1);
	assert_int_equal(count_opt_val(&f->plan->argv, "device", "{\"driver\":\"virtio-balloon-pci\",\"id\":\"bal0\"}"), 1);
	assert_int_equal(count_opt_val(&f->plan->argv, "device", "virtio-serial-pci"), 1);
	assert_int_equal(f->plan->refusals.n, 1);
	assert_non_null(strstr(f->plan->refusals.why[0], "device 'hot0' was added while the VM ran (device_add)"));
}

/* Without QEMU's list (a monitor that does not know qom-list) nothing is dropped or refused. */
static void hotplug_unknown_judges_nothing(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-device", "virtio-rng-pci,id=rng0", NULL };
	rewrite_words(f, w);
	assert_int_equal(count_opt(&f->plan->argv, "device"), 1);
	assert_not_refused(f->plan);
}

/* -no-acpi, gone since QEMU 9.0, becomes the machine property every version takes. */
static void no_acpi_becomes_machine_property(void **state)
{
	struct fix *f = FIX(state);
	const char *w[] = { "qemu", "-machine", "q35", "-no-acpi", NULL };
	rewrite_words(f, w);
	assert_int_equal(count_opt(&f->plan->argv, "no-acpi"), 0);
	assert_int_equal(count_opt_val(&f->plan->argv, "machine", "acpi=off"), 1);
	assert_not_refused(f->plan);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(realistic_rewrite),
		T(second_upgrade_is_idempotent),
		T(find_listeners_agrees_with_hand_made),
		T(machine_alias_pinned),
		T(machine_M_pinned),
		T(machine_type_key_pinned),
		T(machine_added_when_absent),
		T(hostile_machine_type_stays_a_value),
		T(hostile_ram_id_stays_a_value),
		T(copied_mem_path_is_dropped),
		T(backend_opts_drops_memfd_props),
		T(backend_opts_drops_hugetlb),
		T(backend_opts_explicit_qom_type),
		T(backend_file_gets_new_mem_path),
		T(backend_json_form),
		T(ram_without_descriptor_not_carried),
		T(legacy_qmp_pretty_listener),
		T(legacy_monitor_listener),
		T(chardev_listener_wait_becomes_off),
		T(fresh_start_options_dropped),
		T(serial_file_becomes_appending_chardev),
		T(file_chardev_append_replaces_off),
		T(targets_after_stdio),
		T(too_many_descriptors),
		T(vhost_tap_gets_fresh_vhost_descriptors),
		T(refuse_netdev_tap),
		T(refuse_netdev_tap_type_key),
		T(refuse_netdev_tap_json),
		T(refuse_nic_tap),
		T(json_tap_fd_string),
		T(json_tap_fd_number),
		T(json_tap_fds_two_queues),
		T(json_tap_vhostfd),
		T(json_tap_vhostfds_two_queues),
		T(tap_spec_vnet_hdr),
		T(json_tap_rewritten_twice),
		T(proxmox_tap_carried),
		T(type_tap_ifname_two_queues),
		T(refuse_json_tap_fd_name),
		T(refuse_tap_too_many_queues),
		T(refuse_tap_stranger_fd),
		T(netdev_fd_list_strict),
		T(refuse_vhost_user),
		T(refuse_add_fd),
		T(add_fd_carried),
		T(add_fd_refused_forms),
		T(add_fd_ambiguous_refused),
		T(refuse_passed_in_fd),
		T(client_socket_chardev_reconnects),
		T(proxmox_words_kept),
		T(vnc_unix_path_found),
		T(refuse_pty_chardev),
		T(refuse_serial_stdio),
		T(refuse_chardev_tcp_server),
		T(legacy_serial_unix_server_carried_or_refused),
		T(every_blocker_is_reported),
		T(one_reason_per_option),
		T(refusals_past_the_limit_are_counted),
		T(refusals_added_before_rewrite_stay),
		T(no_refusal_for_ordinary_options),
		T(hotplug_judged),
		T(hotplug_unknown_judges_nothing),
		T(no_acpi_becomes_machine_property),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
