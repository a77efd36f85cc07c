/* standby's disk parts that need no QEMU: the secondary's disk graph rewritten from the VM's
 * quorum drive (remote/standby/secondary.h), and the agent's check of the tool's request for
 * the active and hidden images (remote/standby/images.h). */
#include "tests/unit/unit.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/disks.h"
#include "remote/standby/images.h"
#include "remote/standby/secondary.h"

static const char *const QUORUM = "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
				  "children.0.file.filename=/vm/a.qcow2,children.0.driver=qcow2";

static void graph_in_place(void **state)
{
	char *const cmd[] = { "q", "-drive", "if=ide,media=cdrom", "-drive", (char *)QUORUM, "-S", NULL };
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(6, cmd, &v), 0);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a,b.qcow2", "qcow2", 40, 41), 0);
	assert_int_equal(v.n, 5);
	assert_string_equal(v.a[0].val, "if=ide,media=cdrom");
	/* The image's comma escaped: no option can come from a path. */
	assert_string_equal(v.a[1].val, "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a,,b.qcow2");
	assert_string_equal(v.a[2].val, "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=colo-disk0,"
					"file.driver=qcow2,file.file.filename=/proc/self/fd/40,file.backing.driver=qcow2,"
					"file.backing.file.filename=/proc/self/fd/41,file.backing.backing=qu-colo-parent");
	/* The quorum after its child, in the place of the VM's (its IDE unit after the CD-ROM's). */
	assert_string_equal(v.a[3].val, "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
					"children.0=qu-colo-childs");
	assert_string_equal(v.a[4].opt, "S");
	qu_argv_free(&v);
}

/* A guest that took over runs on that graph: its secondary gets it anew, the old drives
 * (descriptors of the dead secondary's images) gone, the quorum in its place. */
static void graph_again(void **state)
{
	char *const cmd[] = { "q", "-drive", "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a.qcow2",
			      "-drive", "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=colo-disk0,"
					"file.driver=qcow2,file.file.filename=/proc/self/fd/30,file.backing.driver=qcow2,"
					"file.backing.file.filename=/proc/self/fd/31,file.backing.backing=qu-colo-parent",
			      "-drive", "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
					"children.0=qu-colo-childs",
			      "-S", NULL };
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(8, cmd, &v), 0);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a.qcow2", "qcow2", 40, 41), 0);
	assert_int_equal(v.n, 4);
	assert_string_equal(v.a[0].val, "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a.qcow2");
	assert_string_equal(v.a[1].val, "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=colo-disk0,"
					"file.driver=qcow2,file.file.filename=/proc/self/fd/40,file.backing.driver=qcow2,"
					"file.backing.file.filename=/proc/self/fd/41,file.backing.backing=qu-colo-parent");
	assert_string_equal(v.a[2].val, "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
					"children.0=qu-colo-childs");
	assert_string_equal(v.a[3].opt, "S");
	qu_argv_free(&v);
	/* The disks to copy: the quorum stands for the image, the graph's drives are not disks. */
	static struct qu_disks d = { .n = 3 }; /* large: not on the stack */
	snprintf(d.d[0].device, sizeof(d.d[0].device), "qu-colo-parent");
	snprintf(d.d[1].device, sizeof(d.d[1].device), "qu-colo-childs");
	snprintf(d.d[2].device, sizeof(d.d[2].device), "colo-disk0");
	qu_colo_drop_graph_disks(&d);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.d[0].device, "colo-disk0");
}

/* The way back, for a new QEMU of a guest that took over: the secondary's graph (as the agent
 * made it) becomes the VM's quorum drive again, exactly as qu_colo_secondary_drives found it,
 * the image's comma still escaped; the drives around it untouched. */
static void graph_promoted(void **state)
{
	char *const first[] = { "q", "-drive", "if=ide,media=cdrom", "-drive", (char *)QUORUM, "-S", NULL };
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(6, first, &v), 0);
	assert_int_equal(qu_colo_promote_drives(&v), 0); /* no graph: nothing to do */
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a,b.qcow2", "qcow2", 40, 41), 0);
	assert_int_equal(qu_colo_promote_drives(&v), 1);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.a[0].val, "if=ide,media=cdrom");
	assert_string_equal(v.a[1].val, "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
					"children.0.driver=qcow2,children.0.file.filename=/vm/a,,b.qcow2");
	assert_string_equal(v.a[2].opt, "S");
	qu_argv_free(&v);
	/* The parent's other options go with it; the quorum may come before its parts. */
	char *const odd[] = { "q", "-drive", "if=ide,id=d,driver=quorum,vote-threshold=1,children.0=qu-colo-childs",
			      "-drive", "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=d",
			      "-drive", "if=none,id=qu-colo-parent,driver=raw,file.filename=/vm/b,cache.direct=on,read-only",
			      NULL };
	assert_int_equal(qu_argv_from_array(7, odd, &v), 0);
	assert_int_equal(qu_colo_promote_drives(&v), 1);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.a[0].val, "if=ide,id=d,driver=quorum,vote-threshold=1,children.0.driver=raw,"
					"children.0.file.filename=/vm/b,children.0.cache.direct=on,children.0.read-only=on");
	qu_argv_free(&v);
}

/* A part of the graph alone (the VM owner's command line can hold anything): refused, argv as
 * it was. */
static void graph_promote_refusals(void **state)
{
	char *const parent_only[] = { "q", "-drive", "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a", NULL };
	char *const no_quorum[] = { "q", "-drive", "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a",
				    "-drive", "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=d", NULL };
	char *const not_quorum[] = { "q", "-drive", "if=none,id=qu-colo-parent,driver=qcow2,file.filename=/vm/a",
				     "-drive", "if=none,id=qu-colo-childs,driver=replication,mode=secondary,top-id=d",
				     "-drive", "if=ide,id=d,driver=raw,children.0=qu-colo-childs", NULL };
	struct {
		char *const *cmd;
		int argc;
	} cases[] = { { parent_only, 3 }, { no_quorum, 5 }, { not_quorum, 7 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qu_argv v;
		assert_int_equal(qu_argv_from_array(cases[i].argc, cases[i].cmd, &v), 0);
		size_t n = v.n;
		assert_int_equal(qu_colo_promote_drives(&v), -EINVAL);
		assert_non_null(strstr(qu_err_msg(), "without the rest"));
		assert_int_equal(v.n, n);
		qu_argv_free(&v);
	}
}

static void graph_refusals(void **state)
{
	char *const cmd[] = { "q", "-drive", "if=virtio,id=colo-disk0,file=/vm/a.qcow2", NULL };
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(3, cmd, &v), 0);
	/* Not a quorum; no such drive; ids, formats, paths and numbers QEMU would read otherwise. */
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a.qcow2", "qcow2", 40, 41), -EINVAL);
	assert_int_equal(qu_colo_secondary_drives(&v, "other", "/vm/a.qcow2", "qcow2", 40, 41), -ENOENT);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0,x=y", "/vm/a.qcow2", "qcow2", 40, 41), -EINVAL);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a.qcow2", "qcow2,x", 40, 41), -EINVAL);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "a.qcow2", "qcow2", 40, 41), -EINVAL);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a.qcow2", "qcow2", 40, 40), -EINVAL);
	assert_int_equal(qu_colo_secondary_drives(&v, "colo-disk0", "/vm/a.qcow2", "qcow2", 2, 41), -EINVAL);
	assert_string_equal(v.a[0].val, "if=virtio,id=colo-disk0,file=/vm/a.qcow2");
	qu_argv_free(&v);
}

static void images_asked(void **state)
{
	struct qu_colo_images ci = { 0 };
	assert_int_equal(qu_colo_images_ask(&ci, "op=colo_disk\nactive_fd=40\nhidden_fd=41\nsize=67108864\n"), 0);
	assert_true(qu_colo_images_uses(&ci, 40));
	assert_true(qu_colo_images_uses(&ci, 41));
	assert_false(qu_colo_images_uses(&ci, 3));
	assert_int_equal(ci.size, 67108864ull);
	/* One disk: a second request is refused. */
	assert_int_equal(qu_colo_images_ask(&ci, "active_fd=42\nhidden_fd=43\nsize=1\n"), -EALREADY);
	qu_colo_images_close(&ci);
}

static void images_refused(void **state)
{
	static const char *const bad[] = {
		"active_fd=2\nhidden_fd=41\nsize=1\n",     /* stderr */
		"active_fd=40\nhidden_fd=40\nsize=1\n",    /* the same */
		"active_fd=40\nhidden_fd=259\nsize=1\n",   /* beyond the launcher's */
		"active_fd=40\nhidden_fd=41\nsize=0\n",
		"active_fd=40\nhidden_fd=41\nsize=-5\n",
		"active_fd=40\nhidden_fd=41\nsize=70368744177665\n", /* 64 TiB + 1 */
		"active_fd=40\nsize=1\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct qu_colo_images ci = { 0 };
		assert_int_equal(qu_colo_images_ask(&ci, bad[i]), -EINVAL);
		assert_false(ci.asked);
		assert_false(qu_colo_images_uses(&ci, 40));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(graph_in_place),
		cmocka_unit_test(graph_again),
		cmocka_unit_test(graph_refusals),
		cmocka_unit_test(graph_promoted),
		cmocka_unit_test(graph_promote_refusals),
		cmocka_unit_test(images_asked),
		cmocka_unit_test(images_refused),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
