/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A TAP 13 producer whose plan comes first.
 *
 * Every test case states how many checks it makes (tap_case_begin()); the
 * plan is the sum over the cases that run. A case that has to stop early
 * (a prerequisite failed) ends with tap_case_end(), which reports each check
 * it did not reach as "not ok ... not reached", so the numbering and the plan
 * always agree and a missing check is never a silent pass.
 */
#ifndef VELA_RDMA_TAP_H
#define VELA_RDMA_TAP_H

#include <stdbool.h>

void tap_plan(int n);
/* Starts a case that makes exactly @checks checks. */
void tap_case_begin(const char *name, int checks);
/* Ends the current case, reporting its unreached checks as failures. */
void tap_case_end(void);
/* Checks the current case still owes. */
int tap_n_left(void);
/* One check: prints ok/not ok and returns @ok. */
bool tap_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A diagnostic line (# ...). */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Checks that a call failed (@ret non-zero or NULL) with @want as errno. */
bool tap_errno(bool failed, int got_errno, int want, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Exits with 0 when every check passed and the plan was met, 1 otherwise. */
int tap_exit(void);

#endif
