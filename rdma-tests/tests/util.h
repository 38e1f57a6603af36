/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by the RDMA tests and benchmarks. */
#ifndef VELA_RDMA_UTIL_H
#define VELA_RDMA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * A xorshift byte stream from @seed: the side that checks a transfer computes
 * the same stream on its own, in another process or another machine.
 */
static inline void pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	size_t i;

	if (!x)
		x = 1;
	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = x >> 7;
	}
}

#endif
