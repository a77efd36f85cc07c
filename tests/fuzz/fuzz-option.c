/* One option in either of QEMU's forms (qemu-integration/option.c), judged by the rewriter, and
 * query-fdsets' answer (qemu-integration/fdsets.c). Input: a mode byte, then text.
 *  mode even: the text is an option "NAME VALUE" (NAME up to the first space). Both readers
 *    agree (the editor's view is the parser's), an edit written back reads back the same, and
 *    whatever the rewriter leaves unrefused names no VFIO driver and no descriptor by name.
 *  mode odd: the text is query-fdsets' answer. What is believed is in range, printable, and
 *    goes on the new command line as one -add-fd each, parsing back to the same set/opaque. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/fdsets.h"
#include "qemu-integration/option.h"
#include "qemu-integration/rewrite.h"

static void check_option(const char *opt, const char *val)
{
	json_object *view = qu_option_parse(opt, val);
	struct qu_option o;
	int r = qu_option_open(opt, val, &o);
	FUZZ_CHECK((r == 0) == (view != NULL) || r == -ENOMEM);
	if (r == 0) {
		const char *a = qu_option_get(view, "id"), *b = qu_option_str(&o, "id");
		FUZZ_CHECK((!a && !b) || (a && b && !strcmp(a, b)));
		/* An edit written back reads back with the edit. */
		FUZZ_CHECK(qu_option_set(&o, "fd", "7,x=y") == 0);
		qu_option_del(&o, "fds");
		char *text = qu_option_format(&o);
		FUZZ_CHECK(text);
		json_object *again = qu_option_parse(opt, text);
		FUZZ_CHECK(again);
		FUZZ_CHECK(!strcmp(qu_option_get(again, "fd"), "7,x=y") && !qu_option_get(again, "fds"));
		json_object_put(again);
		free(text);
	}
	qu_option_close(&o);

	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_rewrite *rw = calloc(1, sizeof(*rw));
	FUZZ_CHECK(vm && rw);
	snprintf(vm->machine, sizeof(vm->machine), "pc-q35-7.2");
	snprintf(rw->target.path, sizeof(rw->target.path), "/usr/bin/qemu-system-x86_64");
	if (qu_argv_from_array(3, (char *const[]){ "qemu", (char *)opt - 1, (char *)val }, &vm->argv) == 0 &&
	    qu_rewrite(vm, rw) == 0 && !rw->refusals.n && view) {
		const char *drv = qu_option_get(view, "driver");
		FUZZ_CHECK(strcmp(opt, "device") || !drv || strncmp(drv, "vfio", 4));
		static const char *const keys[] = { "fd", "fds", "vhostfd", "vhostfds", NULL };
		for (const char *const *k = keys; *k; k++)
			FUZZ_CHECK(strcmp(opt, "device") || !qu_option_get(view, *k));
	}
	json_object_put(view);
	qu_argv_free(&rw->argv);
	qu_argv_free(&vm->argv);
	free(rw);
	free(vm);
}

static void check_fdsets(const char *text)
{
	json_object *answer = json_tokener_parse(text);
	struct qu_vm *vm = calloc(1, sizeof(*vm));
	struct qu_rewrite *rw = calloc(1, sizeof(*rw));
	FUZZ_CHECK(vm && rw);
	qu_fdsets_read(answer, vm);
	json_object_put(answer);
	FUZZ_CHECK(vm->nfdset_fds <= QU_MAX_FDSET_FDS);
	for (size_t i = 0; i < vm->nfdset_fds; i++) {
		const struct qu_fdset_fd *e = &vm->fdset_fds[i];
		FUZZ_CHECK(e->set >= 0 && e->set <= QU_MAX_FDSET_ID && e->old_fd >= 0 && e->old_fd < (1 << 20));
		for (const char *c = e->opaque; *c; c++)
			FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
	}
	snprintf(vm->machine, sizeof(vm->machine), "pc-q35-7.2");
	snprintf(rw->target.path, sizeof(rw->target.path), "/usr/bin/qemu-system-x86_64");
	FUZZ_CHECK(qu_argv_from_array(1, (char *const[]){ "qemu" }, &vm->argv) == 0);
	if (qu_rewrite(vm, rw) == 0 && !rw->refusals.n) {
		/* One -add-fd per member, each reading back as its set and opaque. */
		size_t n = 0;
		for (long i = -1; (i = qu_argv_find(&rw->argv, "add-fd", (size_t)(i + 1))) >= 0; n++) {
			struct qu_opts o;
			FUZZ_CHECK(n < vm->nfdset_fds && qu_opts_parse(rw->argv.a[i].val, NULL, &o) == 0);
			const struct qu_fdset_fd *e = &vm->fdset_fds[n];
			FUZZ_CHECK(qu_opts_get(&o, "set") && atoi(qu_opts_get(&o, "set")) == e->set);
			FUZZ_CHECK(!e->has_opaque == !qu_opts_get(&o, "opaque"));
			FUZZ_CHECK(!e->has_opaque || !strcmp(qu_opts_get(&o, "opaque"), e->opaque));
			FUZZ_CHECK(o.n == 2u + (unsigned)e->has_opaque);
			qu_opts_free(&o);
		}
		FUZZ_CHECK(n == vm->nfdset_fds);
	}
	qu_argv_free(&rw->argv);
	qu_argv_free(&vm->argv);
	free(rw);
	free(vm);
}

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_strdup(data + 1, size - 1);
	if (data[0] & 1) {
		check_fdsets(text);
	} else {
		/* "-" then the name, so that opt - 1 is the option as written on a command line. */
		char *line = malloc(strlen(text) + 2);
		FUZZ_CHECK(line);
		line[0] = '-';
		strcpy(line + 1, text);
		char *sp = strchr(line, ' ');
		if (sp && sp > line + 1) {
			*sp = '\0';
			check_option(line + 1, sp + 1);
		}
		free(line);
	}
	free(text);
	return 0;
}
