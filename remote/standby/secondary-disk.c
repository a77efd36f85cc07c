/* The secondary's disk graph (secondary.h), as qemu-colo.rst's secondary has it and as
 * measured in docs/standby-research.md: parent, replication node, quorum. */
#include "remote/standby/secondary.h"
#include "qemu-integration/argv.h"
#include "qemu-integration/disks.h"
#include "qemu-integration/opts.h"
#include "remote/standby/wiring.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Option i (which must exist) moved to just after option at: the drives keep their order. */
static int insert_after(struct qu_argv *v, size_t at, const char *opt, const char *val)
{
	int r = qu_argv_add(v, opt, val);
	if (r < 0)
		return r;
	struct qu_arg last = v->a[v->n - 1];
	memmove(v->a + at + 2, v->a + at + 1, sizeof(v->a[0]) * (v->n - at - 2));
	v->a[at + 1] = last;
	return 0;
}

/* The index of the -drive whose id is device, its options parsed into o; -ENOENT. */
static long find_drive(const struct qu_argv *v, const char *device, struct qu_opts *o)
{
	for (long i = qu_argv_find(v, "drive", 0); i >= 0; i = qu_argv_find(v, "drive", (size_t)i + 1)) {
		if (!v->a[i].val || qu_opts_parse(v->a[i].val, NULL, o) < 0)
			continue;
		const char *id = qu_opts_get(o, "id");
		if (id && !strcmp(id, device))
			return i;
		qu_opts_free(o);
	}
	return -ENOENT;
}

/* The quorum's own options, its children replaced by the replication node. */
static char *quorum_over_child(const struct qu_opts *o)
{
	struct qu_opts q = { 0 };
	char *text = NULL;
	for (size_t k = 0; k < o->n; k++) {
		if (!strncmp(o->v[k].key, "children.", 9))
			continue;
		if (qu_opts_set(&q, o->v[k].key, o->v[k].val ? o->v[k].val : "on") < 0)
			goto out;
	}
	if (qu_opts_set(&q, "children.0", QU_COLO_CHILD_ID) == 0)
		text = qu_opts_format(&q);
out:
	qu_opts_free(&q);
	return text;
}

void qu_colo_drop_graph_disks(struct qu_disks *disks)
{
	size_t k = 0;
	for (size_t i = 0; i < disks->n; i++)
		if (strcmp(disks->d[i].device, QU_COLO_PARENT_ID) && strcmp(disks->d[i].device, QU_COLO_CHILD_ID)) {
			if (k != i)
				disks->d[k] = disks->d[i];
			k++;
		}
	disks->n = k;
}

/* The drives of a graph this tool gave a secondary earlier (a guest that took over runs on
 * them), removed: the quorum names its child by id, and gets the new one of the same id. */
static void drop_graph_drives(struct qu_argv *v)
{
	struct qu_opts o = { 0 };
	for (long i = qu_argv_find(v, "drive", 0); i >= 0;) {
		int ours = 0;
		if (v->a[i].val && qu_opts_parse(v->a[i].val, NULL, &o) == 0) {
			const char *id = qu_opts_get(&o, "id");
			ours = id && (!strcmp(id, QU_COLO_PARENT_ID) || !strcmp(id, QU_COLO_CHILD_ID));
			qu_opts_free(&o);
		}
		if (ours)
			qu_argv_remove(v, (size_t)i);
		i = qu_argv_find(v, "drive", ours ? (size_t)i : (size_t)i + 1);
	}
}

int qu_colo_secondary_drives(struct qu_argv *argv, const char *device, const char *image, const char *format,
			     int active_fd, int hidden_fd)
{
	struct qu_opts o = { 0 };
	char active[32], hidden[32];
	if (!qu_colo_id_ok(device) || !format[0] || strspn(format, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(format) ||
	    image[0] != '/' || active_fd < 3 || hidden_fd < 3 || active_fd == hidden_fd)
		return qu_err(-EINVAL, "the secondary's disk: drive '%s' (%s, %s) cannot be named to QEMU", device, image,
			      format);
	drop_graph_drives(argv);
	long i = find_drive(argv, device, &o);
	if (i < 0)
		return qu_err(-ENOENT, "the secondary's disk: the command line has no -drive with id=%s", device);
	const char *driver = qu_opts_get(&o, "driver");
	if (!driver || strcmp(driver, "quorum")) {
		qu_opts_free(&o);
		return qu_err(-EINVAL, "the secondary's disk: -drive id=%s is not a quorum on the command line", device);
	}
	snprintf(active, sizeof(active), "/proc/self/fd/%d", active_fd);
	snprintf(hidden, sizeof(hidden), "/proc/self/fd/%d", hidden_fd);
	const char *parent_kv[] = { "if", "none", "id", QU_COLO_PARENT_ID, "driver", format, "file.filename", image, NULL };
	const char *child_kv[] = { "if", "none", "id", QU_COLO_CHILD_ID, "driver", "replication", "mode", "secondary",
				   "top-id", device, "file.driver", "qcow2", "file.file.filename", active,
				   "file.backing.driver", "qcow2", "file.backing.file.filename", hidden,
				   "file.backing.backing", QU_COLO_PARENT_ID, NULL };
	char *parent = qu_opts_from(0, parent_kv), *child = qu_opts_from(0, child_kv), *quorum = quorum_over_child(&o);
	qu_opts_free(&o);
	int r = parent && child && quorum ? 0 : -ENOMEM;
	/* parent and child first: the quorum names its child, which must exist by then. */
	if (r == 0)
		r = qu_argv_set(argv, (size_t)i, "drive", parent);
	if (r == 0)
		r = insert_after(argv, (size_t)i, "drive", child);
	if (r == 0)
		r = insert_after(argv, (size_t)i + 1, "drive", quorum);
	free(parent);
	free(child);
	free(quorum);
	return r < 0 ? qu_err(r, "the secondary's disk graph: %s", strerror(-r)) : 0;
}

/* The -drive whose children.0 is the replication node: the quorum of the graph. */
static long find_graph_quorum(const struct qu_argv *v, struct qu_opts *o)
{
	for (long i = qu_argv_find(v, "drive", 0); i >= 0; i = qu_argv_find(v, "drive", (size_t)i + 1)) {
		if (!v->a[i].val || qu_opts_parse(v->a[i].val, NULL, o) < 0)
			continue;
		const char *child = qu_opts_get(o, "children.0");
		if (child && !strcmp(child, QU_COLO_CHILD_ID))
			return i;
		qu_opts_free(o);
	}
	return -ENOENT;
}

int qu_colo_promote_drives(struct qu_argv *argv)
{
	struct qu_opts parent = { 0 }, child = { 0 }, quorum = { 0 }, out = { 0 };
	long ip = find_drive(argv, QU_COLO_PARENT_ID, &parent), ic = find_drive(argv, QU_COLO_CHILD_ID, &child);
	long iq = ip >= 0 && ic >= 0 ? find_graph_quorum(argv, &quorum) : -ENOENT;
	char *text = NULL;
	int r = 0;
	if (ip < 0 && ic < 0)
		return 0;
	const char *driver = iq >= 0 ? qu_opts_get(&quorum, "driver") : NULL;
	if (iq < 0 || !driver || strcmp(driver, "quorum")) {
		r = qu_err(-EINVAL, "the command line holds a part of a COLO secondary's disk graph (-drive id=%s or "
			   "id=%s) without the rest (a quorum over id=%s): it cannot be put back as the VM's own drive",
			   QU_COLO_PARENT_ID, QU_COLO_CHILD_ID, QU_COLO_CHILD_ID);
		goto out;
	}
	/* The quorum's own options; its one child, the parent image, written in place. */
	for (size_t k = 0; k < quorum.n && r == 0; k++)
		if (strncmp(quorum.v[k].key, "children.", 9))
			r = qu_opts_set(&out, quorum.v[k].key, quorum.v[k].val ? quorum.v[k].val : "on");
	for (size_t k = 0; k < parent.n && r == 0; k++) {
		char key[256];
		if (!strcmp(parent.v[k].key, "if") || !strcmp(parent.v[k].key, "id"))
			continue;
		if ((size_t)snprintf(key, sizeof(key), "children.0.%s", parent.v[k].key) >= sizeof(key)) {
			r = qu_err(-EINVAL, "-drive id=%s: option '%.64s...' is too long", QU_COLO_PARENT_ID, parent.v[k].key);
			break;
		}
		r = qu_opts_set(&out, key, parent.v[k].val ? parent.v[k].val : "on");
	}
	if (r == 0 && !(text = qu_opts_format(&out)))
		r = -ENOMEM;
	if (r == 0)
		r = qu_argv_set(argv, (size_t)iq, "drive", text);
	/* The later index first: removing one moves those after it. */
	if (r == 0) {
		qu_argv_remove(argv, (size_t)(ip > ic ? ip : ic));
		qu_argv_remove(argv, (size_t)(ip > ic ? ic : ip));
	}
	if (r == -ENOMEM)
		qu_err(r, "the VM's drive from the COLO graph: %s", strerror(-r));
out:
	qu_opts_free(&parent);
	qu_opts_free(&child);
	qu_opts_free(&quorum);
	qu_opts_free(&out);
	free(text);
	return r < 0 ? r : 1;
}
