/*
 * test-size.c - byte counts: the suffixes, what is refused, the edges of
 * 64 bits, and the form sendfilectl prints them in; durations with their
 * units (sendfilectl send --deadline, --idle-timeout).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>

#include "size.h"
#include "helpers.h"

static uint64_t
parsed(const char *s)
{
	uint64_t v = 0;

	assert_int_equal(size_parse(s, &v), 0);
	return v;
}

static void
test_plain_and_suffixes(void **state)
{
	assert_int_equal(parsed("0"), 0);
	assert_int_equal(parsed("4096"), 4096);
	assert_int_equal(parsed("1k"), 1024);
	assert_int_equal(parsed("512K"), 512 << 10);
	assert_int_equal(parsed("1M"), 1 << 20);
	assert_int_equal(parsed("2m"), 2 << 20);
	assert_int_equal(parsed("3G"), UINT64_C(3) << 30);
	assert_int_equal(parsed("1g"), UINT64_C(1) << 30);
	assert_int_equal(parsed("18446744073709551615"), UINT64_MAX);
	/* Leading zeros are digits like any other: not octal. */
	assert_int_equal(parsed("010"), 10);
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
	        "",   "K",    "-1",  "+1", " 1",  "1 ",  "1KB", "1KiB",  "1.5M",
	        "1T", "0x10", "1MM", "M1", "1e3", "ten", "1,0", "1_000",
	};
	uint64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (size_parse(bad[i], &v) != -EINVAL)
			fail_msg("'%s' was not refused with -EINVAL", bad[i]);
		/* Written only on success. */
		assert_int_equal(v, 42);
	}
}

static void
test_too_large(void **state)
{
	uint64_t v = 42;

	assert_int_equal(size_parse("18446744073709551616", &v), -ERANGE);
	/* 2^34 G is 2^64: one past the largest. */
	assert_int_equal(size_parse("17179869184G", &v), -ERANGE);
	assert_int_equal(size_parse("18014398509481984K", &v), -ERANGE);
	assert_int_equal(v, 42);
	assert_int_equal(parsed("17179869183G"), UINT64_C(17179869183) << 30);
}

static void
test_format(void **state)
{
	char buf[SIZE_FORMAT_MAX];

	assert_string_equal(size_format(0, buf), "0 B");
	assert_string_equal(size_format(1023, buf), "1023 B");
	assert_string_equal(size_format(1024, buf), "1.00 KiB");
	assert_string_equal(size_format(1536, buf), "1.50 KiB");
	assert_string_equal(size_format(100 << 10, buf), "100 KiB");
	assert_string_equal(size_format(1023 << 10, buf), "1.00 MiB");
	assert_string_equal(size_format(UINT64_C(12) << 20, buf), "12.0 MiB");
	assert_string_equal(size_format(UINT64_C(3) << 30, buf), "3.00 GiB");
	assert_string_equal(size_format(UINT64_MAX, buf), "16.0 EiB");
}

static void
test_durations(void **state)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {
	        {"0ms", 0},
	        {"500ms", 500},
	        {"1s", 1000},
	        {"10s", 10000},
	        {"2m", 120000},
	        {"1h", 3600000},
	        {"86400000ms", 86400000},
	};
	static const char *const bad[] = {"",    "10", "ms",   "-1s", " 1s",  "1s ", "1.5s",
	                                  "1 s", "1S", "1sec", "1d",  "1ms1", "s10"};
	uint64_t ms = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(duration_parse(good[i].s, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 7;
		assert_int_equal(duration_parse(bad[i], &ms), -EINVAL);
		/* Written only on success. */
		assert_int_equal(ms, 7);
	}
	assert_int_equal(duration_parse("18446744073709551615h", &ms), -ERANGE);
	assert_int_equal(duration_parse("99999999999999999999ms", &ms), -ERANGE);
	assert_int_equal(ms, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_plain_and_suffixes), fd_test(test_refused),
	        fd_test(test_too_large),          fd_test(test_format),
	        fd_test(test_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
