/* Per-thread cgroups (upgrade/threadcg.c): /proc/PID/task/TID/cgroup lines, which hierarchies
 * a thread must join, the file written for each, and which new thread follows which old one. */
#include "unit.h"
#include "upgrade/threadcg.h"

#include <pthread.h>

static void parses_cgroup_lines(void **state)
{
	(void)state;
	struct qu_cgref r;
	assert_int_equal(qu_threadcg_parse_line("4:cpu,cpuacct:/machine/qemu-1-vm/vcpu0", &r), 0);
	assert_string_equal(r.controllers, "cpu,cpuacct");
	assert_string_equal(r.path, "/machine/qemu-1-vm/vcpu0");
	assert_int_equal(qu_threadcg_parse_line("0::/", &r), 0);
	assert_string_equal(r.controllers, "");
	assert_string_equal(r.path, "/");
	/* A path may hold a colon: only the first two separate fields. */
	assert_int_equal(qu_threadcg_parse_line("1:name=systemd:/a:b", &r), 0);
	assert_string_equal(r.controllers, "name=systemd");
	assert_string_equal(r.path, "/a:b");
	assert_int_equal(qu_threadcg_parse_line("garbage", &r), -EINVAL);
	assert_int_equal(qu_threadcg_parse_line("3:cpu", &r), -EINVAL);
	assert_int_equal(qu_threadcg_parse_line(":cpu:/x", &r), -EINVAL);
	assert_int_equal(qu_threadcg_parse_line("3:cpu:relative", &r), -EINVAL);
}

static void diff_keeps_only_hierarchies_that_differ(void **state)
{
	(void)state;
	const char *proc = "12:pids:/vm\n4:cpu:/vm\n3:cpuset:/vm/emulator\n0::/vm\n";
	const char *thread = "12:pids:/vm\n4:cpu:/vm/vcpu1\n3:cpuset:/vm/vcpu1\n2:memory:/elsewhere\n0::/vm/vcpu1\n";
	struct qu_cgref *refs = calloc(QU_THREADCG_MAX_REFS, sizeof(*refs));
	int n = qu_threadcg_diff(proc, thread, refs, QU_THREADCG_MAX_REFS);
	assert_int_equal(n, 3); /* pids is the same; memory is a hierarchy the process is not in */
	assert_string_equal(refs[0].controllers, "cpu");
	assert_string_equal(refs[0].path, "/vm/vcpu1");
	assert_string_equal(refs[1].controllers, "cpuset");
	assert_string_equal(refs[2].controllers, "");
	assert_string_equal(refs[2].path, "/vm/vcpu1");
	assert_int_equal(qu_threadcg_diff(proc, thread, refs, 1), 1);
	assert_int_equal(qu_threadcg_diff(proc, proc, refs, QU_THREADCG_MAX_REFS), 0);
	free(refs);
}

static void target_files_stay_in_the_mount(void **state)
{
	(void)state;
	struct qu_cgref r = { .controllers = "cpu,cpuacct", .path = "/machine/vcpu0" };
	char out[PATH_MAX];
	assert_int_equal(qu_threadcg_target("/sys/fs/cgroup/cpu", &r, out, sizeof(out)), 0);
	assert_string_equal(out, "/sys/fs/cgroup/cpu/machine/vcpu0/tasks");
	snprintf(r.controllers, sizeof(r.controllers), "%s", "");
	assert_int_equal(qu_threadcg_target("/sys/fs/cgroup/unified", &r, out, sizeof(out)), 0);
	assert_string_equal(out, "/sys/fs/cgroup/unified/machine/vcpu0/cgroup.threads");
	snprintf(r.path, sizeof(r.path), "/");
	assert_int_equal(qu_threadcg_target("/sys/fs/cgroup", &r, out, sizeof(out)), 0);
	assert_string_equal(out, "/sys/fs/cgroup/cgroup.threads");
	const char *bad[] = { "/machine/../../../etc", "/..", "/a/./b", "relative", "/a\nb", "/a\x7f" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(r.path, sizeof(r.path), "%s", bad[i]);
		assert_int_equal(qu_threadcg_target("/sys/fs/cgroup/cpu", &r, out, sizeof(out)), -EINVAL);
	}
	/* Dots inside a name are a name. */
	snprintf(r.path, sizeof(r.path), "/qemu-1-vm.libvirt-qemu/..x/.y");
	assert_int_equal(qu_threadcg_target("/m", &r, out, sizeof(out)), 0);
	snprintf(r.path, sizeof(r.path), "/vcpu0");
	assert_int_equal(qu_threadcg_target("/sys/fs/cgroup/cpu", &r, out, 20), -ENAMETOOLONG);
}

static void matches_names_in_order(void **state)
{
	(void)state;
	const struct qu_thread old[] = {
		{ 100, "qemu-system-x86" }, { 101, "qemu-system-x86" }, { 102, "call_rcu" },
		{ 103, "IO iothread1" }, { 104, "CPU 0/TCG" }, { 105, "CPU 1/TCG" },
		{ 106, "worker" }, { 107, "worker" }, { 108, "gone" },
	};
	const struct qu_thread neu[] = {
		{ 200, "qemu-system-x86" }, { 201, "call_rcu" }, { 202, "qemu-system-x86" },
		{ 203, "IO iothread1" }, { 204, "CPU 0/TCG" }, { 205, "CPU 1/TCG" },
		{ 206, "worker" }, { 207, "worker" }, { 208, "worker" }, { 209, "CPU 2/TCG" },
	};
	int pair[10];
	qu_threadcg_match(old, 9, neu, 10, pair);
	const int want[10] = { 0, 2, -1, 3, 4, 5, 6, 7, -1, -1 };
	for (int i = 0; i < 10; i++) {
		if (pair[i] != want[i])
			note("new thread %d (%s): paired with %d, want %d", i, neu[i].name, pair[i], want[i]);
		assert_int_equal(pair[i], want[i]);
	}
	qu_threadcg_match(old, 0, neu, 2, pair);
	assert_int_equal(pair[0], -1);
	assert_int_equal(pair[1], -1);
}

static void *sleeper(void *arg)
{
	pthread_barrier_t *b = arg;
	pthread_barrier_wait(b); /* named */
	pthread_barrier_wait(b); /* listed */
	return NULL;
}

static void lists_threads_main_first(void **state)
{
	(void)state;
	pthread_t th[2];
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, 3);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_create(&th[i], NULL, sleeper, &b), 0);
		assert_int_equal(pthread_setname_np(th[i], i ? "CPU 1/TCG" : "IO iothread1"), 0);
	}
	pthread_barrier_wait(&b);
	struct qu_thread *t = NULL;
	int n = qu_threadcg_list(getpid(), &t);
	pthread_barrier_wait(&b);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&b);
	assert_int_equal(n, 3);
	assert_int_equal(t[0].tid, getpid());
	assert_true(t[1].tid < t[2].tid);
	assert_string_equal(t[1].name, "IO iothread1");
	assert_string_equal(t[2].name, "CPU 1/TCG");
	free(t);
	assert_int_equal(qu_threadcg_list(-1, &t), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_cgroup_lines),
		cmocka_unit_test(diff_keeps_only_hierarchies_that_differ),
		cmocka_unit_test(target_files_stay_in_the_mount),
		cmocka_unit_test(matches_names_in_order),
		cmocka_unit_test(lists_threads_main_first),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
