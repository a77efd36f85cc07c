#include "qemu-integration/disks.h"
#include "qemu-integration/qmp.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int qu_disks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_disks *out)
{
	json_object *blocks = NULL, *ins, *img, *v;
	int r = qu_qmp_execute(q, "query-block", NULL, -1, deadline_us, &blocks);
	if (r < 0)
		return r;
	if (!json_object_is_type(blocks, json_type_array)) {
		json_object_put(blocks);
		return qu_err(-EPROTO, "QMP query-block: the answer is not a list");
	}
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
		if (json_object_object_get_ex(ins, "image", &img))
			d->size = (unsigned long long)qu_json_member_int(img, "virtual-size");
	}
	json_object_put(blocks);
	return 0;
}
