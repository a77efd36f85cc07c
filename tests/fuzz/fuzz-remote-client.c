/* The tool's side of `--remote` (remote/client.c): the agent's answers, REPLY "key=value"
 * text or ERROR, to probe, start, resume and abort, read from a socketpair whose write side
 * is then shut; and the agent's RAM blocks line as execute.c unpacks it. Each call runs once,
 * in order from the one the first byte picks, until the connection is dropped.
 * Input: one mode byte (bits 0-1: the first call; bit 2: put every record's CRC right
 * first), then the bytes the agent sends (its records, as they come out of the ssh or TLS
 * channel). */
#include "tests/fuzz/fuzz.h"
#include "qemu-integration/ramblocks.h"
#include "remote/client.h"
#include "upgrade/clock.h"

static struct qu_ramblock blocks[QU_MAX_RAMBLOCKS];

static void probe(struct qu_remote *r, uint64_t deadline)
{
	struct qu_binary b;
	int has = -1;
	if (qu_remote_probe(r, "/usr/bin/qemu-system-x86_64", "pc-q35-7.2", deadline, &b, &has) == 0)
		FUZZ_CHECK(memchr(b.version_line, '\0', sizeof(b.version_line)));
}

static void start(struct qu_remote *r, uint64_t deadline)
{
	static char *const argv[] = { (char *)"/usr/bin/qemu-system-x86_64", (char *)"-S", NULL };
	static const struct qu_launch_fd fds[] = {
		{ .fd = -1, .target = 3, .kind = QU_FD_RAM, .name = "mem0", .spec = "size=134217728\n" },
	};
	const struct qu_launch spec = { .argv = (char **)argv, .cwd = "/", .context = "uid=0\ngid=0\n",
					.fds = fds, .nfds = 1 };
	if (qu_remote_start(r, &spec, deadline) == 0) {
		FUZZ_CHECK(r->new_pid > 0 && !strncmp(r->migrate_uri, "tcp:", 4));
		FUZZ_CHECK(memchr(r->nbd_addr, '\0', sizeof(r->nbd_addr)));
	}
	if (r->ramblocks) {
		int n = qu_ramblocks_unpack(r->ramblocks, blocks, QU_MAX_RAMBLOCKS);
		FUZZ_CHECK(n <= QU_MAX_RAMBLOCKS);
	}
}

static void resume(struct qu_remote *r, uint64_t deadline)
{
	qu_remote_resume(r, deadline);
}

static void abort_call(struct qu_remote *r, uint64_t deadline)
{
	qu_remote_abort(r, deadline);
}

static void (*const calls[])(struct qu_remote *, uint64_t) = { probe, start, resume, abort_call };

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	uint8_t *buf = malloc(size);
	size_t len = size - 1;
	if (!buf)
		abort();
	memcpy(buf, data + 1, len);
	if (data[0] & 4)
		fuzz_fix_crcs(buf, len);
	int peer, fd = fuzz_socket_with(buf, len, &peer);
	free(buf);
	if (fd < 0)
		return 0;
	struct qu_remote *r = calloc(1, sizeof(*r));
	FUZZ_CHECK(r);
	r->sock = fd;
	r->mem_available = -1;
	snprintf(r->host, sizeof(r->host), "agent.example:4779");
	uint64_t deadline = qu_now_us() + 10000000u;
	for (size_t i = 0; i < 4; i++)
		calls[(data[0] + i) % 4](r, deadline);
	qu_remote_check(r);
	qu_remote_close(r); /* closes fd */
	close(peer);
	return 0;
}
