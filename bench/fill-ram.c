/* fill-ram: write (or check) a non-zero pattern into a running QEMU's guest RAM
 * through /proc/PID/mem.
 *
 *   fill-ram fill   PID SIZE_BYTES SEED [SKIP]
 *   fill-ram verify PID SIZE_BYTES SEED [SKIP]
 *
 * The guest RAM mapping is found in /proc/PID/maps: the mapping named
 * /memfd:memory-backend-memfd of SIZE bytes (or a shared file mapping of exactly SIZE
 * bytes), else the anonymous mapping of exactly SIZE bytes, else the largest anonymous
 * one. Offsets below are offsets into that RAM block (for q35, the guest physical
 * address below the 4 GiB hole).
 *
 * SKIP is a comma-separated list of START-END byte ranges (decimal or 0x hex, 4 KiB
 * aligned) left alone: the pages the idle guest firmware is using (SeaBIOS: the first
 * MiB, and its tables and high zone just below the top of low memory). Overwriting
 * them crashes the guest (run state internal-error). Default: 0-0x100000.
 *
 * Pattern: a 2 MiB block of pseudo-random non-zero 64-bit words derived from SEED,
 * with the first word of every 4 KiB page replaced by (page offset ^ SEED | 1), so the
 * contents are non-zero, differ from page to page, and a stale or misplaced page is
 * caught by `verify`. I/O goes in runs of at most 2 MiB with pwrite/pread.
 *
 * Output (one line, key=value): mode, addr, bytes (written or checked), seconds, and
 * for verify the number of 4 KiB pages that differ (bad_pages). Exit 0 on success
 * (verify: bad_pages == 0), 1 on mismatch, 2 on error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (2u << 20)
#define PAGE 4096u

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Find the guest RAM mapping; returns 0 and sets *addr, or -1. */
static int find_ram(int pid, uint64_t size, uint64_t *addr)
{
	char path[64], line[512];
	uint64_t best = 0, best_size = 0, exact_anon = 0, file_exact = 0;
	int have_memfd = 0, have_exact_anon = 0, have_file = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "fill-ram: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t lo, hi;
		char perms[8] = "";
		int name_at = 0;
		const char *name;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &lo, &hi, perms,
			   &name_at) < 3)
			continue;
		name = name_at ? line + name_at : "";
		if (perms[0] != 'r' || perms[1] != 'w')
			continue;
		if (strstr(name, "/memfd:memory-backend-memfd") && hi - lo == size) {
			*addr = lo;
			have_memfd = 1;
			break;
		}
		if (perms[3] == 's' && name[0] == '/' && hi - lo == size && !have_file) {
			file_exact = lo;
			have_file = 1;
		}
		if (name[0] == '\n' || name[0] == '\0') {
			if (hi - lo == size && !have_exact_anon) {
				exact_anon = lo;
				have_exact_anon = 1;
			}
			if (hi - lo > best_size) {
				best_size = hi - lo;
				best = lo;
			}
		}
	}
	fclose(f);
	if (have_memfd)
		return 0;
	if (have_file) {
		*addr = file_exact;
		return 0;
	}
	if (have_exact_anon) {
		*addr = exact_anon;
		return 0;
	}
	if (best_size >= size) {
		*addr = best;
		return 0;
	}
	fprintf(stderr, "fill-ram: no guest RAM mapping of %" PRIu64 " bytes in %s\n", size, path);
	return -1;
}

#define MAX_SKIP 16
static uint64_t skip_lo[MAX_SKIP], skip_hi[MAX_SKIP];
static int nskip;

static int parse_skip(const char *arg)
{
	char *copy = strdup(arg), *tok, *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		if (!dash || nskip == MAX_SKIP)
			return -1;
		*dash = 0;
		skip_lo[nskip] = strtoull(tok, NULL, 0);
		skip_hi[nskip] = strtoull(dash + 1, NULL, 0);
		if (skip_lo[nskip] % PAGE || skip_hi[nskip] % PAGE || skip_hi[nskip] < skip_lo[nskip])
			return -1;
		nskip++;
	}
	free(copy);
	return 0;
}

static int skipped(uint64_t off)
{
	for (int i = 0; i < nskip; i++)
		if (off >= skip_lo[i] && off < skip_hi[i])
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t size, seed, addr, off, bad = 0, done = 0, *tmpl, *buf;
	int pid, fd, verify;
	char path[64];
	double t0;

	if (argc < 5 || argc > 6 || (strcmp(argv[1], "fill") && strcmp(argv[1], "verify"))) {
		fprintf(stderr, "usage: fill-ram fill|verify PID SIZE_BYTES SEED [START-END,...]\n");
		return 2;
	}
	verify = !strcmp(argv[1], "verify");
	pid = atoi(argv[2]);
	size = strtoull(argv[3], NULL, 0);
	seed = strtoull(argv[4], NULL, 0) | 1;
	if (parse_skip(argc == 6 ? argv[5] : "0-0x100000")) {
		fprintf(stderr, "fill-ram: bad skip list (START-END,..., 4 KiB aligned)\n");
		return 2;
	}
	if (!size || size % CHUNK) {
		fprintf(stderr, "fill-ram: SIZE must be a multiple of 2 MiB\n");
		return 2;
	}
	if (find_ram(pid, size, &addr))
		return 2;

	tmpl = aligned_alloc(PAGE, CHUNK);
	buf = aligned_alloc(PAGE, CHUNK);
	if (!tmpl || !buf)
		return 2;
	{
		uint64_t s = seed * 0x9E3779B97F4A7C15ull | 1;
		for (size_t i = 0; i < CHUNK / 8; i++) {
			uint64_t v = xorshift(&s);
			tmpl[i] = v ? v : 1;
		}
	}

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, verify ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "fill-ram: %s: %s\n", path, strerror(errno));
		return 2;
	}

	t0 = now();
	for (uint64_t base = 0; base < size; base += CHUNK) {
		/* Page stamps for this chunk. */
		for (uint64_t p = 0; p < CHUNK; p += PAGE)
			tmpl[p / 8] = ((base + p) ^ seed) | 1;
		/* Runs of pages not skipped. */
		for (off = base; off < base + CHUNK;) {
			uint64_t end;
			ssize_t n;

			if (skipped(off)) {
				off += PAGE;
				continue;
			}
			for (end = off + PAGE; end < base + CHUNK && !skipped(end); end += PAGE)
				;
			if (verify) {
				n = pread(fd, buf, end - off, addr + off);
				if (n != (ssize_t)(end - off)) {
					fprintf(stderr, "fill-ram: pread at 0x%" PRIx64 ": %s\n", addr + off,
						n < 0 ? strerror(errno) : "short read");
					return 2;
				}
				for (uint64_t p = 0; p < end - off; p += PAGE)
					if (memcmp((char *)buf + p, (char *)tmpl + (off - base) + p, PAGE))
						bad++;
			} else {
				n = pwrite(fd, (char *)tmpl + (off - base), end - off, addr + off);
				if (n != (ssize_t)(end - off)) {
					fprintf(stderr, "fill-ram: pwrite at 0x%" PRIx64 ": %s\n", addr + off,
						n < 0 ? strerror(errno) : "short write");
					return 2;
				}
			}
			done += end - off;
			off = end;
		}
	}
	printf("mode=%s addr=0x%" PRIx64 " bytes=%" PRIu64 " seconds=%.3f", argv[1], addr, done,
	       now() - t0);
	if (verify)
		printf(" bad_pages=%" PRIu64, bad);
	printf("\n");
	close(fd);
	return bad ? 1 : 0;
}
