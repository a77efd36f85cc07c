/* Compiled twice: into the library without QU_TEST_HOOKS (the hooks read nothing), and as
 * testhooks-on.o with it, which the test build links ahead of the library. */
#include "upgrade/testhooks.h"

#include <stdlib.h>

#ifdef QU_TEST_HOOKS
const char *qu_test_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int qu_test_hooks_enabled(void) { return 1; }
#else
const char *qu_test_env(const char *name)
{
	(void)name;
	return NULL;
}

int qu_test_hooks_enabled(void) { return 0; }
#endif
