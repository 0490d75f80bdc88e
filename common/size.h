/*
 * size - byte counts as people write them: "4096", "512K", "2M", "1G".
 *
 * One grammar for the daemon's options and configuration file (chunk_size)
 * and for sendfilectl's --offset and --count, so that a size accepted by one
 * is accepted by the other.
 */
#ifndef SFD_SIZE_H
#define SFD_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * size_parse() - decimal digits, then optionally one binary suffix: K (2^10),
 * M (2^20) or G (2^30), in either case. Nothing else: no blanks, no sign, no
 * fraction, no "B".
 * Return: 0 and *ret_size; -EINVAL for anything else; -ERANGE when the value
 * does not fit in 64 bits.
 */
int size_parse(const char *s, uint64_t *ret_size);

/*
 * duration_parse() - decimal digits, then one unit: ms, s, m (minutes) or h,
 * as in "500ms", "10s", "2m". A unit is required: a bare number could mean
 * either milliseconds or seconds.
 * Return: 0 and *ret_ms; -EINVAL for anything else; -ERANGE when the
 * value in milliseconds does not fit in 64 bits.
 */
int duration_parse(const char *s, uint64_t *ret_ms);

/* Room for any size_format() result, terminating NUL included. */
#define SIZE_FORMAT_MAX 16

/*
 * size_format() - @bytes for people: "512 B", "1.5 KiB", "12.0 MiB", "3.20 GiB"
 * (three significant digits at most, binary units up to EiB).
 * Return: @buf, which holds at least SIZE_FORMAT_MAX bytes.
 */
const char *size_format(uint64_t bytes, char *buf);

#endif
