/* The smallest program that drives the library: upgrade-one PID [NEW_BINARY]. */
#include <qemu-upgrade.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s PID [NEW_BINARY]\n", argv[0]);
		return 2;
	}
	struct qu_handle *h = qu_new();
	if (!h || qu_set_pid(h, (pid_t)atoi(argv[1])) < 0 ||
	    (argc == 3 && qu_set_new_binary(h, argv[2]) < 0)) {
		fprintf(stderr, "%s\n", qu_get_error());
		qu_free(h);
		return 2;
	}
	int r = qu_upgrade(h);
	if (r < 0)
		fprintf(stderr, "upgrade failed: %s\n", qu_get_error());
	if (qu_get_result(h))
		printf("%s\n", qu_get_report_json(h));
	qu_free(h);
	return r < 0 ? 1 : 0;
}
