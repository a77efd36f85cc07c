/* The rewriter on options QEMU takes as JSON (-object, -device, -netdev, -blockdev, as libvirt
 * writes them): each refusal the key=value path makes is made on the same option in JSON, and
 * descriptor sets added at run time (QMP add-fd, on no command line) get an -add-fd each. */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/monitors.h"
#include "qemu-integration/opts.h"
#include "qemu-integration/vm.h"
#include "upgrade/inspect.h"
#include "upgrade/plan.h"

#define NEW_QEMU "/opt/qemu-new/bin/qemu-system-x86_64"

struct fix {
	struct qu_vm *vm;
	struct qu_plan *plan;
};
#define FIX(state) ((struct fix *)*(state))

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	if (!f || !(f->vm = calloc(1, sizeof(*f->vm))) || !(f->plan = calloc(1, sizeof(*f->plan)))) {
		if (f)
			free(f->vm);
		free(f);
		return -1;
	}
	snprintf(f->vm->machine, sizeof(f->vm->machine), "pc-q35-7.2");
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

static void rewrite_words(struct fix *f, const char *const *words)
{
	int n = 0;
	while (words[n])
		n++;
	assert_int_equal(qu_argv_from_array(n, (char *const *)words, &f->vm->argv), 0);
	int r = qu_rewrite(f->vm, &f->plan->rw);
	if (r < 0)
		fail_msg("qu_rewrite: %d %s", r, qu_err_msg());
}

static const char *refusal_with(const struct qu_plan *p, const char *needle)
{
	for (unsigned i = 0; i < p->refusals.n; i++)
		if (strstr(p->refusals.why[i], needle))
			return p->refusals.why[i];
	return NULL;
}

/* The command line is refused once, for a reason that mentions every needle. */
static void refused_for(void **state, const char *const *words, const char *const *needles)
{
	struct fix *f = FIX(state);
	rewrite_words(f, words);
	if (f->plan->refusals.n != 1)
		fail_msg("wanted one refusal mentioning '%s', got %u: %s", needles[0], f->plan->refusals.n,
			 f->plan->refusals.n ? f->plan->refusals.why[0] : "");
	for (; *needles; needles++)
		if (!refusal_with(f->plan, *needles))
			fail_msg("the refusal does not mention '%s': %s", *needles, f->plan->refusals.why[0]);
}

static void not_refused(void **state, const char *const *words)
{
	struct fix *f = FIX(state);
	rewrite_words(f, words);
	if (qu_refusals_count(&f->plan->refusals))
		fail_msg("unexpected refusal: %s", f->plan->refusals.why[0]);
}

static size_t count_opt_val(const struct qu_argv *v, const char *opt, const char *val)
{
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		n += v->a[i].opt && !strcmp(v->a[i].opt, opt) && v->a[i].val && !strcmp(v->a[i].val, val);
	return n;
}

/* ---- VFIO, judged by the parsed driver ---- */

static void json_vfio_with_space_refused(void **state)
{
	const char *w[] = { "qemu", "-device", "{\"driver\": \"vfio-pci\", \"host\": \"0000:01:00.0\", \"id\": \"hostdev0\"}", NULL };
	refused_for(state, w, (const char *const[]){ "VFIO", "hostdev0", NULL });
}

static void keyed_vfio_refused(void **state)
{
	/* driver= given with its key: the text does not start with "vfio". */
	const char *w[] = { "qemu", "-device", "driver=vfio-pci,host=0000:01:00.0,id=hostdev0", NULL };
	refused_for(state, w, (const char *const[]){ "VFIO", NULL });
}

static void vfio_in_another_value_not_refused(void **state)
{
	/* "vfio" after a key that ends in driver, and in a serial: no VFIO device. */
	const char *w[] = { "qemu", "-device",
			    "{\"driver\":\"virtio-blk-pci\",\"id\":\"disk0\",\"x-driver\":\"vfio-pci\",\"serial\":\"driver\\\":\\\"vfio\"}",
			    "-device", "virtio-blk-pci,id=d1,serial=vfio-pci", NULL };
	not_refused(state, w);
}

static void implied_vfio_still_refused(void **state)
{
	const char *w[] = { "qemu", "-device", "vfio-pci,host=0000:01:00.0", NULL };
	refused_for(state, w, (const char *const[]){ "VFIO", NULL });
}

/* ---- descriptors ---- */

static void json_device_vhostfd_string_refused(void **state)
{
	const char *w[] = { "qemu", "-device", "{\"driver\":\"vhost-vsock-pci\",\"id\":\"vsock0\",\"guest-cid\":3,\"vhostfd\":\"25\"}", NULL };
	refused_for(state, w, (const char *const[]){ "passed-in descriptors (vhostfd=)", "vsock0", NULL });
}

static void json_device_vhostfd_number_refused(void **state)
{
	const char *w[] = { "qemu", "-device", "{\"driver\":\"vhost-scsi-pci\",\"id\":\"scsi0\",\"vhostfd\":25}", NULL };
	refused_for(state, w, (const char *const[]){ "passed-in descriptors (vhostfd=)", NULL });
}

static void json_object_fd_refused(void **state)
{
	const char *w[] = { "qemu", "-object", "{\"qom-type\":\"iommufd\",\"id\":\"iommufd0\",\"fd\":\"30\"}", NULL };
	refused_for(state, w, (const char *const[]){ "passed-in descriptors (fd=)", "iommufd0", NULL });
}

static void json_device_fd_name_refused(void **state)
{
	/* fd=NAME: a descriptor the old QEMU's monitor got with getfd; no number to carry. */
	const char *w[] = { "qemu", "-device", "{\"driver\":\"vhost-vsock-pci\",\"id\":\"v\",\"vhostfd\":\"vsockfd\"}", NULL };
	refused_for(state, w, (const char *const[]){ "vhostfd=vsockfd", "getfd", NULL });
}

static void json_netdev_fds_name_refused(void **state)
{
	const char *w[] = { "qemu", "-netdev", "{\"type\":\"socket\",\"id\":\"n0\",\"fd\":\"netfd0\"}", NULL };
	struct fix *f = FIX(state);
	rewrite_words(f, w);
	/* One reason per option: the first found, the socket type. */
	assert_int_equal(f->plan->refusals.n, 1);
	assert_non_null(refusal_with(f->plan, "socket networking cannot be carried"));
}

static void kv_chardev_fd_name_refused(void **state)
{
	/* A listener passed by name (server=on): no listener inspect can find; refused by name. */
	const char *w[] = { "qemu", "-chardev", "socket,id=charmonitor,fd=monfd,server=on,wait=off", NULL };
	refused_for(state, w, (const char *const[]){ "fd=monfd", "getfd", NULL });
}

static void fd_name_is_no_listener(void **state)
{
	/* inspect does not take a name for descriptor 0 (atoi would): no listener is found, so
	 * the rewriter sees the name and refuses it, as above. */
	struct qu_vm *vm = FIX(state)->vm;
	const char *w[] = { "qemu", "-chardev", "socket,id=charmonitor,fd=monfd,server=on,wait=off", "-mon",
			    "chardev=charmonitor,mode=control", "-chardev", "socket,id=c2,fd=,server=on", NULL };
	assert_int_equal(qu_argv_from_array(7, (char *const *)w, &vm->argv), 0);
	vm->pid = getpid();
	assert_int_equal(qu_find_listeners(vm), 0);
	assert_int_equal(vm->nlis, 0);
}

static void kv_chardev_listener_fd_not_found_refused(void **state)
{
	/* server=on with a number this plan does not carry (inspect would have found it). */
	const char *w[] = { "qemu", "-chardev", "socket,id=m,fd=5,server=on,wait=off", NULL };
	refused_for(state, w, (const char *const[]){ "passed-in descriptors (fd=)", NULL });
}

/* ---- networking and character devices ---- */

static void json_netdev_stream_refused(void **state)
{
	const char *w[] = { "qemu", "-netdev",
			    "{\"type\":\"stream\",\"id\":\"n0\",\"server\":true,\"addr\":{\"type\":\"unix\",\"path\":\"/run/n.sock\"}}", NULL };
	refused_for(state, w, (const char *const[]){ "stream networking cannot be carried", NULL });
}

static void json_netdev_vhost_user_refused(void **state)
{
	const char *w[] = { "qemu", "-netdev", "{\"type\":\"vhost-user\",\"id\":\"n0\",\"chardev\":\"c0\"}", NULL };
	refused_for(state, w, (const char *const[]){ "vhost-user networking", NULL });
}

static void chardev_brace_is_key_value(void **state)
{
	/* QEMU reads -chardev as key=value even when it starts with '{': the later backend= wins,
	 * and a pty is what this is (a JSON reading would see a null backend). */
	const char *w[] = { "qemu", "-chardev", "{\"backend\":\"null\"},backend=pty,id=c0", NULL };
	refused_for(state, w, (const char *const[]){ "pty", NULL });
}

static void chardev_tcp_server_refused(void **state)
{
	const char *w[] = { "qemu", "-chardev", "socket,id=c,host=0.0.0.0,port=4444,server=on,wait=off", NULL };
	refused_for(state, w, (const char *const[]){ "TCP socket servers", NULL });
}

/* ---- JSON that cannot be read ---- */

static void json_cut_short_refused(void **state)
{
	const char *w[] = { "qemu", "-device", "{\"driver\":\"virtio-rng-pci\"", NULL };
	refused_for(state, w, (const char *const[]){ "cannot be read", NULL });
}

static void json_trailing_text_refused(void **state)
{
	/* json-c would stop at the object's end; QEMU would not start with this. */
	const char *w[] = { "qemu", "-object", "{\"qom-type\":\"iothread\",\"id\":\"io\"},fd=5", NULL };
	refused_for(state, w, (const char *const[]){ "cannot be read", NULL });
}

static void json_trailing_space_read(void **state)
{
	/* White space after the object is no text (QEMU's JSON lexer skips it too). */
	refused_for(state, (const char *const[]){ "qemu", "-device", "{\"driver\":\"vfio-pci\"} \n", NULL },
		    (const char *const[]){ "VFIO", NULL });
}

/* ---- what libvirt writes passes untouched ---- */

static void libvirt_json_options_pass(void **state)
{
	const char *blk = "{\"driver\":\"file\",\"filename\":\"/var/lib/libvirt/images/vm.img\",\"node-name\":"
			  "\"libvirt-1-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}";
	const char *dev = "{\"driver\":\"virtio-blk-pci\",\"bus\":\"pci.4\",\"addr\":\"0x0\",\"drive\":"
			  "\"libvirt-1-format\",\"id\":\"virtio-disk0\",\"bootindex\":1}";
	const char *rng = "{\"qom-type\":\"rng-random\",\"id\":\"objrng0\",\"filename\":\"/dev/urandom\"}";
	const char *w[] = { "qemu", "-blockdev", blk, "-device", dev, "-object", rng, "-object",
			    "{\"qom-type\":\"iothread\",\"id\":\"iothread1\"}", "-device",
			    "{\"driver\":\"isa-serial\",\"chardev\":\"charserial0\",\"id\":\"serial0\",\"index\":0}",
			    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", NULL };
	not_refused(state, w);
	const struct qu_argv *a = &FIX(state)->plan->argv;
	assert_int_equal(count_opt_val(a, "blockdev", blk), 1);
	assert_int_equal(count_opt_val(a, "device", dev), 1);
	assert_int_equal(count_opt_val(a, "object", rng), 1);
	/* The sandbox is kept as it was: the new QEMU installs the same filter itself. */
	assert_int_equal(count_opt_val(a, "sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"), 1);
}

/* ---- descriptor sets added at run time ---- */

static void add_member(struct qu_vm *vm, int set, int old_fd, const char *opaque)
{
	struct qu_fdset_fd *e = &vm->fdset_fds[vm->nfdset_fds++];
	*e = (struct qu_fdset_fd){ .set = set, .old_fd = old_fd, .has_opaque = opaque != NULL };
	if (opaque)
		snprintf(e->opaque, sizeof(e->opaque), "%s", opaque);
}

/* The target the plan gives old_fd as a set's member; -1 when it does not carry it. */
static int member_target(const struct qu_plan *p, int old_fd)
{
	for (size_t i = 0; i < p->nfds; i++)
		if (p->fds[i].old_fd == old_fd && p->fds[i].kind == QU_FD_FDSET)
			return p->fds[i].target;
	return -1;
}

static void runtime_member_gets_add_fd(void **state)
{
	struct fix *f = FIX(state);
	add_member(f->vm, 3, 40, "libvirt-3-storage");
	not_refused(state, (const char *const[]){ "qemu", "-m", "1G", NULL });
	int t = member_target(f->plan, 40);
	assert_true(t >= QU_FD_FIRST_CARRIED);
	char want[96];
	snprintf(want, sizeof(want), "set=3,fd=%d,opaque=libvirt-3-storage", t);
	assert_int_equal(count_opt_val(&f->plan->argv, "add-fd", want), 1);
	assert_int_equal(f->plan->nfds, 1);
}

static void runtime_member_without_opaque(void **state)
{
	struct fix *f = FIX(state);
	add_member(f->vm, 0, 41, NULL);
	not_refused(state, (const char *const[]){ "qemu", NULL });
	char want[64];
	snprintf(want, sizeof(want), "set=0,fd=%d", member_target(f->plan, 41));
	assert_int_equal(count_opt_val(&f->plan->argv, "add-fd", want), 1);
}

static void runtime_opaque_stays_one_value(void **state)
{
	/* An opaque is the VM's (QMP add-fd takes any string): a comma in it cannot add an option. */
	struct fix *f = FIX(state);
	add_member(f->vm, 2, 42, "a,fd=0,set=9");
	not_refused(state, (const char *const[]){ "qemu", NULL });
	char want[96];
	snprintf(want, sizeof(want), "set=2,fd=%d,opaque=a,,fd=0,,set=9", member_target(f->plan, 42));
	assert_int_equal(count_opt_val(&f->plan->argv, "add-fd", want), 1);
	struct qu_opts o;
	assert_int_equal(qu_opts_parse(want, NULL, &o), 0);
	assert_string_equal(qu_opts_get(&o, "set"), "2");
	assert_string_equal(qu_opts_get(&o, "opaque"), "a,fd=0,set=9");
	qu_opts_free(&o);
}

static void runtime_and_command_line_members(void **state)
{
	/* libvirt 9.0: a serial log passed with -add-fd at the start, a disk hot-plugged later. */
	struct fix *f = FIX(state);
	add_member(f->vm, 0, 27, "serial0-log");
	add_member(f->vm, 1, 31, "libvirt-2-storage");
	add_member(f->vm, 1, 32, "libvirt-2-storage-ro");
	not_refused(state, (const char *const[]){ "qemu", "-add-fd", "set=0,fd=23,opaque=serial0-log", "-chardev",
						 "file,id=charserial0,path=/dev/fdset/0,append=on", NULL });
	assert_int_equal(f->plan->nfds, 3);
	const struct qu_argv *a = &f->plan->argv;
	char want[3][96];
	snprintf(want[0], sizeof(want[0]), "set=0,fd=%d,opaque=serial0-log", member_target(f->plan, 27));
	snprintf(want[1], sizeof(want[1]), "set=1,fd=%d,opaque=libvirt-2-storage", member_target(f->plan, 31));
	snprintf(want[2], sizeof(want[2]), "set=1,fd=%d,opaque=libvirt-2-storage-ro", member_target(f->plan, 32));
	for (int k = 0; k < 3; k++)
		if (count_opt_val(a, "add-fd", want[k]) != 1)
			fail_msg("no -add-fd %s", want[k]);
}

static void runtime_members_not_added_when_an_option_is_refused(void **state)
{
	/* The -add-fd names no member: the unclaimed one may be its; the plan is refused and
	 * carries nothing. */
	struct fix *f = FIX(state);
	add_member(f->vm, 0, 27, "x");
	refused_for(state, (const char *const[]){ "qemu", "-add-fd", "set=0,fd=10,opaque=y", NULL },
		    (const char *const[]){ "query-fdsets lists no member", NULL });
	assert_int_equal(f->plan->nfds, 0);
}

static void truncated_fdsets_refused(void **state)
{
	struct fix *f = FIX(state);
	add_member(f->vm, 0, 27, NULL);
	f->vm->fdsets_truncated = 1;
	refused_for(state, (const char *const[]){ "qemu", NULL }, (const char *const[]){ "more than 16 members", "remove-fd", NULL });
	assert_int_equal(f->plan->nfds, 0);
}

static void invalid_fdsets_refused(void **state)
{
	struct fix *f = FIX(state);
	f->vm->fdsets_invalid = 1;
	refused_for(state, (const char *const[]){ "qemu", NULL }, (const char *const[]){ "query-fdsets", "no QEMU has", NULL });
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(json_vfio_with_space_refused),
		T(keyed_vfio_refused),
		T(vfio_in_another_value_not_refused),
		T(implied_vfio_still_refused),
		T(json_device_vhostfd_string_refused),
		T(json_device_vhostfd_number_refused),
		T(json_object_fd_refused),
		T(json_device_fd_name_refused),
		T(json_netdev_fds_name_refused),
		T(kv_chardev_fd_name_refused),
		T(fd_name_is_no_listener),
		T(kv_chardev_listener_fd_not_found_refused),
		T(json_netdev_stream_refused),
		T(json_netdev_vhost_user_refused),
		T(chardev_brace_is_key_value),
		T(chardev_tcp_server_refused),
		T(json_cut_short_refused),
		T(json_trailing_text_refused),
		T(json_trailing_space_read),
		T(libvirt_json_options_pass),
		T(runtime_member_gets_add_fd),
		T(runtime_member_without_opaque),
		T(runtime_opaque_stays_one_value),
		T(runtime_and_command_line_members),
		T(runtime_members_not_added_when_an_option_is_refused),
		T(truncated_fdsets_refused),
		T(invalid_fdsets_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
