/*
 * sendfilectl.c - main(), the command table and the helpers the commands
 * share.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sendfilectl.h"
#include "sendfiled.h"

static const struct sfctl_command commands[] = {
        {"send",
         "[--offset N] [--count N] [--no-fallback] [--timeout-ms N] [--json] FILE HOST:PORT",
         "send FILE to a TCP peer through the daemon", sfctl_cmd_send},
        {"status", "[--json]", "the daemon's version, pid, state and live counts",
         sfctl_cmd_status},
        {"stats", "[--json]", "counters: connections, requests, bytes, by status, method, uid",
         sfctl_cmd_stats},
        {"list", "[--json]", "the transfers in flight", sfctl_cmd_list},
        {"cancel", "TRANSFER", "cancel a transfer by the id 'list' shows", sfctl_cmd_cancel},
        {"drain", "", "stop accepting, finish transfers in flight, exit", sfctl_cmd_drain},
        {"watch", "[--json] [--count N]", "stream transfer events as they happen", sfctl_cmd_watch},
        {"metrics", "", "counters in Prometheus text exposition format", sfctl_cmd_metrics},
        {"log-level", "LEVEL", "set the log level (err, warning, notice, info, debug)",
         sfctl_cmd_log_level},
        {"limits", "[--json]", "the daemon's limits and allow-lists", sfctl_cmd_limits},
        {"ping", "[--json]", "who answers on the data socket: protocol, version, optional features",
         sfctl_cmd_ping},
};

static void
usage(FILE *f)
{
	fprintf(f, "Usage: sendfilectl [OPTIONS] COMMAND [ARGS...]\n"
	           "       sendfilectl --help | --version\n"
	           "\n"
	           "The command-line client of sendfiled, the zero-copy file sending daemon.\n"
	           "\n"
	           "Options:\n"
	           "  -s, --socket PATH  the daemon's data socket (default: $SENDFILED_SOCKET,\n"
	           "                     else $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock if it\n"
	           "                     exists, else /run/sendfiled/sendfiled.sock)\n"
	           "  -c, --control PATH the control socket (default: beside the data socket,\n"
	           "                     NAME.control.sock for NAME.sock, control.sock for\n"
	           "                     sendfiled.sock)\n"
	           "  -e, --events PATH  the events socket (default: NAME.events.sock, or\n"
	           "                     events.sock for sendfiled.sock)\n"
	           "  -t, --timeout-ms N how long to wait for the control plane, or for the\n"
	           "                     answer to 'ping' (default 5000)\n"
	           "  -h, --help         show this help\n"
	           "  -V, --version      show the version\n"
	           "\n"
	           "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s %s\n      %s\n", commands[i].name, commands[i].synopsis,
		        commands[i].summary);
	fprintf(f, "\n"
	           "The options above may also follow the command; after 'send', --timeout-ms\n"
	           "and -t are the transfer's own (see 'sendfilectl send --help').\n"
	           "Run 'sendfilectl COMMAND --help' for a command's options, and\n"
	           "'man sendfilectl' for more.\n"
	           "\n"
	           "Exit status: 0 success, 1 the daemon answered with an error, 2 usage error,\n"
	           "3 the daemon could not be reached, 4 a local file or destination could not\n"
	           "be opened.\n");
}

int
sfctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("sendfilectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'sendfilectl%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
	return SFCTL_EXIT_USAGE;
}

void
sfctl_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sendfilectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
sfctl_parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	/* strtoull() would accept "-1" (as 2^64 - 1), blanks and a sign. */
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

const char *
sfctl_socket_path(const struct sfctl_global *g, char *buf, size_t size)
{
	if (g->socket_path)
		return g->socket_path;
	if (sfd_default_socket_path(buf, size) < 0)
		return "(default path too long)";
	return buf;
}

void
sfctl_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int
sfctl_global_option(struct sfctl_global *g, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case 's':
		g->socket_path = arg;
		return 0;
	case 'c':
		g->control_path = arg;
		return 0;
	case 'e':
		g->events_path = arg;
		return 0;
	case 't':
		if (sfctl_parse_u64(arg, &v) < 0 || v > 3600000) {
			sfctl_usage_error(NULL, "bad --timeout-ms '%s' (0..3600000)", arg);
			return -EINVAL;
		}
		g->timeout_ms = (int)v;
		return 0;
	default:
		return -ENOENT;
	}
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
	        SFCTL_GLOBAL_OPTIONS,
	        SFCTL_GLOBAL_TIMEOUT,
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	struct sfctl_global g = {.timeout_ms = 5000};
	int o, r;

	/* "+": stop at the command's name; what follows is the command's to
	 * parse (the global options included). */
	while ((o = getopt_long(argc, argv, "+" SFCTL_GLOBAL_SHORT "t:hV", options, NULL)) != -1) {
		r = sfctl_global_option(&g, o, optarg);
		if (r == -EINVAL)
			return SFCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		switch (o) {
		case 'h':
			usage(stdout);
			return SFCTL_EXIT_OK;
		case 'V':
			printf("sendfilectl %s\n", SFD_VERSION);
			return SFCTL_EXIT_OK;
		default:
			/* getopt has said what was wrong. */
			fputs("Try 'sendfilectl --help'.\n", stderr);
			return SFCTL_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return sfctl_usage_error(NULL, "no command given");

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		argc -= optind;
		argv += optind;
		/* 0, not 1: glibc then starts afresh on the new vector. */
		optind = 0;
		return commands[i].run(&g, argc, argv);
	}
	return sfctl_usage_error(NULL, "unknown command '%s'", argv[optind]);
}
