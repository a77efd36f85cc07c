/* The VM's disks as COLO would replicate them: each must already sit under a quorum node with
 * one child and vote-threshold 1, on an IDE disk (the form measured, docs/standby-research.md):
 * `x-blockdev-change` adds the replication child to that quorum, and only the quorum driver
 * takes a new child at run time. The block graph is not in the migration stream, so a VM
 * started without the quorum cannot get one while it runs. */
#include "qemu-integration/opts.h"
#include "qemu-integration/qmp.h"
#include "remote/standby/plan.h"
#include "remote/standby/secondary.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define refuse(p, ...) qu_refusals_add(&(p)->refusals, __VA_ARGS__)

#define QUORUM_FORM "-drive if=ide,id=ID,driver=quorum,read-pattern=fifo,vote-threshold=1," \
		    "children.0.file.filename=IMAGE,children.0.driver=FORMAT"

/* vote-threshold of a quorum, from its "json:{...}" file name (QEMU writes the options of a
 * node it cannot name by a plain file there); -1 when not told. */
static long vote_threshold(const char *file)
{
	if (strncmp(file, "json:", 5))
		return -1;
	json_object *o = json_tokener_parse(file + 5), *v;
	long t = -1;
	if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "vote-threshold", &v)) {
		const char *s = json_object_get_string(v);
		char *end;
		long n = s ? strtol(s, &end, 10) : -1;
		t = s && *s && !*end && n >= 0 && n < 1000 ? n : -1;
	}
	json_object_put(o);
	return t;
}

/* The quorum's child node in query-named-block-nodes: its image, format and size. */
static void child_node(json_object *nodes, const char *name, struct qu_standby_disk *d, int *backing)
{
	*backing = 0;
	for (size_t i = 0; i < json_object_array_length(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i), *img;
		if (strcmp(qu_json_member_str(n, "node-name"), name))
			continue;
		qu_copy_printable(d->file, sizeof(d->file), qu_json_member_str(n, "file"));
		qu_copy_printable(d->format, sizeof(d->format), qu_json_member_str(n, "drv"));
		*backing = qu_json_member_int(n, "backing_file_depth") > 0;
		if (json_object_object_get_ex(n, "image", &img))
			d->size = (unsigned long long)qu_json_member_int(img, "virtual-size");
		return;
	}
}

/* The drives of the secondary's graph (secondary.h) that a guest which took over still runs
 * on: parts of its quorum's disk, not disks of their own. */
static int graph_drive(json_object *b)
{
	const char *dev = qu_json_member_str(b, "device");
	return !strcmp(dev, QU_COLO_PARENT_ID) || !strcmp(dev, QU_COLO_CHILD_ID);
}

/* A guest that took over as a secondary runs on the secondary's graph: its quorum over the
 * replication node QU_COLO_CHILD_ID, whose failover is done (QEMU then passes its I/O straight
 * to the parent, and ignores it when replication starts again: block/replication.c "a
 * secondary is promoted to primary"), over the parent drive on the image. That quorum takes a
 * primary replication child beside its child as any other (measured: docs/standby-research.md,
 * "Failback with a disk"); the image to copy is the parent's. A replication node still
 * replicating (the VM in COLO) is refused with the VM's state. */
static void taken_over(struct qu_standby_plan *p, json_object *blocks, struct qu_standby_disk *d)
{
	json_object *parent = NULL, *ins, *v;
	int childs = 0;
	for (size_t i = 0; i < json_object_array_length(blocks); i++) {
		json_object *b = json_object_array_get_idx(blocks, i);
		const char *dev = qu_json_member_str(b, "device");
		/* the quorum's child must be that drive's own node, not one that only shares its id */
		childs |= !strcmp(dev, QU_COLO_CHILD_ID) && json_object_object_get_ex(b, "inserted", &ins) &&
			  !strcmp(qu_json_member_str(ins, "node-name"), d->child_node);
		if (!strcmp(dev, QU_COLO_PARENT_ID) && json_object_object_get_ex(b, "inserted", &ins))
			parent = ins;
	}
	if (!childs || !parent) {
		refuse(p, "disk %s: its quorum's child is a COLO replication node, but not on the graph this tool gives "
			  "a secondary (drives %s and %s): not protected again", d->device, QU_COLO_CHILD_ID,
		       QU_COLO_PARENT_ID);
		return;
	}
	qu_copy_printable(d->file, sizeof(d->file), qu_json_member_str(parent, "file"));
	qu_copy_printable(d->format, sizeof(d->format), qu_json_member_str(parent, "drv"));
	if (json_object_object_get_ex(parent, "image", &v))
		d->size = (unsigned long long)qu_json_member_int(v, "virtual-size");
	d->taken_over = 1;
	if (d->file[0] != '/' || !d->format[0] || !strcmp(d->format, "replication"))
		refuse(p, "disk %s: the image under its replication node (drive %s) is not a plain file QEMU names (%s)",
		       d->device, QU_COLO_PARENT_ID, d->file);
	if (json_object_object_get_ex(parent, "backing_file_depth", &v) && json_object_get_int(v) > 0)
		refuse(p, "disk %s: its image %s has a backing file: COLO was measured on a standalone image", d->device,
		       d->file);
}

static void judge(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p, json_object *b,
		  json_object *blocks, json_object *nodes)
{
	json_object *ins, *children, *v;
	char device[64], drv[32], type[64] = "";
	if (!json_object_object_get_ex(b, "inserted", &ins))
		return; /* an empty CD-ROM drive: nothing to replicate */
	qu_copy_printable(device, sizeof(device), *qu_json_member_str(b, "device") ? qu_json_member_str(b, "device")
										  : qu_json_member_str(ins, "node-name"));
	qu_copy_printable(drv, sizeof(drv), qu_json_member_str(ins, "drv"));
	if (json_object_object_get_ex(b, "removable", &v) && json_object_get_boolean(v)) {
		refuse(p, "disk %s is a removable drive with a medium: not measured under COLO; eject it to protect the "
			  "VM", device);
		return;
	}
	if (strcmp(drv, "quorum")) {
		refuse(p, "disk %s (%s, %s) is not under a quorum node: COLO replicates a disk by adding a replication "
			  "child to its quorum, which cannot be put in while the VM runs; start the VM with " QUORUM_FORM,
		       device, drv, qu_json_member_str(ins, "file"));
		return;
	}
	if (json_object_object_get_ex(ins, "ro", &v) && json_object_get_boolean(v))
		refuse(p, "disk %s is read-only: not measured under COLO", device);
	long votes = vote_threshold(qu_json_member_str(ins, "file"));
	if (votes != 1)
		refuse(p, "disk %s: its quorum's vote-threshold is %s: replication needs 1 (one vote, the primary's "
			  "image, decides); start the VM with " QUORUM_FORM, device, votes < 0 ? "not told" : "not 1");
	size_t nchildren = json_object_object_get_ex(ins, "children", &children) &&
					   json_object_is_type(children, json_type_array)
				   ? json_object_array_length(children)
				   : 0;
	if (nchildren != 1) {
		refuse(p, "disk %s: its quorum has %zu children: replication adds a second to one (the primary's "
			  "image); start the VM with " QUORUM_FORM, device, nchildren);
		return;
	}
	const char *qdev = qu_json_member_str(b, "qdev");
	if (!*qdev || qu_standby_qom_string(q, qdev, "type", deadline_us, type, sizeof(type)) < 0) {
		qu_err_clear();
		snprintf(type, sizeof(type), "no device");
	}
	if (strcmp(type, "ide-hd"))
		refuse(p, "disk %s is on a %s: COLO was measured with an IDE disk (ide-hd) only; give the quorum "
			  "drive if=ide", device, type);
	if (p->ndisks == QU_STANDBY_MAX_DISKS)
		return;
	struct qu_standby_disk *d = &p->disks[p->ndisks++];
	memset(d, 0, sizeof(*d));
	snprintf(d->device, sizeof(d->device), "%s", device);
	qu_copy_printable(d->child_node, sizeof(d->child_node),
			  qu_json_member_str(json_object_array_get_idx(children, 0), "node-name"));
	int backing = 0;
	child_node(nodes, d->child_node, d, &backing);
	if (!strcmp(d->format, "replication")) {
		taken_over(p, blocks, d);
		return;
	}
	if (!d->file[0] || !d->format[0])
		refuse(p, "disk %s: QEMU does not describe its quorum's child '%s' (query-named-block-nodes)", device,
		       d->child_node);
	if (backing)
		refuse(p, "disk %s: its image %s has a backing file: COLO was measured on a standalone image", device,
		       d->file);
}

int qu_standby_disks(struct qu_qmp *q, uint64_t deadline_us, struct qu_standby_plan *p)
{
	json_object *blocks = NULL, *nodes = NULL, *args = json_object_new_object();
	int r = qu_qmp_query_list(q, "query-block", deadline_us, &blocks);
	if (r < 0) {
		json_object_put(args);
		return r;
	}
	json_object_object_add(args, "flat", json_object_new_boolean(1));
	if ((r = qu_qmp_execute(q, "query-named-block-nodes", args, -1, deadline_us, &nodes)) < 0) {
		json_object_put(blocks);
		return r;
	}
	if (!json_object_is_type(nodes, json_type_array)) {
		json_object_put(nodes);
		nodes = json_object_new_array();
	}
	size_t with_medium = 0;
	for (size_t i = 0; i < json_object_array_length(blocks) && i < 64; i++) {
		json_object *b = json_object_array_get_idx(blocks, i), *ins;
		with_medium += json_object_object_get_ex(b, "inserted", &ins) && !graph_drive(b);
		if (!graph_drive(b))
			judge(q, deadline_us, p, b, blocks, nodes);
	}
	if (json_object_array_length(blocks) > 64)
		refuse(p, "QEMU lists %zu block devices: more than this tool judges", json_object_array_length(blocks));
	if (with_medium > 1)
		refuse(p, "the VM has %zu disks: COLO was measured with one (docs/standby-research.md); protect a VM "
			  "with one disk", with_medium);
	json_object_put(blocks);
	json_object_put(nodes);
	return 0;
}
