/* The primary's side of disk replication (replication.h). The copy is remote/blk/mirror.c's,
 * the one --remote --copy-storage uses. The order is qemu-colo.rst's ("Primary resume
 * replication"): mirror until synced, stop, complete, drive_add + x-blockdev-change (here as
 * blockdev-add, so that no HMP line is parsed), the migration that enters COLO; the stop and
 * the completion come while that migration waits before its switch-over (enter.h), so that
 * the guest does not stay stopped through the whole RAM copy. */
#include "remote/standby/replication.h"
#include "qemu-integration/qmp.h"
#include "remote/blk/mirror.h"
#include "upgrade/log.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* The NBD client under the replication node: "HOST:PORT" ([IPV6]:PORT too). */
static json_object *nbd_file(const char *addr, const char *export, const char *tls_id)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return NULL;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(n - 2), addr + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)n, addr);
	json_object *f = json_object_new_object(), *server = json_object_new_object();
	json_object_object_add(server, "type", json_object_new_string("inet"));
	json_object_object_add(server, "host", json_object_new_string(host));
	json_object_object_add(server, "port", json_object_new_string(colon + 1));
	json_object_object_add(f, "driver", json_object_new_string("nbd"));
	json_object_object_add(f, "server", server);
	json_object_object_add(f, "export", json_object_new_string(export));
	json_object_object_add(f, "tls-creds", json_object_new_string(tls_id));
	return f;
}

static int attach(struct qu_qmp *q, const char *device, const char *export, const char *addr, const char *tls_id,
		  uint64_t deadline_us)
{
	json_object *file = nbd_file(addr, export, tls_id);
	if (!file)
		return qu_err(-EPROTO, "the agent gave no usable address for the secondary's disk export ('%s')", addr);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "driver", json_object_new_string("replication"));
	json_object_object_add(args, "node-name", json_object_new_string(QU_COLO_REP_NODE));
	json_object_object_add(args, "mode", json_object_new_string("primary"));
	json_object_object_add(args, "file", file);
	int r = qu_qmp_execute(q, "blockdev-add", args, -1, deadline_us, NULL);
	if (r < 0)
		return qu_err_wrap(r, "the primary's replication node (NBD with TLS to %s)", addr);
	args = json_object_new_object();
	json_object_object_add(args, "parent", json_object_new_string(device));
	json_object_object_add(args, "node", json_object_new_string(QU_COLO_REP_NODE));
	if ((r = qu_qmp_execute(q, "x-blockdev-change", args, -1, deadline_us, NULL)) < 0)
		return qu_err_wrap(r, "adding the replication child to quorum %s", device);
	return 0;
}

int qu_colo_disk_mirror(struct qu_qmp *q, const char *device, const char *export, const char *nbd_addr,
			const char *tls_id, uint64_t deadline_us)
{
	int r;
	if ((r = qu_mirror_start_one(q, 0, device, export, nbd_addr, tls_id, 0, deadline_us)) < 0 ||
	    (r = qu_mirror_wait_ready(q, 1, deadline_us)) < 0 || (r = qu_mirror_write_blocking(q, 1, deadline_us)) < 0) {
		qu_mirror_abort(q, deadline_us);
		return qu_err_wrap(r, "the initial copy of disk %s", device);
	}
	return 0;
}

int qu_colo_disk_switch(struct qu_qmp *q, const char *device, const char *export, const char *nbd_addr,
			const char *tls_id, uint64_t deadline_us)
{
	unsigned long long copied = 0;
	int r = qu_mirror_complete(q, 1, deadline_us, &copied);
	if (r < 0) {
		qu_mirror_abort(q, deadline_us);
		return qu_err_wrap(r, "the end of disk %s's initial copy", device);
	}
	qu_info("standby: disk %s copied to the secondary (%llu MiB)", device, copied >> 20);
	return attach(q, device, export, nbd_addr, tls_id, deadline_us);
}

/* The child name ("children.1") under which a quorum holds our node, from query-block. */
static int find_child(struct qu_qmp *q, uint64_t deadline_us, char *parent, size_t plen, char *child, size_t clen)
{
	json_object *blocks = NULL;
	int r = qu_qmp_query_list(q, "query-block", deadline_us, &blocks), found = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; !found && i < json_object_array_length(blocks); i++) {
		json_object *b = json_object_array_get_idx(blocks, i), *ins, *children;
		if (!json_object_object_get_ex(b, "inserted", &ins) ||
		    !json_object_object_get_ex(ins, "children", &children) || !json_object_is_type(children, json_type_array))
			continue;
		for (size_t k = 0; !found && k < json_object_array_length(children); k++) {
			json_object *c = json_object_array_get_idx(children, k);
			if (strcmp(qu_json_member_str(c, "node-name"), QU_COLO_REP_NODE))
				continue;
			snprintf(parent, plen, "%s", *qu_json_member_str(b, "device") ? qu_json_member_str(b, "device")
										   : qu_json_member_str(ins, "node-name"));
			snprintf(child, clen, "%s", qu_json_member_str(c, "child"));
			found = parent[0] && child[0];
		}
	}
	json_object_put(blocks);
	return found;
}

int qu_colo_disk_unwire(struct qu_qmp *q, uint64_t deadline_us)
{
	char parent[128] = "", child[64] = "";
	int failed = 0;
	qu_mirror_abort(q, deadline_us); /* a start that ended during the copy */
	qu_err_clear();
	int r = find_child(q, deadline_us, parent, sizeof(parent), child, sizeof(child));
	if (r > 0) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "parent", json_object_new_string(parent));
		json_object_object_add(args, "child", json_object_new_string(child));
		if (qu_qmp_execute(q, "x-blockdev-change", args, -1, deadline_us, NULL) < 0) {
			qu_info("standby: cannot remove the replication child %s from quorum %s: %s", child, parent,
				qu_err_msg());
			failed++;
		}
	} else if (r < 0) {
		qu_info("standby: cannot read the primary's block devices: %s", qu_err_msg());
		failed++;
	}
	qu_err_clear();
	json_object *args = json_object_new_object();
	json_object_object_add(args, "node-name", json_object_new_string(QU_COLO_REP_NODE));
	/* QEMU 11.1 says "Failed to find node with node-name=...": nothing to remove. */
	if (qu_qmp_execute(q, "blockdev-del", args, -1, deadline_us, NULL) < 0 && !strstr(qu_err_msg(), "not found") &&
	    !strstr(qu_err_msg(), "Failed to find") && !strstr(qu_err_msg(), "Cannot find")) {
		qu_info("standby: cannot remove the primary's replication node: %s", qu_err_msg());
		failed++;
	}
	qu_err_clear();
	return failed;
}
