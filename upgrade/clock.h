/* Monotonic time in the units the report uses, and deadlines for every wait. */
#ifndef QU_CLOCK_H
#define QU_CLOCK_H

#include <stdint.h>

uint64_t qu_now_us(void);
/* The host's wall clock in microseconds: what QEMU stamps its events with, and what a state
 * file read by another process can compare. */
int64_t qu_wall_us(void);
double qu_ms_since_start(void);
/* Milliseconds left until deadline_us (0 when passed), capped for poll(). */
int qu_ms_left(uint64_t deadline_us);

#endif
