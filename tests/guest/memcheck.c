/* memcheck: guest workload that checks its own memory.
 *
 * It fills N MiB with a pattern that depends on (generation, page, word),
 * then forever re-reads every word, expecting the previous generation's value,
 * and writes the next one.  A live upgrade that loses or mixes up guest pages
 * shows up as errors; a long pause of the guest shows up as maxstall_ms.
 * Output goes to stdout (the serial console), one status line per ~second. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_WORDS (4096 / sizeof(uint64_t))
#define BATCH_PAGES 64     /* reading the clock per page would slow TCG down */
#define MAX_CORRUPT_LINES 10

/* splitmix64 finaliser: neighbouring pages/generations get unrelated values,
 * so a page swapped with another page or a stale copy is detected. */
static uint64_t pattern(uint64_t gen, uint64_t page, uint64_t word)
{
	uint64_t x = gen * 0x9e3779b97f4a7c15ULL ^ page * 0xbf58476d1ce4e5b9ULL ^
		     word * 0x94d049bb133111ebULL;
	x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27; x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x ? x : 1;  /* never zero: a zeroed page must count as corrupt */
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? strtol(argv[1], NULL, 0) : 32;
	if (mib <= 0) {
		fprintf(stderr, "usage: memcheck [MiB]\n");
		return 2;
	}
	size_t pages = (size_t)mib * 256;
	uint64_t *mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("memcheck: mmap");
		return 1;
	}

	uint64_t errors = 0, corrupt_lines = 0, max_stall = 0;
	uint64_t last = now_ns(), last_print = last;

	for (uint64_t gen = 1;; gen++) {
		for (size_t p = 0; p < pages; p++) {
			uint64_t *w = mem + p * PAGE_WORDS;
			for (size_t i = 0; i < PAGE_WORDS; i++) {
				/* generation 1 only writes: nothing to compare yet */
				if (gen > 1 && w[i] != pattern(gen - 1, p, i)) {
					errors++;
					if (corrupt_lines++ < MAX_CORRUPT_LINES) {
						printf("MEMCHECK CORRUPT page=%zu word=%zu expected=%016" PRIx64
						       " got=%016" PRIx64 "\n", p, i, pattern(gen - 1, p, i), w[i]);
						fflush(stdout);
					}
				}
				w[i] = pattern(gen, p, i);
			}
			if ((p + 1) % BATCH_PAGES && p + 1 != pages)
				continue;
			uint64_t t = now_ns();
			if (t - last > max_stall)
				max_stall = t - last;
			last = t;
			if (t - last_print >= 1000000000ULL) {
				printf("MEMCHECK pass=%" PRIu64 " errors=%" PRIu64 " maxstall_ms=%" PRIu64
				       " mib=%ld\n", gen - 1, errors, max_stall / 1000000, mib);
				fflush(stdout);
				last_print = t;
			}
		}
		if (gen == 1) {
			printf("MEMCHECK READY mib=%ld\n", mib);
			fflush(stdout);
		}
	}
}
