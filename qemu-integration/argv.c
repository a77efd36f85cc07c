#include "qemu-integration/argv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Options without an argument in qemu-options.hx of QEMU 4.0 to 10.0; every other option
 * takes exactly one. An unknown flag would swallow the next word, so keep this complete. */
static const char *const flag_opts[] = {
	"S", "s", "snapshot", "nodefaults", "no-user-config", "nographic", "daemonize",
	"no-reboot", "no-shutdown", "enable-kvm", "no-hpet", "no-acpi", "win2k-hack",
	"no-fd-bootchk", "full-screen", "usb", "only-migratable", "preconfig", "version", "h",
	"help", "xen-attach", "xen-domid-restrict", "alt-grab", "ctrl-grab", "no-quit", "sdl",
	"curses", "portrait", "semihosting", "enable-fips", "mem-prealloc", "singlestep",
	"enable-sync-profile", "async-teardown", "show-cursor", "rtc-td-hack",
	"no-kvm-pit-reinjection", "no-frame", "perfmap", "jitdump", "nodefconfig", "old-param",
	"no-kvm", "no-kvm-irqchip", "no-kvm-pit", "tb-size-unused",
};

int qu_qemu_opt_is_flag(const char *opt)
{
	for (size_t i = 0; i < sizeof(flag_opts) / sizeof(flag_opts[0]); i++)
		if (!strcmp(opt, flag_opts[i]))
			return 1;
	return 0;
}

void qu_argv_free(struct qu_argv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->a[i].opt);
		free(v->a[i].val);
	}
	free(v->a);
	free(v->prog);
	memset(v, 0, sizeof(*v));
}

static int push(struct qu_argv *v, const char *opt, const char *val)
{
	struct qu_arg *na = realloc(v->a, sizeof(*na) * (v->n + 1));
	if (!na)
		return -ENOMEM;
	v->a = na;
	na[v->n].opt = opt ? strdup(opt) : NULL;
	na[v->n].val = val ? strdup(val) : NULL;
	if ((opt && !na[v->n].opt) || (val && !na[v->n].val)) {
		free(na[v->n].opt);
		free(na[v->n].val);
		return -ENOMEM;
	}
	v->n++;
	return 0;
}

int qu_argv_from_array(int argc, char *const *argv, struct qu_argv *out)
{
	memset(out, 0, sizeof(*out));
	if (argc < 1 || !argv[0][0])
		return -EINVAL;
	out->prog = strdup(argv[0]);
	if (!out->prog)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		int r;
		if (w[0] != '-' || !w[1]) {
			r = push(out, NULL, w);
		} else {
			const char *opt = w + 1 + (w[1] == '-');
			if (qu_qemu_opt_is_flag(opt)) {
				r = push(out, opt, NULL);
			} else if (i + 1 >= argc) {
				qu_argv_free(out);
				return -EINVAL;
			} else {
				r = push(out, opt, argv[++i]);
			}
		}
		if (r < 0) {
			qu_argv_free(out);
			return r;
		}
	}
	return 0;
}

int qu_argv_from_cmdline(const char *buf, size_t len, struct qu_argv *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	if (len && buf[len - 1] != '\0')
		n++; /* a line cut short by the kernel still counts its last word */
	if (n == 0)
		return -EINVAL;
	char **words = calloc(n, sizeof(*words));
	char *copy = malloc(len + 1);
	if (!words || !copy) {
		free(words);
		free(copy);
		return -ENOMEM;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	size_t w = 0;
	for (size_t i = 0; i < len && w < n; i += strlen(copy + i) + 1)
		words[w++] = copy + i;
	int r = qu_argv_from_array((int)w, words, out);
	free(words);
	free(copy);
	return r;
}

long qu_argv_find(const struct qu_argv *v, const char *opt, size_t start)
{
	for (size_t i = start; i < v->n; i++)
		if (v->a[i].opt && !strcmp(v->a[i].opt, opt))
			return (long)i;
	return -1;
}

int qu_argv_add(struct qu_argv *v, const char *opt, const char *val)
{
	return push(v, opt, val);
}

void qu_argv_remove(struct qu_argv *v, size_t i)
{
	free(v->a[i].opt);
	free(v->a[i].val);
	memmove(v->a + i, v->a + i + 1, sizeof(v->a[0]) * (v->n - i - 1));
	v->n--;
}

int qu_argv_set(struct qu_argv *v, size_t i, const char *opt, const char *val)
{
	char *no = opt ? strdup(opt) : NULL, *nv = val ? strdup(val) : NULL;
	if ((opt && !no) || (val && !nv)) {
		free(no);
		free(nv);
		return -ENOMEM;
	}
	free(v->a[i].opt);
	free(v->a[i].val);
	v->a[i].opt = no;
	v->a[i].val = nv;
	return 0;
}

void qu_strv_free(char **strv)
{
	if (!strv)
		return;
	for (char **p = strv; *p; p++)
		free(*p);
	free(strv);
}

char **qu_argv_flatten(const struct qu_argv *v)
{
	char **out = calloc(2 * v->n + 2, sizeof(*out));
	size_t k = 0;
	if (!out || !(out[k++] = strdup(v->prog)))
		goto nomem;
	for (size_t i = 0; i < v->n; i++) {
		if (v->a[i].opt) {
			size_t l = strlen(v->a[i].opt);
			if (!(out[k] = malloc(l + 2)))
				goto nomem;
			out[k][0] = '-';
			memcpy(out[k++] + 1, v->a[i].opt, l + 1);
		}
		if (v->a[i].val && !(out[k++] = strdup(v->a[i].val)))
			goto nomem;
	}
	return out;
nomem:
	qu_strv_free(out);
	return NULL;
}
