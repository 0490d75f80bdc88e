/*
 * log - the daemon's only logger. Lines go to stderr; under systemd
 * (JOURNAL_STREAM names our stderr) each line starts with a <N> priority
 * prefix that journald turns into the entry's priority.
 */
#ifndef SFD_LOG_H
#define SFD_LOG_H

#include <syslog.h>

void log_setup(void);
void log_set_level(int level);
int log_get_level(void);
/* log_parse_level() - "err", "warning", "notice", "info", "debug" or 0..7. */
int log_parse_level(const char *s);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
