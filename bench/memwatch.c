/* memwatch: sample MemAvailable from /proc/meminfo every INTERVAL_US microseconds.
 *
 *   memwatch [INTERVAL_US]      (default 5000)
 *
 * It first samples for BASELINE_MS (250 ms) and takes the median as the baseline, then
 * prints "ready" on stdout and keeps sampling. On SIGTERM or SIGINT it prints one line
 *
 *   baseline_kb=B min_kb=M peak_extra_kb=B-M samples=N max_gap_us=G
 *   held_baseline_kb=HB held_max_kb=HM held_extra_kb=HM-HB
 *   free_baseline_kb=FB free_min_kb=FM free_extra_kb=FB-FM
 *   pcp_baseline_kb=PB pcp_at_min_kb=PM
 *
 * (one line) and exits. max_gap_us is the largest interval seen between two samples after
 * "ready" (the sampler competes for the CPU with what it measures). "held" is AnonPages +
 * Shmem, the memory processes hold (anonymous and shared/memfd pages), sampled with the
 * same reads: unlike MemAvailable it leaves out kernel memory that is not itemized. "free"
 * is MemFree plus the free pages parked on the page allocator's per-CPU lists (the `count:`
 * lines of /proc/zoneinfo, read right after /proc/meminfo in every sample; "pcp"): every
 * free page, which MemFree and MemAvailable are not. pcp_at_min_kb is the per-CPU lists at
 * the lowest MemAvailable.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BASELINE_MS 250

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long field_kb(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);
	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static long last_memfree = -1;

/* MemAvailable, and AnonPages + Shmem in *held (-1 if missing); MemFree in last_memfree. */
static long mem_available_kb(int fd, long *held)
{
	char buf[8192];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long anon, shmem;

	*held = -1;
	if (n <= 0)
		return -1;
	buf[n] = 0;
	anon = field_kb(buf, "\nAnonPages:");
	last_memfree = field_kb(buf, "\nMemFree:");
	shmem = field_kb(buf, "\nShmem:");
	if (anon >= 0 && shmem >= 0)
		*held = anon + shmem;
	return field_kb(buf, "MemAvailable:");
}

/* The free pages on the per-CPU lists of every zone, kB (-1 if unreadable): the sum of the
 * "count:" lines of /proc/zoneinfo (pages). */
static long pcp_kb(int fd)
{
	static char buf[1 << 16];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pages = 0;
	const char *p;

	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (p = buf; (p = strstr(p, "count:")); p += 6)
		pages += strtol(p + 6, NULL, 10);
	return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long interval = argc > 1 ? atol(argv[1]) : 5000;
	enum { NB = BASELINE_MS * 1000 / 100 + 1 };
	long base[NB], hbase[NB], fbase[NB], pbase[NB];
	long baseline, min = -1, v, h, p, hbaseline = -1, hmax = -1;
	long fbaseline = -1, fmin = -1, pbaseline = -1, pmin = -1;
	size_t nbase = 0, nhbase = 0, nfbase = 0;
	long long t0, last, gap = 0, samples = 0;
	struct timespec ts = {interval / 1000000, (interval % 1000000) * 1000};
	struct sigaction sa;
	int fd, zfd;

	if (interval < 100)
		interval = 100;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	fd = open("/proc/meminfo", O_RDONLY);
	if (fd < 0) {
		perror("memwatch: /proc/meminfo");
		return 2;
	}
	zfd = open("/proc/zoneinfo", O_RDONLY); /* optional: -1 leaves "free" out */

	t0 = now_us();
	while (now_us() - t0 < BASELINE_MS * 1000LL && nbase < NB) {
		v = mem_available_kb(fd, &h);
		p = zfd >= 0 ? pcp_kb(zfd) : -1;
		if (v >= 0)
			base[nbase++] = v;
		if (h >= 0)
			hbase[nhbase++] = h;
		if (p >= 0 && last_memfree >= 0) {
			fbase[nfbase] = last_memfree + p;
			pbase[nfbase++] = p;
		}
		nanosleep(&ts, NULL);
	}
	if (!nbase)
		return 2;
	qsort(base, nbase, sizeof(base[0]), cmp_long);
	baseline = base[nbase / 2];
	if (nhbase) {
		qsort(hbase, nhbase, sizeof(hbase[0]), cmp_long);
		hbaseline = hbase[nhbase / 2];
	}
	if (nfbase) {
		qsort(fbase, nfbase, sizeof(fbase[0]), cmp_long);
		qsort(pbase, nfbase, sizeof(pbase[0]), cmp_long);
		fbaseline = fbase[nfbase / 2];
		pbaseline = pbase[nfbase / 2];
	}

	printf("ready\n");
	fflush(stdout);

	last = now_us();
	while (!stop) {
		long long t;

		v = mem_available_kb(fd, &h);
		p = zfd >= 0 ? pcp_kb(zfd) : -1;
		if (v >= 0) {
			if (min < 0 || v < min) {
				min = v;
				pmin = p;
			}
			samples++;
		}
		if (h > hmax)
			hmax = h;
		if (p >= 0 && last_memfree >= 0 && (fmin < 0 || last_memfree + p < fmin))
			fmin = last_memfree + p;
		t = now_us();
		if (t - last > gap)
			gap = t - last;
		last = t;
		nanosleep(&ts, NULL);
	}
	if (min < 0)
		min = baseline;
	if (hmax < 0)
		hmax = hbaseline;
	if (fmin < 0)
		fmin = fbaseline;
	printf("baseline_kb=%ld min_kb=%ld peak_extra_kb=%ld samples=%lld max_gap_us=%lld "
	       "held_baseline_kb=%ld held_max_kb=%ld held_extra_kb=%ld "
	       "free_baseline_kb=%ld free_min_kb=%ld free_extra_kb=%ld "
	       "pcp_baseline_kb=%ld pcp_at_min_kb=%ld\n",
	       baseline, min, baseline - min, samples, gap, hbaseline, hmax,
	       hbaseline >= 0 ? hmax - hbaseline : 0, fbaseline, fmin,
	       fbaseline >= 0 ? fbaseline - fmin : 0, pbaseline, pmin);
	return 0;
}
