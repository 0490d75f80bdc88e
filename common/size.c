/*
 * size.c - byte counts with binary suffixes, parsed and printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"

_Static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "strtoull() reads 64 bits");

int
size_parse(const char *s, uint64_t *ret_size)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	/* Digits first: strtoull() would take blanks, a sign and "-1". */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = UINT64_C(1) << 10;
		break;
	case 'm':
	case 'M':
		mult = UINT64_C(1) << 20;
		break;
	case 'g':
	case 'G':
		mult = UINT64_C(1) << 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret_size = (uint64_t)v * mult;
	return 0;
}

int
duration_parse(const char *s, uint64_t *ret_ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}};
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -ERANGE;
		*ret_ms = (uint64_t)v * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

const char *
size_format(uint64_t bytes, char *buf)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, SIZE_FORMAT_MAX, "%u B", (unsigned)bytes);
		return buf;
	}
	v /= 1024;
	/* 1023.9 KiB would print as "1024 KiB": move up before rounding does. */
	while (v >= 999.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (v < 9.995)
		snprintf(buf, SIZE_FORMAT_MAX, "%.2f %s", v, units[u]);
	else if (v < 99.95)
		snprintf(buf, SIZE_FORMAT_MAX, "%.1f %s", v, units[u]);
	else
		snprintf(buf, SIZE_FORMAT_MAX, "%.0f %s", v, units[u]);
	return buf;
}
