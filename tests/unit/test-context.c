/* The process context (upgrade/context.c): read from a real process, encoded for the
 * CONTEXT record and decoded back, and applied in a child. */
#include "unit.h"
#include "upgrade/context.h"

#include <sys/prctl.h>
#include <sys/wait.h>

static void encode_decode_round_trip(void **state)
{
	(void)state;
	struct qu_context *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	assert_int_equal(qu_context_read(getpid(), a), 0);
	a->uid = 107;
	a->gid = 108;
	a->ngroups = 2;
	a->groups[0] = 10;
	a->groups[1] = 20;
	a->umask = 027;
	a->nice = 5;
	a->oom_score_adj = 300;
	CPU_ZERO(&a->affinity);
	CPU_SET(0, &a->affinity);
	CPU_SET(3, &a->affinity);
	a->rlim[RLIMIT_NOFILE].rlim_cur = 2048;
	a->rlim[RLIMIT_NOFILE].rlim_max = 4096;
	char *text = qu_context_encode(a);
	assert_non_null(text);
	assert_int_equal(qu_context_decode(text, b), 0);
	assert_int_equal(b->uid, 107);
	assert_int_equal(b->gid, 108);
	assert_int_equal(b->ngroups, 2);
	assert_int_equal(b->groups[1], 20);
	assert_int_equal(b->umask, 027);
	assert_int_equal(b->nice, 5);
	assert_int_equal(b->oom_score_adj, 300);
	assert_true(CPU_ISSET(0, &b->affinity) && CPU_ISSET(3, &b->affinity) && CPU_COUNT(&b->affinity) == 2);
	assert_int_equal(b->rlim[RLIMIT_NOFILE].rlim_cur, 2048);
	assert_int_equal(b->rlim[RLIMIT_NOFILE].rlim_max, 4096);
	assert_int_equal(b->ncgroups, a->ncgroups);
	for (int i = 0; i < a->ncgroups; i++)
		assert_string_equal(b->cgroup_procs[i], a->cgroup_procs[i]);
	free(text);
	free(a);
	free(b);
}

static void reads_limits_of_this_process(void **state)
{
	(void)state;
	struct qu_context *c = calloc(1, sizeof(*c));
	struct rlimit want;
	assert_int_equal(qu_context_read(getpid(), c), 0);
	for (int i = 0; i < RLIM_NLIMITS; i++) {
		assert_int_equal(getrlimit((enum __rlimit_resource)i, &want), 0);
		assert_int_equal(c->rlim[i].rlim_cur, want.rlim_cur);
		assert_int_equal(c->rlim[i].rlim_max, want.rlim_max);
	}
	assert_int_equal(c->uid, geteuid());
	assert_true(c->ncgroups > 0);
	free(c);
}

/* A child applies a context and reports what it became; this process is untouched. */
static void apply_in_child(void **state)
{
	(void)state;
	struct qu_context *c = calloc(1, sizeof(*c));
	assert_int_equal(qu_context_read(getpid(), c), 0);
	c->ncgroups = 0; /* joining cgroups is the e2e test's (tests/e2e/context.t) */
	c->nice = 7;
	c->umask = 077;
	c->rlim[RLIMIT_NOFILE].rlim_cur = 512;
	c->oom_score_adj = 321;
	CPU_ZERO(&c->affinity);
	CPU_SET(0, &c->affinity);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char what[200] = "", out[256];
		int r = qu_context_apply(c, what, sizeof(what));
		struct rlimit rl;
		cpu_set_t set;
		getrlimit(RLIMIT_NOFILE, &rl);
		sched_getaffinity(0, sizeof(set), &set);
		errno = 0;
		int n = snprintf(out, sizeof(out), "%d %d %o %llu %d %s", r, getpriority(PRIO_PROCESS, 0),
				 (unsigned)umask(0), (unsigned long long)rl.rlim_cur, CPU_COUNT(&set), what);
		if (write(p[1], out, (size_t)n) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	char buf[256] = "";
	assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
	close(p[0]);
	waitpid(pid, NULL, 0);
	note("child: %s", buf);
	assert_string_equal(buf, "0 7 77 512 1 ");
	free(c);
}

/* The confinement fields: no_new_privs, seccomp, the LSM label, the user namespace's IDs. */
static void confinement_round_trip(void **state)
{
	(void)state;
	struct qu_context *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	a->nnp = 1;
	a->seccomp = 2;
	a->seccomp_filters = 3;
	snprintf(a->lsm, sizeof(a->lsm), "apparmor");
	snprintf(a->label, sizeof(a->label), "libvirt-0f1e2d3c");
	a->userns = 1;
	a->uid = 100000;
	a->ns_uid = 0;
	a->ns_gid = 7;
	char *text = qu_context_encode(a);
	assert_non_null(text);
	assert_int_equal(qu_context_decode(text, b), 0);
	assert_int_equal(b->nnp, 1);
	assert_int_equal(b->seccomp, 2);
	assert_int_equal(b->seccomp_filters, 3);
	assert_string_equal(b->lsm, "apparmor");
	assert_string_equal(b->label, "libvirt-0f1e2d3c");
	assert_int_equal(b->userns, 1);
	assert_int_equal(b->uid, 100000);
	assert_int_equal(b->ns_uid, 0);
	assert_int_equal(b->ns_gid, 7);
	free(text);
	free(a);
	free(b);
}

/* This process's own: no_new_privs and seccomp as /proc says, no user namespace of its own. */
static void reads_confinement_of_a_child(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char x;
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		close(p[1]);
		if (read(p[0], &x, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[0]);
	struct qu_context *c = calloc(1, sizeof(*c));
	/* The child sets no_new_privs before it blocks on the pipe: wait until /proc says so. */
	for (int i = 0; i < 500 && (qu_context_read(pid, c) != 0 || !c->nnp); i++)
		usleep(10000);
	assert_int_equal(c->nnp, 1);
	assert_int_equal(c->userns, 0);
	close(p[1]);
	waitpid(pid, NULL, 0);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(confinement_round_trip),
		cmocka_unit_test(reads_confinement_of_a_child),
		cmocka_unit_test(encode_decode_round_trip),
		cmocka_unit_test(reads_limits_of_this_process),
		cmocka_unit_test(apply_in_child),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
