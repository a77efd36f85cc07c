/* Test hooks: environment variables that steer the tool into states a test needs (a fault at
 * a numbered point, another state directory or configuration file, a gentler retirement).
 * Only the build made for the tests honours them (`make check` links qemu-upgrade-test with
 * testhooks-on.o); the installed tool, which runs as root from the package hook, reads none
 * of them: an environment is not a trusted channel (docs/security.md). */
#ifndef QU_TESTHOOKS_H
#define QU_TESTHOOKS_H

/* The variable's value in a build for tests, NULL in every other build (and when unset). */
const char *qu_test_env(const char *name);
/* 1 in a build for tests. */
int qu_test_hooks_enabled(void);

#endif
