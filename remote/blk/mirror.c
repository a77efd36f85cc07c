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
#define NODE_PREFIX "qemu-upgrade-nbd-"
#define POLL_US 50000u

/* The export as a block node of the old QEMU: an NBD client (over TLS with tls_creds). The
 * export is the guest's view of the disk: raw, whatever the image format. */
static int add_target_node(struct qu_qmp *q, const char *node, const char *addr, const char *export,
			   const char *tls_creds, uint64_t deadline_us)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return qu_err(-EINVAL, "bad NBD address '%s'", addr);
	/* "[::1]:PORT" -> "::1" */
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(n - 2), addr + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)n, addr);
	json_object *args = json_object_new_object(), *server = json_object_new_object();
	json_object_object_add(server, "type", json_object_new_string("inet"));
	json_object_object_add(server, "host", json_object_new_string(host));
	json_object_object_add(server, "port", json_object_new_string(colon + 1));
	json_object_object_add(args, "driver", json_object_new_string("nbd"));
	json_object_object_add(args, "node-name", json_object_new_string(node));
	json_object_object_add(args, "server", server);
	json_object_object_add(args, "export", json_object_new_string(export));
	if (tls_creds)
		json_object_object_add(args, "tls-creds", json_object_new_string(tls_creds));
	return qu_qmp_execute(q, "blockdev-add", args, -1, deadline_us, NULL);
}

int qu_mirror_start_one(struct qu_qmp *q, unsigned i, const char *device, const char *export, const char *addr,
			const char *tls_creds, int top, uint64_t deadline_us)
{
	char job[64], node[64];
	snprintf(job, sizeof(job), JOB_PREFIX "%u", i);
	snprintf(node, sizeof(node), NODE_PREFIX "%u", i);
	int r = add_target_node(q, node, addr, export, tls_creds, deadline_us);
	if (r < 0)
		return qu_err_wrap(r, "connecting to the copy of disk '%s' on the other host", device);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "job-id", json_object_new_string(job));
	json_object_object_add(args, "device", json_object_new_string(device));
	json_object_object_add(args, "target", json_object_new_string(node));
	json_object_object_add(args, "sync", json_object_new_string(top ? "top" : "full"));
	/* A failed job stays listed until dismissed (see jobs()). */
	json_object_object_add(args, "auto-dismiss", json_object_new_boolean(0));
	return qu_qmp_execute(q, "blockdev-mirror", args, -1, deadline_us, NULL);
}

int qu_mirror_start(struct qu_qmp *q, const struct qu_disks *disks, unsigned mask, unsigned top_mask,
		    const char *addr, const char *tls_creds, uint64_t deadline_us)
{
	for (size_t i = 0; i < disks->n; i++) {
		if (!(mask & (1u << i)))
			continue;
		int r = qu_mirror_start_one(q, (unsigned)i, disks->d[i].device, disks->d[i].device, addr, tls_creds,
					    !!(top_mask & (1u << i)), deadline_us);
		if (r < 0)
			return qu_err_wrap(r, "copying disk '%s' (%s)", disks->d[i].device, disks->d[i].file);
	}
	return 0;
}

/* The NBD client nodes, once their jobs are gone (errors: a node never added). */
static void delete_nodes(struct qu_qmp *q, uint64_t deadline_us)
{
	for (int i = 0; i < QU_MAX_DISKS; i++) {
		char node[64];
		snprintf(node, sizeof(node), NODE_PREFIX "%d", i);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "node-name", json_object_new_string(node));
		qu_qmp_execute(q, "blockdev-del", args, -1, deadline_us, NULL);
	}
}

/* Our jobs now. They are started with auto-dismiss off, so a job that failed stays listed
 * (status "concluded", with its error) until we dismiss it: nothing depends on an event
 * that could be missed. */
struct job_state {
	int n, ready, concluded, synced;
	long long done, total;
	char error[512]; /* the first failed job's error */
};

static int jobs(struct qu_qmp *q, uint64_t deadline_us, struct job_state *js)
{
	json_object *list = NULL;
	int r = qu_qmp_query_list(q, "query-block-jobs", deadline_us, &list);
	if (r < 0)
		return r;
	memset(js, 0, sizeof(*js));
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *j = json_object_array_get_idx(list, i), *v;
		if (strncmp(qu_json_member_str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)))
			continue;
		js->n++;
		js->ready += json_object_object_get_ex(j, "ready", &v) && json_object_get_boolean(v);
		js->synced += json_object_object_get_ex(j, "actively-synced", &v) && json_object_get_boolean(v);
		js->concluded += !strcmp(qu_json_member_str(j, "status"), "concluded") || !strcmp(qu_json_member_str(j, "status"), "null");
		if (*qu_json_member_str(j, "error") && !js->error[0])
			snprintf(js->error, sizeof(js->error), "%s: %s", qu_json_member_str(j, "device"), qu_json_member_str(j, "error"));
		/* Unsigned: nonsense sizes wrap instead of overflowing. */
		js->done = (long long)((unsigned long long)js->done + (unsigned long long)qu_json_member_int(j, "offset"));
		js->total = (long long)((unsigned long long)js->total + (unsigned long long)qu_json_member_int(j, "len"));
	}
	json_object_put(list);
	return js->n;
}

static void dismiss_all(struct qu_qmp *q, uint64_t deadline_us)
{
	json_object *list = NULL;
	if (qu_qmp_query_list(q, "query-block-jobs", deadline_us, &list) < 0)
		return;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *j = json_object_array_get_idx(list, i);
		if (strncmp(qu_json_member_str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)) || strcmp(qu_json_member_str(j, "status"), "concluded"))
			continue;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "id", json_object_new_string(qu_json_member_str(j, "device")));
		qu_qmp_execute(q, "job-dismiss", args, -1, deadline_us, NULL);
	}
	json_object_put(list);
}

int qu_mirror_wait_ready(struct qu_qmp *q, int expected, uint64_t deadline_us)
{
	struct job_state js;
	uint64_t next_info = qu_now_us() + 2000000u;
	for (;;) {
		int r = jobs(q, deadline_us, &js);
		if (r < 0)
			return r;
		if (js.error[0] || js.concluded)
			return qu_err(-EIO, "a disk copy job failed before the copy was complete: %s",
				      js.error[0] ? js.error : "it ended early");
		if (js.n != expected)
			return qu_err(-EIO, "%d disk copy job(s) running, %d started: one ended before the copy "
				      "was complete", js.n, expected);
		if (js.ready == expected)
			return 0;
		if (qu_now_us() >= deadline_us)
			return qu_err(-ETIMEDOUT, "the disk copy did not finish in time: %lld of %lld MiB copied; "
				      "raise --timeout", js.done >> 20, js.total >> 20);
		if (qu_now_us() >= next_info) {
			qu_info("copying disks: %lld of %lld MiB", js.done >> 20, js.total >> 20);
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
	int r = qu_qmp_query_list(q, "query-block-jobs", deadline_us, &list);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(list) && r == 0; i++) {
		json_object *j = json_object_array_get_idx(list, i);
		if (strncmp(qu_json_member_str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)) || !strcmp(qu_json_member_str(j, "status"), "concluded"))
			continue;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "device", json_object_new_string(qu_json_member_str(j, "device")));
		if (force)
			json_object_object_add(args, "force", json_object_new_boolean(1));
		r = qu_qmp_execute(q, "block-job-cancel", args, -1, deadline_us, NULL);
	}
	json_object_put(list);
	return r;
}

/* Until every one of our jobs has concluded. */
static int wait_concluded(struct qu_qmp *q, uint64_t deadline_us, struct job_state *js)
{
	int r;
	while ((r = jobs(q, deadline_us, js)) >= 0 && js->concluded < js->n && qu_now_us() < deadline_us)
		usleep(POLL_US / 5);
	if (r >= 0 && js->concluded < js->n)
		r = qu_err(-ETIMEDOUT, "%d disk copy job(s) did not end", js->n - js->concluded);
	return r < 0 ? r : 0;
}

int qu_mirror_write_blocking(struct qu_qmp *q, int expected, uint64_t deadline_us)
{
	json_object *list = NULL;
	struct job_state js;
	int r = qu_qmp_query_list(q, "query-block-jobs", deadline_us, &list);
	for (size_t i = 0; r >= 0 && i < json_object_array_length(list); i++) {
		json_object *j = json_object_array_get_idx(list, i);
		if (strncmp(qu_json_member_str(j, "device"), JOB_PREFIX, strlen(JOB_PREFIX)))
			continue;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "id", json_object_new_string(qu_json_member_str(j, "device")));
		json_object_object_add(args, "type", json_object_new_string("mirror"));
		json_object_object_add(args, "copy-mode", json_object_new_string("write-blocking"));
		r = qu_qmp_execute(q, "block-job-change", args, -1, deadline_us, NULL);
	}
	json_object_put(list);
	if (r < 0)
		return qu_err_wrap(r, "switching the disk copy to write-blocking");
	/* Actively synced: no write is dirty any more, and every new one goes to both at once. */
	while ((r = jobs(q, deadline_us, &js)) >= 0 && js.synced < expected && !js.error[0] && !js.concluded) {
		if (qu_now_us() >= deadline_us)
			return qu_err(-ETIMEDOUT, "%d of %d disk copy job(s) actively synced in write-blocking mode "
				      "before the deadline", js.synced, expected);
		usleep(POLL_US / 5);
	}
	if (r >= 0 && (js.error[0] || js.concluded || js.n != expected))
		r = qu_err(-EIO, "a disk copy job failed while it turned write-blocking: %s",
			   js.error[0] ? js.error : "it ended early");
	return r < 0 ? r : 0;
}

int qu_mirror_complete(struct qu_qmp *q, int expected, uint64_t deadline_us, unsigned long long *copied)
{
	struct job_state js;
	int r = jobs(q, deadline_us, &js);
	if (r >= 0 && (js.n != expected || js.ready != expected || js.error[0]))
		r = qu_err(-EIO, "the disk copy is not in step: %d of %d job(s) ready%s%s", js.ready, expected,
			   js.error[0] ? "; " : "", js.error);
	/* Cancelling a ready mirror completes it: the copy is exact once it concludes without an
	 * error. */
	if (r >= 0)
		r = cancel_all(q, 0, deadline_us);
	if (r >= 0)
		r = wait_concluded(q, deadline_us, &js);
	if (r >= 0 && (js.error[0] || js.n != expected))
		r = qu_err(-EIO, "a disk copy job failed at the end: %s", js.error[0] ? js.error : "it vanished");
	if (r < 0)
		return qu_err_wrap(r, "completing the disk copy");
	*copied = (unsigned long long)js.done;
	dismiss_all(q, deadline_us);
	delete_nodes(q, deadline_us);
	return 0;
}

void qu_mirror_abort(struct qu_qmp *q, uint64_t deadline_us)
{
	struct job_state js;
	if (cancel_all(q, 1, deadline_us) == 0)
		wait_concluded(q, deadline_us, &js);
	dismiss_all(q, deadline_us);
	delete_nodes(q, deadline_us);
}
