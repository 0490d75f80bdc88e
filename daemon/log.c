#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* Set from the control plane on loop 0, read by every loop: relaxed atomics. */
static int max_level = LOG_NOTICE;
static bool journal;

static const char *const names[] = {"emerg",   "alert",  "crit", "err",
                                    "warning", "notice", "info", "debug"};

void
log_setup(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	/* Only trust JOURNAL_STREAM if it really describes our stderr: a
	 * child of a journald-connected process may have inherited it. */
	if (js && sscanf(js, "%lu:%lu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    st.st_dev == dev && st.st_ino == ino)
		journal = true;
}

void
log_set_level(int level)
{
	__atomic_store_n(&max_level, level, __ATOMIC_RELAXED);
}

int
log_get_level(void)
{
	return __atomic_load_n(&max_level, __ATOMIC_RELAXED);
}

const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_DEBUG)
		return "?";
	return names[level];
}

int
log_parse_level(const char *s)
{
	char *end;
	long v;

	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	if (strcmp(s, "error") == 0)
		return LOG_ERR;
	if (strcmp(s, "warn") == 0)
		return LOG_WARNING;
	v = strtol(s, &end, 10);
	if (*s && !*end && v >= 0 && v <= LOG_DEBUG)
		return (int)v;
	return -1;
}

void
log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > __atomic_load_n(&max_level, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (journal)
		fprintf(stderr, "<%d>%s\n", level, line);
	else
		fprintf(stderr, "sendfiled: %s: %s\n", names[level], line);
}
