// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

static int tap_n;		/* checks printed */
static int tap_failed;
static int tap_planned;
static const char *case_name = "";
static int case_left;		/* checks the current case still owes */

void tap_plan(int n)
{
	tap_planned = n;
	printf("TAP version 13\n1..%d\n", n);
	fflush(stdout);
}

void tap_case_begin(const char *name, int checks)
{
	case_name = name;
	case_left = checks;
	printf("# case %s (%d checks)\n", name, checks);
	fflush(stdout);
}

int tap_n_left(void)
{
	return case_left;
}

static void vresult(bool ok, const char *fmt, va_list ap)
{
	tap_n++;
	if (!ok)
		tap_failed++;
	printf("%s %d - %s: ", ok ? "ok" : "not ok", tap_n, case_name);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	if (--case_left < 0)
		printf("# BUG: case %s makes more checks than it declared\n",
		       case_name);
}

bool tap_check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vresult(ok, fmt, ap);
	va_end(ap);
	return ok;
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

bool tap_errno(bool failed, int got_errno, int want, const char *fmt, ...)
{
	bool ok = failed && got_errno == want;
	va_list ap;

	if (!ok)
		tap_diag("want failure with %s, got %s (%s)", strerrorname_np(want),
			 failed ? "failure" : "success",
			 failed ? (strerrorname_np(got_errno) ?: "?") : "-");
	va_start(ap, fmt);
	vresult(ok, fmt, ap);
	va_end(ap);
	return ok;
}

void tap_case_end(void)
{
	while (case_left > 0)
		tap_check(false, "not reached (an earlier check of the case failed)");
	case_left = 0;
}

int tap_exit(void)
{
	if (tap_n != tap_planned) {
		printf("# BUG: planned %d checks, made %d\n", tap_planned, tap_n);
		return 1;
	}
	printf("# %d checks, %d failed\n", tap_n, tap_failed);
	return tap_failed ? 1 : 0;
}
