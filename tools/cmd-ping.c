/*
 * cmd-ping.c - `sendfilectl ping`: ask the daemon's data socket who answers,
 * as a client program would (sfd_client_ping()): the protocol version, the
 * daemon's version and the optional features it implements. Unlike `status`,
 * it needs no access to the control plane, only to the data socket, so it
 * tells a user whether the daemon will serve them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sendfilectl.h"
#include "sendfiled.h"

/* enum sfd_feature by name, in the order of the values. */
static const struct {
	int feature;
	const char *name;
} features[] = {
        {SFD_FEATURE_DEADLINE, "deadline"},
        {SFD_FEATURE_RATE_LIMIT, "rate_limit"},
        {SFD_FEATURE_CLOSE_WHEN_DONE, "close_when_done"},
        {SFD_FEATURE_IDLE_TIMEOUT, "idle_timeout"},
};

static void
print_json(const struct sfd_ping_info *info)
{
	bool first = true;

	printf("{\"protocol_version\":%u,\"daemon_version\":", info->protocol_version);
	sfctl_json_string(stdout, info->daemon_version);
	printf(",\"features\":[");
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		if (!(info->features & (1u << features[i].feature)))
			continue;
		printf("%s\"%s\"", first ? "" : ",", features[i].name);
		first = false;
	}
	printf("]}\n");
}

static void
print_human(const struct sfd_ping_info *info, const char *socket)
{
	bool any = false;

	printf("sendfiled %s answers on %s, protocol %u\n",
	       info->daemon_version[0] ? info->daemon_version : "(version not given)", socket,
	       info->protocol_version);
	printf("features:");
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		if (!(info->features & (1u << features[i].feature)))
			continue;
		printf(" %s", features[i].name);
		any = true;
	}
	printf("%s\n", any ? "" : " none");
}

int
sfctl_cmd_ping(struct sfctl_global *g, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     SFCTL_GLOBAL_OPTIONS,
	                                     SFCTL_GLOBAL_TIMEOUT,
	                                     {0}};
	struct sfd_ping_info info;
	struct sfd_client *c = NULL;
	char path[4096];
	const char *where;
	bool json = false;
	int o, r;

	while ((o = getopt_long(argc, argv, "jh" SFCTL_GLOBAL_SHORT "t:", opts, NULL)) != -1) {
		r = sfctl_global_option(g, o, optarg);
		if (r == -EINVAL)
			return SFCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		if (o == 'j') {
			json = true;
		} else if (o == 'h') {
			printf("Usage: sendfilectl ping [--json]\n"
			       "Ask the daemon's data socket who answers: the protocol version, "
			       "the\n"
			       "daemon's version and the optional features it implements. Waits up "
			       "to\n"
			       "--timeout-ms (default 5000).\n");
			return SFCTL_EXIT_OK;
		} else {
			fprintf(stderr, "Try 'sendfilectl ping --help'.\n");
			return SFCTL_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return sfctl_usage_error("ping", "unexpected argument");

	where = sfctl_socket_path(g, path, sizeof(path));
	r = sfd_client_open(g->socket_path, &c);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		sfctl_error("no daemon at %s (%s: is sendfiled running?)", where,
		            r == -ENOENT ? "no such socket" : "nothing listens on it");
		return SFCTL_EXIT_UNREACHABLE;
	}
	if (r < 0) {
		sfctl_error("cannot reach the daemon at %s: %s", where, strerror(-r));
		return SFCTL_EXIT_UNREACHABLE;
	}
	r = sfd_client_ping(c, g->timeout_ms, &info);
	sfd_client_free(c);
	if (r == -EACCES) {
		sfctl_error("the daemon at %s does not serve this user", where);
		return SFCTL_EXIT_UNREACHABLE;
	}
	if (r == -ETIMEDOUT) {
		sfctl_error("the daemon at %s did not answer within %d ms", where, g->timeout_ms);
		return SFCTL_EXIT_UNREACHABLE;
	}
	if (r < 0) {
		sfctl_error("lost the daemon at %s: %s", where, strerror(-r));
		return SFCTL_EXIT_UNREACHABLE;
	}
	if (json)
		print_json(&info);
	else
		print_human(&info, where);
	return SFCTL_EXIT_OK;
}
