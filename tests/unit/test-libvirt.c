/* upgrade/libvirt.c: a libvirt domain's name from its command line, its status file's PID,
 * and the one-attribute rewrite of that file. */
#include "unit.h"
#include "qemu-integration/argv.h"
#include "upgrade/libvirt.h"

/* The head of a status file as libvirt 9.0 writes it (its own words around our numbers). */
static const char status[] =
	"<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
	"OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
	"  virsh edit vm1\nor other application using the libvirt API.\n-->\n\n"
	"<domstatus state='running' reason='booted' pid='30792'>\n"
	"  <monitor path='/var/lib/libvirt/qemu/domain-1-vm1/monitor.sock' type='unix'/>\n"
	"  <vcpus>\n    <vcpu id='0' pid='30799'/>\n  </vcpus>\n"
	"  <domain type='qemu' id='1'>\n    <name>vm1</name>\n  </domain>\n</domstatus>\n";

static int name_of(const char *const *args, int n, char *name, size_t len)
{
	struct qu_argv v;
	assert_int_equal(qu_argv_from_array(n, (char *const *)args, &v), 0);
	int r = qu_libvirt_name_from_argv(&v, name, len);
	qu_argv_free(&v);
	return r;
}

static void names(void **state)
{
	(void)state;
	char name[QU_LIBVIRT_NAME_MAX + 1];
	const char *a[] = { "qemu", "-name", "guest=vm1,debug-threads=on", "-S" };
	assert_int_equal(name_of(a, 4, name, sizeof(name)), 0);
	assert_string_equal(name, "vm1");
	const char *b[] = { "qemu", "-name", "guest=a,,b,debug-threads=on" }; /* QemuOpts' ",," */
	assert_int_equal(name_of(b, 3, name, sizeof(name)), 0);
	assert_string_equal(name, "a,b");
	const char *c[] = { "qemu", "-name", "plain" };
	assert_int_equal(name_of(c, 3, name, sizeof(name)), 0);
	assert_string_equal(name, "plain");
	const char *d[] = { "qemu", "-m", "256" };
	assert_int_equal(name_of(d, 3, name, sizeof(name)), -ENOENT);
}

static void hostile_names(void **state)
{
	(void)state;
	char name[QU_LIBVIRT_NAME_MAX + 1], longname[300];
	const char *bad[] = { "guest=../../etc/x", "guest=..", "guest=.", "guest=a/b", "guest=", "guest=a\nb" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *a[] = { "qemu", "-name", bad[i] };
		assert_int_equal(name_of(a, 3, name, sizeof(name)), -EINVAL);
	}
	memset(longname, 'x', sizeof(longname));
	memcpy(longname, "guest=", 6);
	longname[sizeof(longname) - 1] = '\0';
	const char *a[] = { "qemu", "-name", longname };
	assert_int_equal(name_of(a, 3, name, sizeof(name)), -EINVAL);
	assert_int_equal(qu_libvirt_name_ok("a..b"), 1); /* a name, not a walk up */
}

static void cgroups(void **state)
{
	(void)state;
	assert_true(qu_libvirt_cgroup_is("0::/machine/qemu-1-vm1.libvirt-qemu/emulator\n"));
	assert_true(qu_libvirt_cgroup_is("0::/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator\n"));
	assert_false(qu_libvirt_cgroup_is("0::/user.slice/user-0.slice/session-3.scope\n"));
	assert_false(qu_libvirt_cgroup_is(NULL));
}

static void parse(void **state)
{
	(void)state;
	pid_t pid = 0;
	char mon[256];
	assert_int_equal(qu_libvirt_status_parse(status, strlen(status), &pid, mon, sizeof(mon)), 0);
	assert_int_equal(pid, 30792);
	assert_string_equal(mon, "/var/lib/libvirt/qemu/domain-1-vm1/monitor.sock");
	const char *bad[] = {
		"<domain pid='1'/>",                         /* not a status file */
		"<domstatus state='running'/>",               /* no pid */
		"<domstatus pid='-4'/>", "<domstatus pid='12x'/>", "<domstatus pid='99999999999'/>",
		"<domstatus pid='1'>",                        /* not well-formed */
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(qu_libvirt_status_parse(bad[i], strlen(bad[i]), &pid, NULL, 0), -EBADMSG);
}

/* What a dry run reads from the status file while the daemon holds the monitor. */
static void facts(void **state)
{
	(void)state;
	struct qu_libvirt lv;
	assert_int_equal(qu_libvirt_status_facts(status, strlen(status), &lv), 0);
	assert_string_equal(lv.state, "running");
	assert_string_equal(lv.async_job, "");
	assert_int_equal(lv.blockjobs, -1); /* not said */
	const char busy[] = "<domstatus state='paused' reason='user' pid='7'><job type='none' async='migration out' "
			    "asyncStarted='1'/><blockjobs active='no'><blockjob name='vda' type='copy' state='ready'/>"
			    "</blockjobs></domstatus>";
	assert_int_equal(qu_libvirt_status_facts(busy, strlen(busy), &lv), 0);
	assert_string_equal(lv.state, "paused");
	assert_string_equal(lv.async_job, "migration out");
	assert_int_equal(lv.blockjobs, 1); /* a job listed counts, whatever active= says */
	const char idle[] = "<domstatus state='running' pid='7'><job type='none' async='none'/><blockjobs active='no'/></domstatus>";
	assert_int_equal(qu_libvirt_status_facts(idle, strlen(idle), &lv), 0);
	assert_string_equal(lv.async_job, "");
	assert_int_equal(lv.blockjobs, 0);
	/* A value no libvirt writes is kept printable and bounded, never trusted as more. */
	const char odd[] = "<domstatus state='run&#10;ning' pid='7'><job async='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'/></domstatus>";
	assert_int_equal(qu_libvirt_status_facts(odd, strlen(odd), &lv), 0);
	assert_null(strchr(lv.state, '\n'));
	assert_true(strlen(lv.async_job) < sizeof(lv.async_job));
	assert_int_equal(qu_libvirt_status_facts("<domain/>", 9, &lv), -EBADMSG);
	assert_string_equal(lv.state, "");
}

static void rewrite(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(qu_libvirt_status_set_pid(status, strlen(status), 30792, 4242, &out, &len), 0);
	assert_int_equal(len, strlen(out));
	/* Exactly the root's attribute changes: the vCPU's pid= and every other byte stay. */
	const char *at = strstr(status, "pid='30792'");
	size_t before = (size_t)(at - status);
	assert_memory_equal(out, status, before);
	assert_memory_equal(out + before, "pid='4242'", 10);
	assert_string_equal(out + before + 10, at + 11);
	pid_t pid;
	assert_int_equal(qu_libvirt_status_parse(out, len, &pid, NULL, 0), 0);
	assert_int_equal(pid, 4242);
	free(out);
	/* Double quotes, as another writer may use. */
	const char dq[] = "<?xml version=\"1.0\"?>\n<domstatus state=\"running\" pid=\"7\"><x pid=\"7\"/></domstatus>";
	assert_int_equal(qu_libvirt_status_set_pid(dq, strlen(dq), 7, 70, &out, &len), 0);
	assert_string_equal(out, "<?xml version=\"1.0\"?>\n<domstatus state=\"running\" pid=\"70\"><x pid=\"7\"/></domstatus>");
	free(out);
}

static void rewrite_refuses(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len;
	/* Another PID recorded: nothing to rewrite. */
	assert_int_equal(qu_libvirt_status_set_pid(status, strlen(status), 1234, 4242, &out, &len), -EBADMSG);
	/* A comment that looks like the root element does not fool it. */
	const char tricky[] = "<!-- <domstatus pid='5'> -->\n<domstatus pid='5' state='running'/>";
	assert_int_equal(qu_libvirt_status_set_pid(tricky, strlen(tricky), 5, 6, &out, &len), 0);
	assert_string_equal(out, "<!-- <domstatus pid='5'> -->\n<domstatus pid='6' state='running'/>");
	free(out);
	/* A processing instruction and another attribute's value that hold the same words: only
	 * the root's own attribute changes (found by fuzz-libvirt: a hand-made scan took the PI's). */
	const char pi[] = "<?x <domstatus pid='5'> ?><domstatus state=\" pid='5'\" pid='5'/>";
	assert_int_equal(qu_libvirt_status_set_pid(pi, strlen(pi), 5, 6, &out, &len), 0);
	assert_string_equal(out, "<?x <domstatus pid='5'> ?><domstatus state=\" pid='5'\" pid='6'/>");
	free(out);
	/* A value written with a character reference: not rewritten by hand, refused. */
	const char ref[] = "<domstatus pid='&#53;'/>";
	assert_int_equal(qu_libvirt_status_set_pid(ref, strlen(ref), 5, 6, &out, &len), -EBADMSG);
	/* A child's pid= that matches while the root's does not. */
	const char child[] = "<domstatus pid='5'><vcpu pid='9'/></domstatus>";
	out = NULL;
	assert_int_equal(qu_libvirt_status_set_pid(child, strlen(child), 9, 6, &out, &len), -EBADMSG);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),
		cmocka_unit_test(hostile_names),
		cmocka_unit_test(cgroups),
		cmocka_unit_test(parse),
		cmocka_unit_test(facts),
		cmocka_unit_test(rewrite),
		cmocka_unit_test(rewrite_refuses),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
