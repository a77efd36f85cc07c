#include "qemu-integration/disks.h"
#include "qemu-integration/qmp.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* query-block's image info nests each backing image in the one above ("backing-image"). */
static void read_chain(json_object *img, struct qu_disk *d)
{
	json_object *b;
	snprintf(d->backing_name, sizeof(d->backing_name), "%s", qu_json_member_str(img, "backing-filename"));
	d->nchain = 0;
	while (json_object_object_get_ex(img, "backing-image", &b)) {
		if (d->nchain == QU_MAX_BACKING) {
			d->nchain = -1;
			return;
		}
		struct qu_backing *c = &d->chain[d->nchain++];
		snprintf(c->file, sizeof(c->file), "%s", qu_json_member_str(b, "filename"));
		snprintf(c->format, sizeof(c->format), "%s", qu_json_member_str(b, "format"));
		img = b;
	}
	if (d->nchain == 0 || !d->backing_name[0])
		d->nchain = -1; /* a backing file QEMU did not describe */
}

int qu_disks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_disks *out)
{
	json_object *blocks = NULL, *ins, *img = NULL, *v;
	int r = qu_qmp_query_list(q, "query-block", deadline_us, &blocks);
	if (r < 0)
		return r;
	out->n = 0;
	for (size_t i = 0; i < json_object_array_length(blocks); i++) {
		json_object *b = json_object_array_get_idx(blocks, i);
		if (!json_object_object_get_ex(b, "inserted", &ins))
			continue;
		if (out->n == QU_MAX_DISKS) {
			json_object_put(blocks);
			return qu_err(-E2BIG, "the VM has more than %d disks: more than qemu-upgrade handles", QU_MAX_DISKS);
		}
		struct qu_disk *d = &out->d[out->n++];
		memset(d, 0, sizeof(*d));
		snprintf(d->device, sizeof(d->device), "%s", *qu_json_member_str(b, "device") ? qu_json_member_str(b, "device") : qu_json_member_str(ins, "node-name"));
		snprintf(d->file, sizeof(d->file), "%s", qu_json_member_str(ins, "file"));
		snprintf(d->format, sizeof(d->format), "%s", qu_json_member_str(ins, "drv"));
		d->readonly = json_object_object_get_ex(ins, "ro", &v) && json_object_get_boolean(v);
		d->removable = json_object_object_get_ex(b, "removable", &v) && json_object_get_boolean(v);
		d->backing = qu_json_member_int(ins, "backing_file_depth") > 0;
		if (json_object_object_get_ex(ins, "image", &img)) {
			d->size = (unsigned long long)qu_json_member_int(img, "virtual-size");
			if (d->backing)
				read_chain(img, d);
		}
		if (d->backing && !img)
			d->nchain = -1;
	}
	json_object_put(blocks);
	return 0;
}
