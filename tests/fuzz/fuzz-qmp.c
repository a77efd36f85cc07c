/* QMP from the old QEMU (qemu-integration/qmp.c, and what reads its answers): the input is
 * what QEMU sends on the monitor socket (greeting, answers, events), written to a socketpair
 * whose write side is then shut. qu_qmp_attach reads the greeting and negotiates (id 1); then
 * each reader below runs once, in order from the one the first byte picks, each on the next
 * answers (ids 2, 3, ...), until the bytes run out (every call then fails at once).
 * Input: one byte picking the first reader, then the monitor's bytes. */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/migration.h"
#include "qemu-integration/qmp.h"
#include "qemu-integration/ramblocks.h"
#include "qemu-integration/disks.h"
#include "remote/blk/mirror.h"
#include "upgrade/clock.h"

static struct qu_ramblock blocks[QU_MAX_RAMBLOCKS];
static struct qu_disks disks;

static void query_status(struct qu_qmp *q, uint64_t deadline)
{
	char buf[64];
	if (qu_qmp_query_string(q, "query-status", "status", deadline, buf, sizeof(buf)) == 0)
		FUZZ_CHECK(strlen(buf) < sizeof(buf));
}

static void query_version(struct qu_qmp *q, uint64_t deadline)
{
	json_object *ret = NULL;
	if (qu_qmp_execute(q, "query-version", NULL, -1, deadline, &ret) == 0)
		json_object_put(ret);
}

static void mig_get(struct qu_qmp *q, uint64_t deadline)
{
	struct qu_mig_settings s;
	if (qu_mig_get(q, deadline, &s) == 0)
		FUZZ_CHECK(memchr(s.mode, '\0', sizeof(s.mode)) && memchr(s.tls_creds, '\0', sizeof(s.tls_creds)));
}

static void ramblocks(struct qu_qmp *q, uint64_t deadline)
{
	int n = qu_ramblocks_query(q, deadline, blocks, QU_MAX_RAMBLOCKS);
	FUZZ_CHECK(n <= QU_MAX_RAMBLOCKS);
}

static void disks_query(struct qu_qmp *q, uint64_t deadline)
{
	if (qu_disks_query(q, deadline, &disks) == 0)
		FUZZ_CHECK(disks.n <= QU_MAX_DISKS);
}

static void mirror_ready(struct qu_qmp *q, uint64_t deadline)
{
	qu_mirror_wait_ready(q, 0, deadline); /* expecting none: no polling loop */
}

static void wait_migration(struct qu_qmp *q, uint64_t deadline)
{
	static const char *const st[] = { "completed", "failed", "cancelled", NULL };
	json_object *data = NULL;
	if (qu_qmp_wait_event(q, "MIGRATION", st, -1, deadline, &data) == 0)
		json_object_put(data);
}

static void event_time(struct qu_qmp *q, uint64_t deadline)
{
	int64_t t = 0;
	qu_qmp_event_time(q, "RESUME", deadline, &t);
}

static void wait_incoming(struct qu_qmp *q, uint64_t deadline)
{
	qu_mig_wait_incoming(q, -1, deadline);
}

static void (*const readers[])(struct qu_qmp *, uint64_t) = {
	query_status, query_version, mig_get, ramblocks, disks_query, mirror_ready,
	wait_migration, event_time, wait_incoming,
};
#define NREADERS (sizeof(readers) / sizeof(readers[0]))

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	int peer, fd = fuzz_socket_with(data + 1, size - 1, &peer);
	if (fd < 0)
		return 0;
	struct qu_qmp *q = NULL;
	uint64_t deadline = qu_now_us() + 10000000u;
	if (qu_qmp_attach(fd, deadline, &q) == 0) { /* fd is q's now, or closed */
		int v[3];
		qu_qmp_version(q, &v[0], &v[1], &v[2]);
		for (size_t i = 0; i < NREADERS; i++)
			readers[(data[0] + i) % NREADERS](q, deadline);
		qu_qmp_close(q);
	}
	close(peer);
	return 0;
}
