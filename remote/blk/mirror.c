#include "remote/blk/mirror.h"
#include "qemu-integration/qmp.h"
#include "upgrade/clock.h"
#include "upgrade/io.h"
#include "upgrade/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define JOB_PREFIX "qemu-upgrade-mirror-"
#define POLL_US 50000u

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static long long num(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

int qu_disks_query(struct qu_qmp *q, uint64_t deadline_us, struct qu_disks *out)
{
	json_object *blocks = NULL, *ins, *img, *v;
	int r = qu_qmp_execute(q, "query-block", NULL, -1, deadline_us, &blocks);
	if (r < 0)
		return r;
	out->n = 0;
	for (size_t i = 0; i < json_object_array_length(blocks) && out->n < QU_MAX_DISKS; i++) {
		json_object *b = json_object_array_get_idx(blocks, i);
		if (!json_object_object_get_ex(b, "inserted", &ins))
			continue;
		struct qu_disk *d = &out->d[out->n++];
		memset(d, 0, sizeof(*d));
		snprintf(d->device, sizeof(d->device), "%s", *str(b, "device") ? str(b, "device") : str(ins, "node-name"));
		snprintf(d->file, sizeof(d->file), "%s", str(ins, "file"));
		snprintf(d->format, sizeof(d->format), "%s", str(ins, "drv"));
		d->readonly = json_object_object_get_ex(ins, "ro", &v) && json_object_get_boolean(v);
		d->removable = json_object_object_get_ex(b, "removable", &v) && json_object_get_boolean(v);
		d->backing = num(ins, "backing_file_depth") > 0;
		if (json_object_object_get_ex(ins, "image", &img))
			d->size = (unsigned long long)num(img, "virtual-size");
	}
	json_object_put(blocks);
	return 0;
}

int qu_mirror_start(struct qu_qmp *q, const struct qu_disks *disks, unsigned mask, const char *addr,
		    uint64_t deadline_us)
{
	for (size_t i = 0; i < disks->n; i++) {
		if (!(mask & (1u << i)))
			continue;
		char job[64], target[256];
		snprintf(job, sizeof(job), JOB_PREFIX "%zu", i);
		snprintf(target, sizeof(target), "nbd://%s/%s", addr, disks->d[i].device);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "job-id", json_object_new_string(job));
		json_object_object_add(args, "device", json_object_new_string(disks->d[i].device));
		json_object_object_add(args, "target", json_object_new_string(target));
		/* The export is the guest's view of the disk: raw, whatever the image format. */
		json_object_object_add(args, "format", json_object_new_string("raw"));
		json_object_object_add(args, "mode", json_object_new_string("existing"));
		json_object_object_add(args, "sync", json_object_new_string("full"));
		int r = qu_qmp_execute(q, "drive-mirror", args, -1, deadline_us, NULL);
		if (r < 0)
			return qu_err_wrap(r, "copying disk '%s' (%s)", disks->d[i].device, disks->d[i].file);
	}
	return 0;
}

/* Our jobs now: how many, how many ready, bytes done and to do. */
static int jobs(struct qu_qmp *q, uint64_t deadline_us, int *ready, long long *done, long long *total)
{
	json_object *list = NULL;
	int r = qu_qmp_execute(q, "query-block-jobs", NULL, -1, deadline_us, &list), n = 0;
	if (r < 0)
		return r;
	*ready = 0;
	*done = *total = 0;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *j = json_object_array_get_idx(list, i), *v;
		if (strncmp(str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)))
			continue;
		n++;
		*ready += json_object_object_get_ex(j, "ready", &v) && json_object_get_boolean(v);
		*done += num(j, "offset");
		*total += num(j, "len");
	}
	json_object_put(list);
	return n;
}

int qu_mirror_wait_ready(struct qu_qmp *q, uint64_t deadline_us)
{
	int n0 = -1, ready = 0;
	long long done, total;
	uint64_t next_info = qu_now_us() + 2000000u;
	for (;;) {
		int n = jobs(q, deadline_us, &ready, &done, &total);
		if (n < 0)
			return n;
		if (n0 < 0)
			n0 = n;
		if (n < n0) {
			/* A job that ended before it was in step failed: QEMU says why in its event. */
			json_object *data = NULL;
			char why[512] = "";
			if (qu_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", NULL, -1, qu_now_us() + 200000u, &data) == 0)
				snprintf(why, sizeof(why), ": %s", str(data, "error"));
			json_object_put(data);
			return qu_err(-EIO, "a disk copy job ended before the copy was complete%s", why);
		}
		if (ready == n)
			return 0;
		if (qu_now_us() >= deadline_us)
			return qu_err(-ETIMEDOUT, "the disk copy did not finish in time: %lld of %lld MiB copied; "
				      "raise --timeout", done >> 20, total >> 20);
		if (qu_now_us() >= next_info) {
			qu_info("copying disks: %lld of %lld MiB", done >> 20, total >> 20);
			next_info = qu_now_us() + 2000000u;
		}
		int c = qu_cancel_check();
		if (c < 0)
			return c;
		usleep(POLL_US);
	}
}

static int cancel_all(struct qu_qmp *q, int force, uint64_t deadline_us)
{
	json_object *list = NULL;
	int r = qu_qmp_execute(q, "query-block-jobs", NULL, -1, deadline_us, &list);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(list) && r == 0; i++) {
		json_object *j = json_object_array_get_idx(list, i);
		if (strncmp(str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)))
			continue;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "device", json_object_new_string(str(j, "device")));
		if (force)
			json_object_object_add(args, "force", json_object_new_boolean(1));
		r = qu_qmp_execute(q, "block-job-cancel", args, -1, deadline_us, NULL);
	}
	json_object_put(list);
	if (r < 0)
		return r;
	int ready;
	long long done, total;
	while ((r = jobs(q, deadline_us, &ready, &done, &total)) > 0 && qu_now_us() < deadline_us)
		usleep(POLL_US / 5);
	return r < 0 ? r : r > 0 ? qu_err(-ETIMEDOUT, "%d disk copy job(s) did not end", r) : 0;
}

int qu_mirror_complete(struct qu_qmp *q, uint64_t deadline_us)
{
	int ready;
	long long done, total;
	int n = jobs(q, deadline_us, &ready, &done, &total);
	int r = n < 0 ? n : cancel_all(q, 0, deadline_us);
	if (r < 0)
		return qu_err_wrap(r, "completing the disk copy");
	/* Cancelling a ready mirror completes it: each job's end event must carry no error, or
	 * the copy is not exact. */
	for (int k = 0; k < n; k++) {
		json_object *data = NULL;
		r = qu_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", NULL, -1, qu_now_us() + 5000000u, &data);
		if (r < 0)
			return qu_err_wrap(r, "no completion from disk copy job %d of %d", k + 1, n);
		if (strncmp(str(data, "device"), JOB_PREFIX, strlen(JOB_PREFIX))) {
			k--; /* someone else's job */
		} else if (*str(data, "error")) {
			r = qu_err(-EIO, "disk copy job %s failed at the end: %s", str(data, "device"), str(data, "error"));
		}
		json_object_put(data);
		if (r < 0)
			return r;
	}
	return 0;
}

void qu_mirror_abort(struct qu_qmp *q, uint64_t deadline_us)
{
	cancel_all(q, 1, deadline_us);
}
