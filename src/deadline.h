/* deadline: monotonic-clock deadlines for bounded waits. */
#ifndef POSTBOTE_DEADLINE_H
#define POSTBOTE_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
static inline int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Deadline timeout_ms from now; a timeout of 0 or less means "none". */
static inline int64_t deadline_after(int timeout_ms)
{
	return timeout_ms > 0 ? monotonic_ms() + timeout_ms : 0;
}

/* Milliseconds left for poll(): -1 for no deadline, 0 once it passed. */
static inline int deadline_left(int64_t deadline)
{
	int64_t left;
	if (deadline == 0)
		return -1;
	left = deadline - monotonic_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

#endif
