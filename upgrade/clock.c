#include "upgrade/clock.h"

#include <time.h>

static uint64_t start_us;

uint64_t qu_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t qu_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((constructor)) static void clock_init(void) { start_us = qu_now_us(); }

double qu_ms_since_start(void) { return (double)(qu_now_us() - start_us) / 1000.0; }

int qu_ms_left(uint64_t deadline_us)
{
	uint64_t now = qu_now_us();
	if (now >= deadline_us)
		return 0;
	uint64_t ms = (deadline_us - now + 999) / 1000;
	return ms > 1000000 ? 1000000 : (int)ms;
}
