/*
 * cmd-send.c - `sendfilectl send`: open a file and a TCP connection, and have
 * the daemon send the one to the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"
#include "sendfilectl.h"
#include "size.h"
#include "wire.h"
#include "sendfiled.h"

struct send_opts {
	uint64_t offset;
	uint64_t count; /* 0: to end of file */
	unsigned flags;
	int timeout_ms;
	struct sfd_options limits;
	bool json;
	bool no_progress;
	bool handoff; /* give the transfer away: the daemon finishes it alone */
	const char *file;
	const char *dest;
};

static void
usage(FILE *f)
{
	fprintf(f, "Usage: sendfilectl send [OPTIONS] FILE HOST:PORT\n"
	           "\n"
	           "Send FILE to a TCP peer through the daemon: sendfilectl opens both, and the\n"
	           "daemon copies the bytes zero-copy. Write an IPv6 address in brackets:\n"
	           "[::1]:8080.\n"
	           "\n"
	           "Options:\n"
	           "  -o, --offset N      start at byte N of FILE (default 0)\n"
	           "  -n, --count N       send N bytes (default: to the end of FILE)\n"
	           "                      N is in bytes, or with a suffix: 4K, 1M, 2G (binary)\n"
	           "      --no-fallback   fail rather than copy through user space when no\n"
	           "                      zero-copy method applies\n"
	           "  -t, --timeout-ms N  cancel the transfer after N milliseconds (default: -1,\n"
	           "                      wait for ever)\n"
	           "      --handoff       hand the transfer to the daemon and print its id; the\n"
	           "                      transfer goes on after sendfilectl exits (with a\n"
	           "                      progress line on a terminal, until it ends)\n"
	           "      --shut-wr       with --handoff: the daemon shuts the connection's write\n"
	           "                      side down after the last byte\n"
	           "      --deadline D    the daemon ends the transfer D after it received it\n"
	           "                      (TIMED_OUT); D is 500ms, 10s, 2m or 1h\n"
	           "      --idle-timeout D  the daemon ends it after D without a byte moving\n"
	           "      --rate SIZE/s   at most SIZE bytes per second (4M/s; binary suffixes)\n"
	           "      --rate-after SIZE  send SIZE bytes at full speed first (needs --rate)\n"
	           "  -j, --json          print the daemon's answer as one JSON object on stdout\n"
	           "      --no-progress   no progress line (there is one only when stderr is a\n"
	           "                      terminal and the control plane answers)\n"
	           "  -h, --help          show this help\n"
	           "  -s, -c, -e          the global options (sendfilectl --help), here too\n");
}

/*
 * Split "host:port" or "[v6 address]:port" in place. A bare IPv6 address is
 * refused: its last colon could be part of it.
 */
static int
split_dest(char *spec, char **ret_host, char **ret_port)
{
	char *host, *colon;

	if (spec[0] == '[') {
		char *close = strchr(spec, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		host = spec + 1;
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || memchr(spec, ':', (size_t)(colon - spec)))
			return -EINVAL;
		host = spec;
	}
	*colon = '\0';
	if (!*host || !colon[1])
		return -EINVAL;
	*ret_host = host;
	*ret_port = colon + 1;
	return 0;
}

/* A copy of @dest split by split_dest(). Return: 0, or -EINVAL. */
static int
parse_dest(const char *dest, char *spec, size_t size, char **ret_host, char **ret_port)
{
	if (snprintf(spec, size, "%s", dest) >= (int)size)
		return -EINVAL;
	return split_dest(spec, ret_host, ret_port);
}

/* What is wrong with the form of @dest, or NULL. A port in digits is
 * checked here; a service name ("http") is left to the resolver. */
static const char *
dest_problem(const char *dest)
{
	char spec[NI_MAXHOST + NI_MAXSERV + 4];
	char *host, *port;
	uint64_t v;

	if (parse_dest(dest, spec, sizeof(spec), &host, &port) < 0)
		return "expected HOST:PORT or [IPV6]:PORT";
	if (strchr("0123456789+-", *port) && (sfctl_parse_u64(port, &v) < 0 || v < 1 || v > 65535))
		return "the port must be 1..65535";
	return NULL;
}

/* @dest has passed dest_problem(). Return: a connected TCP socket, or -1 after
 * saying why. */
static int
connect_dest(const char *dest)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char spec[NI_MAXHOST + NI_MAXSERV + 4];
	char *host, *port;
	int err = 0;
	int fd = -1;
	int r;

	if (parse_dest(dest, spec, sizeof(spec), &host, &port) < 0)
		return -1;
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0) {
		sfctl_error("cannot resolve %s: %s", dest,
		            r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *addr = res; addr; addr = addr->ai_next) {
		fd = socket(addr->ai_family, addr->ai_socktype | SOCK_CLOEXEC, addr->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, addr->ai_addr, addr->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		sfctl_error("cannot connect to %s: %s", dest, strerror(err));
	return fd;
}

static void
print_json(const struct sfd_result *res)
{
	printf("{\"id\":%" PRIu64 ",\"status\":\"%s\",\"bytes_sent\":%" PRIu64
	       ",\"final_offset\":%" PRIu64 ",\"method\":\"%s\",\"error\":%d,\"message\":",
	       res->id, wire_status_token(res->status), res->bytes_sent, res->final_offset,
	       sfd_method_str(res->method), res->error);
	sfctl_json_string(stdout, res->message);
	printf(",\"short_source\":%s", res->flags & SFD_RESULT_SHORT_SOURCE ? "true" : "false");
	printf(",\"timeout\":%s}\n", res->flags & SFD_RESULT_DEADLINE ? "\"deadline\""
	                             : res->flags & SFD_RESULT_IDLE   ? "\"idle\""
	                                                              : "null");
}

static void
print_human(const struct sfd_result *res)
{
	const char *short_note = res->flags & SFD_RESULT_SHORT_SOURCE
	                                 ? " (the file ended before the range did)"
	                                 : "";
	const char *detail = res->message;

	if (res->status == SFD_STATUS_OK) {
		/* Nothing sent: the daemon left the file position where it was,
		 * so there is no "final offset" to speak of. */
		if (res->bytes_sent == 0)
			printf("sent 0 bytes, file position untouched%s\n", short_note);
		else if (res->method == SFD_METHOD_NONE)
			printf("sent %" PRIu64 " bytes, final offset %" PRIu64 "%s\n",
			       res->bytes_sent, res->final_offset, short_note);
		else
			printf("sent %" PRIu64 " bytes (%s), final offset %" PRIu64 "%s\n",
			       res->bytes_sent, sfd_method_str(res->method), res->final_offset,
			       short_note);
		return;
	}
	if (!*detail && res->error)
		detail = strerror(res->error);
	if (res->flags & SFD_RESULT_DEADLINE)
		detail = "the deadline passed";
	else if (res->flags & SFD_RESULT_IDLE)
		detail = "the idle timeout passed (the peer stopped reading)";
	/* The daemon's message often names the status already ("cancelled",
	 * "the destination's peer closed the connection"): say it once. */
	if (*detail && strcasestr(detail, sfd_status_str(res->status)))
		fprintf(stderr, "sendfilectl: %s", detail);
	else
		fprintf(stderr, "sendfilectl: %s%s%s", sfd_status_str(res->status),
		        *detail ? ": " : "", detail);
	/* After a failure mid-way the file position has moved: say where. */
	if (res->bytes_sent > 0)
		fprintf(stderr, " (sent %" PRIu64 " bytes, final offset %" PRIu64 ")",
		        res->bytes_sent, res->final_offset);
	fputc('\n', stderr);
}

/* The daemon cancelled the transfer for us and settled the file position:
 * report that position, which is all that is known. */
static void
print_timeout(const struct send_opts *o, int in_fd)
{
	off_t pos = lseek(in_fd, 0, SEEK_CUR);
	char msg[96];

	snprintf(msg, sizeof(msg), "timed out after %d ms; the transfer was cancelled",
	         o->timeout_ms);
	if (o->json) {
		printf("{\"status\":\"timed_out\",\"error\":%d,\"message\":", ETIMEDOUT);
		sfctl_json_string(stdout, msg);
		if (pos >= 0)
			printf(",\"final_offset\":%lld", (long long)pos);
		printf("}\n");
	} else if (pos >= 0) {
		sfctl_error("%s, file position now %lld", msg, (long long)pos);
	} else {
		sfctl_error("%s", msg);
	}
}

/* The bytes the transfer will send if all goes well, for the progress line:
 * --count, else what a regular file holds past the offset; 0 when unknown. */
static uint64_t
range_size(const struct send_opts *o, int in_fd)
{
	struct stat st;

	if (fstat(in_fd, &st) < 0 || !S_ISREG(st.st_mode))
		return o->count;
	if ((uint64_t)st.st_size <= o->offset)
		return 0;
	if (o->count && o->count < (uint64_t)st.st_size - o->offset)
		return o->count;
	return (uint64_t)st.st_size - o->offset;
}

/* "4M/s" or "4M": bytes per second, positive. */
static int
parse_rate(const char *s, uint64_t *ret)
{
	char buf[32];
	size_t len = strlen(s);
	uint64_t v;

	if (len >= 2 && strcmp(s + len - 2, "/s") == 0)
		len -= 2;
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (size_parse(buf, &v) < 0 || v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Return: 0 and *ret (and the global options in *g); -1 when --help was
 * shown; or SFCTL_EXIT_USAGE. */
static int
parse_args(struct sfctl_global *g, int argc, char **argv, struct send_opts *ret)
{
	enum {
		OPT_NO_FALLBACK = 0x100,
		OPT_NO_PROGRESS,
		OPT_HANDOFF,
		OPT_SHUT_WR,
		OPT_DEADLINE,
		OPT_IDLE_TIMEOUT,
		OPT_RATE,
		OPT_RATE_AFTER,
	};
	static const struct option options[] = {
	        {"offset", required_argument, NULL, 'o'},
	        {"count", required_argument, NULL, 'n'},
	        {"no-fallback", no_argument, NULL, OPT_NO_FALLBACK},
	        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	        {"handoff", no_argument, NULL, OPT_HANDOFF},
	        {"shut-wr", no_argument, NULL, OPT_SHUT_WR},
	        {"timeout-ms", required_argument, NULL, 't'},
	        {"deadline", required_argument, NULL, OPT_DEADLINE},
	        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	        {"rate", required_argument, NULL, OPT_RATE},
	        {"rate-after", required_argument, NULL, OPT_RATE_AFTER},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        SFCTL_GLOBAL_OPTIONS,
	        {0},
	};
	struct send_opts o = {.timeout_ms = -1};
	const char *problem;
	uint64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "o:n:t:jh" SFCTL_GLOBAL_SHORT, options, NULL)) != -1) {
		/* Here -t is the transfer's timeout, not the control plane's. */
		r = c == 't' ? -ENOENT : sfctl_global_option(g, c, optarg);
		if (r == -EINVAL)
			return SFCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		switch (c) {
		case 'o':
			if (size_parse(optarg, &o.offset) < 0 || o.offset > INT64_MAX)
				return sfctl_usage_error("send", "bad offset '%s'", optarg);
			break;
		case 'n':
			if (size_parse(optarg, &o.count) < 0 || o.count == 0)
				return sfctl_usage_error("send",
				                         "bad count '%s': give a positive number, "
				                         "or no --count to send to the end",
				                         optarg);
			break;
		case OPT_NO_FALLBACK:
			o.flags |= SFD_NO_FALLBACK;
			break;
		case OPT_NO_PROGRESS:
			o.no_progress = true;
			break;
		case OPT_HANDOFF:
			o.handoff = true;
			break;
		case OPT_SHUT_WR:
			o.flags |= SFD_SHUT_WR;
			break;
		case 't':
			if (strcmp(optarg, "-1") == 0)
				o.timeout_ms = -1;
			else if (sfctl_parse_u64(optarg, &v) == 0 && v <= INT_MAX)
				o.timeout_ms = (int)v;
			else
				return sfctl_usage_error("send", "bad timeout '%s'", optarg);
			break;
		case OPT_DEADLINE:
			if (duration_parse(optarg, &v) < 0 || v == 0 || v > UINT32_MAX)
				return sfctl_usage_error("send",
				                         "bad deadline '%s': a duration such as "
				                         "500ms, 10s, 2m",
				                         optarg);
			o.limits.deadline_ms = (uint32_t)v;
			break;
		case OPT_IDLE_TIMEOUT:
			if (duration_parse(optarg, &v) < 0 || v == 0 || v > UINT32_MAX)
				return sfctl_usage_error(
				        "send",
				        "bad idle timeout '%s': a duration such as "
				        "500ms, 10s, 2m",
				        optarg);
			o.limits.idle_timeout_ms = (uint32_t)v;
			break;
		case OPT_RATE:
			if (parse_rate(optarg, &o.limits.rate_limit_bps) < 0)
				return sfctl_usage_error("send",
				                         "bad rate '%s': a size per second such "
				                         "as 500K/s or 10M/s",
				                         optarg);
			break;
		case OPT_RATE_AFTER:
			if (size_parse(optarg, &o.limits.rate_limit_after) < 0 ||
			    o.limits.rate_limit_after == 0)
				return sfctl_usage_error("send", "bad size '%s'", optarg);
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fputs("Try 'sendfilectl send --help'.\n", stderr);
			return SFCTL_EXIT_USAGE;
		}
	}
	if ((o.flags & SFD_SHUT_WR) && !o.handoff)
		return sfctl_usage_error("send", "--shut-wr needs --handoff");
	if (o.limits.rate_limit_after && !o.limits.rate_limit_bps)
		return sfctl_usage_error("send", "--rate-after needs --rate");
	if (argc - optind != 2)
		return sfctl_usage_error("send", "expected FILE and HOST:PORT");
	o.file = argv[optind];
	o.dest = argv[optind + 1];
	/* Check its form now, so that a typo is a usage error. */
	problem = dest_problem(o.dest);
	if (problem)
		return sfctl_usage_error("send", "bad destination '%s': %s", o.dest, problem);
	*ret = o;
	return 0;
}

/*
 * Hand the transfer away and say its id. On a terminal, follow it through the
 * control plane until the daemon no longer lists it; our descriptors are
 * closed first, as a server that hands off closes its own.
 */
static int
handoff(const struct sfctl_global *g, const struct send_opts *o, struct sfd_client *client,
        int *out_fd, int in_fd)
{
	struct progress *progress = NULL;
	uint64_t id = 0, sent;
	int r;

	r = sfd_client_handoff(client, *out_fd, in_fd, o->offset, o->count, o->flags, &o->limits,
	                       o->timeout_ms, &id);
	if (r < 0) {
		if (o->json) {
			printf("{\"status\":\"refused\",\"error\":%d,\"message\":", -r);
			sfctl_json_string(stdout, strerror(-r));
			printf("}\n");
		} else {
			sfctl_error("the daemon did not take the transfer: %s", strerror(-r));
		}
		return r == -ECONNRESET || r == -EPIPE || r == -EACCES ? SFCTL_EXIT_UNREACHABLE
		                                                       : SFCTL_EXIT_FAILED;
	}
	if (o->json)
		printf("{\"transfer\":%" PRIu64 ",\"status\":\"ok\"}\n", id);
	else
		printf("handed off: transfer %" PRIu64 "\n", id);
	fflush(stdout);
	close(*out_fd);
	*out_fd = -1;
	if (o->no_progress || !isatty(STDERR_FILENO))
		return SFCTL_EXIT_OK;
	if (progress_start(g, o->offset, range_size(o, in_fd), &progress) < 0)
		return SFCTL_EXIT_OK;
	while (sfctl_transfer_progress(g, 1000, o->offset, &id, &sent) != -ENOENT) {
		struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	progress_stop(progress);
	return SFCTL_EXIT_OK;
}

int
sfctl_cmd_send(struct sfctl_global *g, int argc, char **argv)
{
	struct sfd_client *client = NULL;
	struct progress *progress = NULL;
	struct sfd_result res;
	struct send_opts o = {0};
	char path[256];
	int in_fd = -1, out_fd = -1;
	int status;
	int r;

	r = parse_args(g, argc, argv, &o);
	if (r != 0)
		return r < 0 ? SFCTL_EXIT_OK : r;

	in_fd = open(o.file, O_RDONLY | O_CLOEXEC);
	if (in_fd < 0) {
		sfctl_error("cannot open %s: %s", o.file, strerror(errno));
		return SFCTL_EXIT_LOCAL;
	}
	/* The daemon before the peer: no point connecting to one we cannot
	 * serve. */
	r = sfd_client_open(g->socket_path, &client);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		sfctl_error("no daemon at %s (%s: is sendfiled running?)",
		            sfctl_socket_path(g, path, sizeof(path)),
		            r == -ENOENT ? "no such socket" : "nothing listens on it");
		status = SFCTL_EXIT_UNREACHABLE;
		goto close_file;
	}
	if (r < 0) {
		sfctl_error("cannot reach the daemon at %s: %s",
		            sfctl_socket_path(g, path, sizeof(path)), strerror(-r));
		status = SFCTL_EXIT_UNREACHABLE;
		goto close_file;
	}
	out_fd = connect_dest(o.dest);
	if (out_fd < 0) {
		status = SFCTL_EXIT_LOCAL;
		goto free_client;
	}

	if (o.handoff) {
		status = handoff(g, &o, client, &out_fd, in_fd);
		goto close_dest;
	}
	/* A progress line for people watching, never for a pipe or a file. */
	if (!o.no_progress && isatty(STDERR_FILENO))
		progress_start(g, o.offset, range_size(&o, in_fd), &progress);
	r = sfd_client_sendfile_opts(client, out_fd, in_fd, o.offset, o.count, o.flags, &o.limits,
	                             o.timeout_ms, &res);
	progress_stop(progress);
	if (r == -ETIMEDOUT) {
		print_timeout(&o, in_fd);
		status = SFCTL_EXIT_FAILED;
	} else if (r == -EACCES) {
		sfctl_error("the daemon at %s does not serve this user",
		            sfctl_socket_path(g, path, sizeof(path)));
		status = SFCTL_EXIT_UNREACHABLE;
	} else if (r < 0) {
		sfctl_error("lost the daemon at %s: %s", sfctl_socket_path(g, path, sizeof(path)),
		            strerror(-r));
		status = SFCTL_EXIT_UNREACHABLE;
	} else {
		if (o.json)
			print_json(&res);
		else
			print_human(&res);
		status = res.status == SFD_STATUS_OK ? SFCTL_EXIT_OK : SFCTL_EXIT_FAILED;
	}

close_dest:
	if (out_fd >= 0)
		close(out_fd);
free_client:
	sfd_client_free(client);
close_file:
	close(in_fd);
	return status;
}
