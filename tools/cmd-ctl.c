/*
 * cmd-ctl.c - the commands that talk to the daemon's control plane over nng:
 * status, stats, list, cancel, drain, log-level, limits, metrics (REQ/REP on
 * the control socket) and watch (SUB on the events socket).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "control.pb-c.h"
#include "sendfilectl.h"
#include "macro.h"
#include "size.h"
#include "sendfiled.h"
#include "sockpath.h"
#include "wire.h"

/* The control or events socket: given, or beside the data socket. */
static int
endpoint_url(const struct sfctl_global *g, bool events, char *url, size_t size)
{
	char data[SOCKPATH_MAX], path[SOCKPATH_MAX];
	int n;

	n = sockpath_endpoint(events ? g->events_path : g->control_path,
	                      sfctl_socket_path(g, data, sizeof(data)),
	                      events ? SOCKPATH_EVENTS : SOCKPATH_CONTROL, path, sizeof(path));
	if (n < 0)
		return n;
	n = snprintf(url, size, "ipc://%s", path);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Is there a socket at @url's path to dial? nng would dial a missing one again
 * and again until the timeout, and then only say that nothing answered. A
 * daemon that re-creates a dead listener unlinks its socket and binds it
 * again at once, so a missing path is looked at a few more times, for a
 * fifth of a second, before it is called missing.
 * Return: 0, or a negative errno after saying on stderr what is wrong.
 */
static int
endpoint_present(const char *url, const char *what, bool quiet)
{
	const char *path = url + strlen("ipc://");
	struct stat st;
	int r = 0;

	for (int tries = 0; tries < 5; tries++) {
		r = stat(path, &st) < 0 ? -errno : 0;
		if (r != -ENOENT)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
	}
	if (r == 0 && !S_ISSOCK(st.st_mode))
		r = -ENOTSOCK;
	/* Connecting to a socket needs write permission on it. */
	if (r == 0 && access(path, W_OK) < 0)
		r = -errno;
	if (r == 0 || quiet)
		return r;
	if (r == -ENOENT)
		sfctl_error("no daemon %s socket at %s (is sendfiled running? with --no-control?)",
		            what, path);
	else if (r == -EACCES)
		sfctl_error("%s socket %s: permission denied (it serves the daemon's user, root, "
		            "and its socket group if it has one)",
		            what, path);
	else
		sfctl_error("%s socket %s: %s", what, path, strerror(-r));
	return r;
}

/* How an exchange with the control plane went, for call() to report. */
enum outcome {
	CALL_OK,
	CALL_NO_ENDPOINT, /* no socket to dial, said by endpoint_present() unless quiet */
	CALL_NO_ANSWER,   /* nng failed or timed out: *ret_nng says how */
	CALL_BAD_REPLY,   /* the reply does not parse */
};

/*
 * One request, one reply, waiting up to @timeout_ms. The dial does not wait:
 * if the listener is being re-created, nng reconnects and REQ re-sends within
 * the timeout. Says nothing on stderr but what endpoint_present() says
 * without @quiet.
 * Return: CALL_OK with *ret (free with ..._free_unpacked), or another outcome.
 */
static enum outcome
exchange(const char *url, int timeout_ms, bool quiet,
         const Sendfiled__Control__V1__ControlRequest *req,
         Sendfiled__Control__V1__ControlResponse **ret, int *ret_nng)
{
	nng_socket s;
	nng_msg *m = NULL;
	size_t len;
	int rv;

	if (endpoint_present(url, "control", quiet) < 0)
		return CALL_NO_ENDPOINT;
	rv = nng_req0_open(&s);
	if (rv != 0) {
		*ret_nng = rv;
		return CALL_NO_ANSWER;
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, 1000);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 500);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 16 << 20);
	rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv == 0) {
		len = sendfiled__control__v1__control_request__get_packed_size(req);
		rv = nng_msg_alloc(&m, len);
	}
	if (rv == 0) {
		sendfiled__control__v1__control_request__pack(req, nng_msg_body(m));
		rv = nng_sendmsg(s, m, 0);
		if (rv != 0)
			nng_msg_free(m);
	}
	if (rv == 0)
		rv = nng_recvmsg(s, &m, 0);
	if (rv != 0) {
		nng_close(s);
		*ret_nng = rv;
		return CALL_NO_ANSWER;
	}
	*ret = sendfiled__control__v1__control_response__unpack(NULL, nng_msg_len(m),
	                                                        nng_msg_body(m));
	nng_msg_free(m);
	nng_close(s);
	return *ret ? CALL_OK : CALL_BAD_REPLY;
}

/*
 * One request, one reply, with the global timeout; what goes wrong is said on
 * stderr.
 * Return: SFCTL_EXIT_OK with *ret (free with ..._free_unpacked), or an exit code.
 */
static int
call(const struct sfctl_global *g, const Sendfiled__Control__V1__ControlRequest *req,
     Sendfiled__Control__V1__ControlResponse **ret)
{
	char url[200];
	int rv = 0;

	if (endpoint_url(g, false, url, sizeof(url)) < 0) {
		sfctl_error("control socket path too long");
		return SFCTL_EXIT_USAGE;
	}
	switch (exchange(url, g->timeout_ms, false, req, ret, &rv)) {
	case CALL_OK:
		break;
	case CALL_NO_ENDPOINT:
		return SFCTL_EXIT_UNREACHABLE;
	case CALL_NO_ANSWER:
		sfctl_error("control socket %s: %s", url + 6,
		            rv == NNG_ETIMEDOUT ? "no answer (is sendfiled running?)"
		                                : nng_strerror(rv));
		return SFCTL_EXIT_UNREACHABLE;
	case CALL_BAD_REPLY:
		sfctl_error("control socket %s: reply does not parse", url + 6);
		return SFCTL_EXIT_UNREACHABLE;
	}
	if ((*ret)->has_error && (*ret)->error) {
		/* The daemon's message says what its errno would, in its terms. */
		sfctl_error("%s", (*ret)->message && *(*ret)->message ? (*ret)->message
		                                                      : strerror((*ret)->error));
		sendfiled__control__v1__control_response__free_unpacked(*ret, NULL);
		return SFCTL_EXIT_FAILED;
	}
	return SFCTL_EXIT_OK;
}

static Sendfiled__Control__V1__Empty empty = SENDFILED__CONTROL__V1__EMPTY__INIT;

/* Parse "[--json]" for the commands that only take that, and the global
 * options. Return: the index of the first operand; -1 when --help was
 * shown; or -SFCTL_EXIT_USAGE. */
static int
json_only(struct sfctl_global *g, const char *cmd, int argc, char **argv, bool *json,
          const char *help)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     SFCTL_GLOBAL_OPTIONS,
	                                     SFCTL_GLOBAL_TIMEOUT,
	                                     {0}};
	int o, r;

	while ((o = getopt_long(argc, argv, "jh" SFCTL_GLOBAL_SHORT "t:", opts, NULL)) != -1) {
		r = sfctl_global_option(g, o, optarg);
		if (r == -EINVAL)
			return -SFCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		if (o == 'j') {
			*json = true;
		} else if (o == 'h') {
			printf("Usage: sendfilectl %s %s\n", cmd, help);
			return -1;
		} else {
			/* getopt has said what was wrong. */
			fprintf(stderr, "Try 'sendfilectl %s --help'.\n", cmd);
			return -SFCTL_EXIT_USAGE;
		}
	}
	return optind;
}

int
sfctl_cmd_status(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	int r = json_only(g, "status", argc, argv, &json, "[--json]\nShow the daemon's state.");
	Sendfiled__Control__V1__Status *s;

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc)
		return sfctl_usage_error("status", "unexpected argument");
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS;
	req.status = &empty;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	s = resp->status;
	if (!s) {
		sfctl_error("unexpected reply");
		r = SFCTL_EXIT_FAILED;
	} else if (json) {
		printf("{\"version\":");
		sfctl_json_string(stdout, s->version ? s->version : "");
		printf(",\"pid\":%u,\"socket\":", s->pid);
		sfctl_json_string(stdout, s->socket ? s->socket : "");
		printf(",\"uptime_ms\":%llu,\"draining\":%s,\"connections\":%u,\"in_flight\":%u,"
		       "\"log_level\":",
		       (unsigned long long)s->uptime_ms, s->draining ? "true" : "false",
		       s->connections, s->in_flight);
		sfctl_json_string(stdout, s->log_level ? s->log_level : "");
		printf(",\"loops\":%u,\"loop_connections\":[", s->loops);
		for (size_t i = 0; i < s->n_loop_connections; i++)
			printf("%s%u", i ? "," : "", s->loop_connections[i]);
		printf("]}\n");
	} else {
		printf("sendfiled %s, pid %u, serving %s\n", s->version ? s->version : "?", s->pid,
		       s->socket ? s->socket : "?");
		printf("state: %s, up %.1f s, log level %s\n", s->draining ? "draining" : "running",
		       s->uptime_ms / 1000.0, s->log_level ? s->log_level : "?");
		printf("connections: %u, transfers in flight: %u\n", s->connections, s->in_flight);
		if (s->has_loops) {
			printf("event loops: %u, connections on each:", s->loops);
			for (size_t i = 0; i < s->n_loop_connections; i++)
				printf(" %u", s->loop_connections[i]);
			printf("\n");
		}
	}
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return r;
}

static int
get_stats(const struct sfctl_global *g, Sendfiled__Control__V1__ControlResponse **ret)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	int r;

	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATS;
	req.stats = &empty;
	r = call(g, &req, ret);
	if (r == SFCTL_EXIT_OK && !(*ret)->stats) {
		sendfiled__control__v1__control_response__free_unpacked(*ret, NULL);
		sfctl_error("unexpected reply");
		return SFCTL_EXIT_FAILED;
	}
	return r;
}

/* TIMED_OUT transfers ended by @limit (enum wire_timeout); 0 from a daemon
 * that does not count them. */
static uint64_t
timeouts(const Sendfiled__Control__V1__Stats *s, int limit)
{
	return (size_t)limit < s->n_by_timeout ? s->by_timeout[limit] : 0;
}

int
sfctl_cmd_stats(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlResponse *resp;
	Sendfiled__Control__V1__Stats *s;
	bool json = false;
	int r = json_only(g, "stats", argc, argv, &json,
	                  "[--json]\nShow counters: connections, requests, bytes, by status, by "
	                  "method, per uid.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc)
		return sfctl_usage_error("stats", "unexpected argument");
	r = get_stats(g, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	s = resp->stats;
	if (json) {
		printf("{\"connections_accepted\":%llu,\"connections_refused\":%llu,"
		       "\"connections\":%u,\"requests\":%llu,\"in_flight\":%u,\"bytes_sent\":%llu,"
		       "\"control_listener_restarts\":%llu,\"by_status\":{",
		       (unsigned long long)s->connections_accepted,
		       (unsigned long long)s->connections_refused, s->connections,
		       (unsigned long long)s->requests, s->in_flight,
		       (unsigned long long)s->bytes_sent,
		       (unsigned long long)s->control_listener_restarts);
		for (size_t i = 0; i < s->n_by_status; i++)
			printf("%s\"%s\":%llu", i ? "," : "", wire_status_token(i),
			       (unsigned long long)s->by_status[i]);
		printf("},\"by_method\":{");
		for (size_t i = 0; i < s->n_by_method; i++)
			printf("%s\"%s\":%llu", i ? "," : "", wire_method_name(i),
			       (unsigned long long)s->by_method[i]);
		printf("},\"by_timeout\":{\"deadline\":%llu,\"idle\":%llu}",
		       (unsigned long long)timeouts(s, WIRE_TIMEOUT_DEADLINE),
		       (unsigned long long)timeouts(s, WIRE_TIMEOUT_IDLE));
		printf(",\"per_uid\":[");
		for (size_t i = 0; i < s->n_per_uid; i++)
			printf("%s{\"uid\":%u,\"in_flight\":%u,\"requests\":%llu,\"bytes_sent\":%"
			       "llu}",
			       i ? "," : "", s->per_uid[i]->uid, s->per_uid[i]->in_flight,
			       (unsigned long long)s->per_uid[i]->requests,
			       (unsigned long long)s->per_uid[i]->bytes_sent);
		printf("],\"handoffs\":{\"taken\":%llu,\"completed\":%llu,\"failed\":%llu,"
		       "\"in_flight\":%u}}\n",
		       (unsigned long long)s->handoffs_taken,
		       (unsigned long long)s->handoffs_completed,
		       (unsigned long long)s->handoffs_failed, s->handoffs_in_flight);
	} else {
		printf("connections: %u open, %llu accepted, %llu refused\n", s->connections,
		       (unsigned long long)s->connections_accepted,
		       (unsigned long long)s->connections_refused);
		printf("requests: %llu, in flight: %u, bytes sent: %llu\n",
		       (unsigned long long)s->requests, s->in_flight,
		       (unsigned long long)s->bytes_sent);
		printf("replies by status:");
		for (size_t i = 0; i < s->n_by_status; i++)
			if (s->by_status[i])
				printf(" %s=%llu", wire_status_token(i),
				       (unsigned long long)s->by_status[i]);
		printf("\ntransfers by method:");
		for (size_t i = 0; i < s->n_by_method; i++)
			if (s->by_method[i])
				printf(" %s=%llu", wire_method_name(i),
				       (unsigned long long)s->by_method[i]);
		printf("\ntimed out: deadline=%llu idle=%llu\n",
		       (unsigned long long)timeouts(s, WIRE_TIMEOUT_DEADLINE),
		       (unsigned long long)timeouts(s, WIRE_TIMEOUT_IDLE));
		printf("hand-offs: %llu taken, %llu completed, %llu failed, %u in flight\n",
		       (unsigned long long)s->handoffs_taken,
		       (unsigned long long)s->handoffs_completed,
		       (unsigned long long)s->handoffs_failed, s->handoffs_in_flight);
		for (size_t i = 0; i < s->n_per_uid; i++)
			printf("uid %u: %u in flight, %llu requests, %llu bytes\n",
			       s->per_uid[i]->uid, s->per_uid[i]->in_flight,
			       (unsigned long long)s->per_uid[i]->requests,
			       (unsigned long long)s->per_uid[i]->bytes_sent);
		if (s->control_listener_restarts)
			printf("control listener re-created %llu times\n",
			       (unsigned long long)s->control_listener_restarts);
	}
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

int
sfctl_cmd_metrics(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlResponse *resp;
	Sendfiled__Control__V1__Stats *s;
	bool json = false;
	int r = json_only(g, "metrics", argc, argv, &json,
	                  "\nPrint the counters in Prometheus text exposition format.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc || json)
		return sfctl_usage_error("metrics", "unexpected argument");
	r = get_stats(g, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	s = resp->stats;
#define COUNTER(name, help, v)                                                                     \
	printf("# HELP sendfiled_%s %s\n# TYPE sendfiled_%s counter\nsendfiled_%s %llu\n", name,   \
	       help, name, name, (unsigned long long)(v))
#define GAUGE(name, help, v)                                                                       \
	printf("# HELP sendfiled_%s %s\n# TYPE sendfiled_%s gauge\nsendfiled_%s %llu\n", name,     \
	       help, name, name, (unsigned long long)(v))
	COUNTER("connections_accepted_total", "Client connections accepted.",
	        s->connections_accepted);
	COUNTER("connections_refused_total", "Client connections refused (limits, allow-list).",
	        s->connections_refused);
	GAUGE("connections", "Client connections open.", s->connections);
	COUNTER("requests_total", "Request records received.", s->requests);
	GAUGE("transfers_in_flight", "Transfers in progress.", s->in_flight);
	COUNTER("bytes_sent_total", "Bytes delivered to destinations.", s->bytes_sent);
	COUNTER("control_listener_restarts_total", "Control-plane listeners re-created.",
	        s->control_listener_restarts);
	COUNTER("handoffs_taken_total", "Hand-offs taken (answered when taken).",
	        s->handoffs_taken);
	COUNTER("handoffs_completed_total", "Hand-offs that ended with status ok.",
	        s->handoffs_completed);
	COUNTER("handoffs_failed_total", "Hand-offs that ended with another status.",
	        s->handoffs_failed);
	GAUGE("handoffs_in_flight", "Hand-offs in progress.", s->handoffs_in_flight);
	printf("# HELP sendfiled_replies_total Replies sent, by status.\n"
	       "# TYPE sendfiled_replies_total counter\n");
	for (size_t i = 0; i < s->n_by_status; i++)
		printf("sendfiled_replies_total{status=\"%s\"} %llu\n", wire_status_token(i),
		       (unsigned long long)s->by_status[i]);
	printf("# HELP sendfiled_transfers_total Finished transfers, by the method that moved "
	       "their bytes.\n# TYPE sendfiled_transfers_total counter\n");
	for (size_t i = 0; i < s->n_by_method; i++)
		printf("sendfiled_transfers_total{method=\"%s\"} %llu\n", wire_method_name(i),
		       (unsigned long long)s->by_method[i]);
	printf("# HELP sendfiled_timeouts_total Transfers ended by a limit, by the limit.\n"
	       "# TYPE sendfiled_timeouts_total counter\n"
	       "sendfiled_timeouts_total{limit=\"deadline\"} %llu\n"
	       "sendfiled_timeouts_total{limit=\"idle\"} %llu\n",
	       (unsigned long long)timeouts(s, WIRE_TIMEOUT_DEADLINE),
	       (unsigned long long)timeouts(s, WIRE_TIMEOUT_IDLE));
	printf("# HELP sendfiled_uid_requests_total Sendfile requests, by client uid.\n"
	       "# TYPE sendfiled_uid_requests_total counter\n");
	for (size_t i = 0; i < s->n_per_uid; i++)
		printf("sendfiled_uid_requests_total{uid=\"%u\"} %llu\n", s->per_uid[i]->uid,
		       (unsigned long long)s->per_uid[i]->requests);
	printf("# HELP sendfiled_uid_bytes_sent_total Bytes sent, by client uid.\n"
	       "# TYPE sendfiled_uid_bytes_sent_total counter\n");
	for (size_t i = 0; i < s->n_per_uid; i++)
		printf("sendfiled_uid_bytes_sent_total{uid=\"%u\"} %llu\n", s->per_uid[i]->uid,
		       (unsigned long long)s->per_uid[i]->bytes_sent);
#undef COUNTER
#undef GAUGE
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

/* " (rate 1.00 MiB/s)" for a rate-limited transfer, else "". */
static const char *
rate_note(const Sendfiled__Control__V1__Transfer *t, char *buf, size_t cap)
{
	char size[SIZE_FORMAT_MAX];

	if (!t->rate_limit_bps)
		return "";
	snprintf(buf, cap, " (rate %s/s)", size_format(t->rate_limit_bps, size));
	return buf;
}

int
sfctl_cmd_list(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	int r = json_only(g, "list", argc, argv, &json, "[--json]\nList the transfers in flight.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc)
		return sfctl_usage_error("list", "unexpected argument");
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST;
	req.list = &empty;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	if (!resp->list) {
		sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
		sfctl_error("unexpected reply");
		return SFCTL_EXIT_FAILED;
	}
	if (json)
		printf("[");
	else
		printf("%-10s %-8s %-8s %-6s %-12s %-12s %-14s %-10s %s\n", "TRANSFER", "REQUEST",
		       "PID", "UID", "OFFSET", "COUNT", "SENT", "METHOD", "AGE");
	for (size_t i = 0; i < resp->list->n_transfers; i++) {
		Sendfiled__Control__V1__Transfer *t = resp->list->transfers[i];
		char count[32], rate[48];

		if (t->has_count)
			snprintf(count, sizeof(count), "%llu", (unsigned long long)t->count);
		else
			snprintf(count, sizeof(count), "EOF");
		if (json)
			printf("%s{\"transfer\":%llu,\"request_id\":%llu,\"pid\":%u,\"uid\":%u,"
			       "\"offset\":%llu,\"count\":%s,\"bytes_sent\":%llu,\"method\":\"%s\","
			       "\"on_worker\":%s,\"waiting\":%s,\"handoff\":%s,\"age_ms\":%llu,"
			       "\"rate_limit_bps\":%llu,\"loop\":%u}",
			       i ? "," : "", (unsigned long long)t->transfer,
			       (unsigned long long)t->request_id, t->pid, t->uid,
			       (unsigned long long)t->offset, t->has_count ? count : "null",
			       (unsigned long long)t->bytes_sent, wire_method_name(t->method),
			       t->on_worker ? "true" : "false", t->waiting ? "true" : "false",
			       t->handoff ? "true" : "false", (unsigned long long)t->age_ms,
			       (unsigned long long)t->rate_limit_bps, t->loop);
		else
			printf("%-10llu %-8llu %-8u %-6u %-12llu %-12s %-14llu %-10s %.1fs%s%s%s\n",
			       (unsigned long long)t->transfer, (unsigned long long)t->request_id,
			       t->pid, t->uid, (unsigned long long)t->offset, count,
			       (unsigned long long)t->bytes_sent, wire_method_name(t->method),
			       t->age_ms / 1000.0,
			       t->waiting     ? " (waiting)"
			       : t->on_worker ? " (worker)"
			                      : "",
			       rate_note(t, rate, sizeof(rate)), t->handoff ? " (handed off)" : "");
	}
	if (json)
		printf("]\n");
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

int
sfctl_transfer_progress(const struct sfctl_global *g, int timeout_ms, uint64_t offset,
                        uint64_t *transfer, uint64_t *ret_sent)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	char url[200];
	int r = -ENOENT;
	int rv;

	if (endpoint_url(g, false, url, sizeof(url)) < 0)
		return -ENOTCONN;
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST;
	req.list = &empty;
	switch (exchange(url, timeout_ms, true, &req, &resp, &rv)) {
	case CALL_OK:
		break;
	case CALL_NO_ENDPOINT:
		return -ENOTCONN;
	default:
		return -EAGAIN;
	}
	for (size_t i = 0; resp->list && i < resp->list->n_transfers; i++) {
		const Sendfiled__Control__V1__Transfer *t = resp->list->transfers[i];

		/* Ours: the one we found before, or, the first time, the one this
		 * process (the daemon knows its pid from the connection) started
		 * at this offset: a process of ours has one in flight. */
		if (*transfer ? t->transfer != *transfer
		              : t->pid != (uint32_t)getpid() || t->uid != (uint32_t)getuid() ||
		                        t->offset != offset)
			continue;
		*transfer = t->transfer;
		*ret_sent = t->bytes_sent;
		r = 0;
		break;
	}
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return r;
}

int
sfctl_cmd_cancel(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__CancelTransfer c = SENDFILED__CONTROL__V1__CANCEL_TRANSFER__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	uint64_t id;
	int r = json_only(g, "cancel", argc, argv, &json,
	                  "TRANSFER\nCancel a transfer (its id as shown by 'list').");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc - 1 || sfctl_parse_u64(argv[r], &id) < 0)
		return sfctl_usage_error("cancel", "expected one transfer id");
	c.has_transfer = true;
	c.transfer = id;
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_CANCEL;
	req.cancel = &c;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	printf("cancelled transfer %llu\n", (unsigned long long)id);
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

int
sfctl_cmd_drain(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	int r = json_only(g, "drain", argc, argv, &json,
	                  "\nStop accepting, let transfers in flight finish (up to the drain "
	                  "timeout), then exit.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc)
		return sfctl_usage_error("drain", "unexpected argument");
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_DRAIN;
	req.drain = &empty;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	printf("draining\n");
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

int
sfctl_cmd_log_level(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__SetLogLevel l = SENDFILED__CONTROL__V1__SET_LOG_LEVEL__INIT;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	int r = json_only(g, "log-level", argc, argv, &json,
	                  "LEVEL\nSet the daemon's log level: err, warning, notice, info, debug.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc - 1)
		return sfctl_usage_error("log-level", "expected one level");
	l.level = argv[r];
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_SET_LOG_LEVEL;
	req.set_log_level = &l;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	printf("%s\n", resp->message ? resp->message : "ok");
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return SFCTL_EXIT_OK;
}

int
sfctl_cmd_limits(struct sfctl_global *g, int argc, char **argv)
{
	Sendfiled__Control__V1__ControlRequest req = SENDFILED__CONTROL__V1__CONTROL_REQUEST__INIT;
	Sendfiled__Control__V1__Limits *l;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool json = false;
	int r = json_only(g, "limits", argc, argv, &json, "[--json]\nShow the daemon's limits.");

	if (r < 0)
		return r == -1 ? SFCTL_EXIT_OK : -r;
	if (r != argc)
		return sfctl_usage_error("limits", "unexpected argument");
	req.op_case = SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIMITS;
	req.limits = &empty;
	r = call(g, &req, &resp);
	if (r != SFCTL_EXIT_OK)
		return r;
	l = resp->limits;
	if (!l) {
		sfctl_error("unexpected reply");
		r = SFCTL_EXIT_FAILED;
	} else {
		printf(json ? "{\"max_connections\":%u,\"max_in_flight_per_conn\":%u,"
		              "\"max_in_flight_per_uid\":%u,\"max_record\":%u,\"chunk_size\":%llu,"
		              "\"drain_timeout_ms\":%u,\"max_handoffs\":%u,\"allow_uids\":["
		            : "max_connections %u\nmax_in_flight_per_conn %u\n"
		              "max_in_flight_per_uid %u\nmax_record %u\nchunk_size %llu\n"
		              "drain_timeout_ms %u\nmax_handoffs %u\nallow_uids",
		       l->max_connections, l->max_in_flight_per_conn, l->max_in_flight_per_uid,
		       l->max_record, (unsigned long long)l->chunk_size, l->drain_timeout_ms,
		       l->max_handoffs);
		for (size_t i = 0; i < l->n_allow_uids; i++)
			printf(json ? "%s%u" : "%s%u", json ? (i ? "," : "") : " ",
			       l->allow_uids[i]);
		printf(json ? "],\"allow_gids\":[" : "%s\nallow_gids",
		       json ? "" : (l->n_allow_uids ? "" : " (anyone)"));
		for (size_t i = 0; i < l->n_allow_gids; i++)
			printf("%s%u", json ? (i ? "," : "") : " ", l->allow_gids[i]);
		printf(json ? "]}\n" : "%s\n", json ? "" : (l->n_allow_gids ? "" : " (any)"));
	}
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	return r;
}

static volatile sig_atomic_t stop_watch;

static void
on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

/* The daemon sends a heartbeat every second: this long without any message
 * means the connection is lost. While the daemon stays away, the wait for
 * it doubles up to the second figure. */
#define WATCH_SILENCE_MS 3000
#define WATCH_SILENCE_MAX_MS 60000

/* A subscriber to everything on @url; with @flags 0, connected on return. */
static int
watch_dial(const char *url, int flags, nng_socket *ret, nng_dialer *ret_dialer)
{
	nng_socket s;
	int rv = nng_sub0_open(&s);

	if (rv != 0)
		return rv;
	nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 64 * 1024);
	/* Wake up now and then to notice Ctrl-C, and silence. */
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 500);
	rv = nng_dial(s, url, ret_dialer, flags);
	if (rv != 0) {
		nng_close(s);
		return rv;
	}
	*ret = s;
	return 0;
}

/* One transfer event, as a line of text or of JSON. */
static void
print_event(const Sendfiled__Control__V1__Event *ev, bool json)
{
	static const char *const kinds[] = {"start", "done", "error"};
	const char *kind = ev->kind <= 2 ? kinds[ev->kind] : "unknown";

	if (json)
		printf("{\"event\":\"%s\",\"transfer\":%llu,\"request_id\":%llu,"
		       "\"pid\":%u,\"uid\":%u,\"offset\":%llu,\"bytes_sent\":%llu,"
		       "\"status\":\"%s\",\"error\":%d,\"method\":\"%s\","
		       "\"time_ms\":%llu,\"duration_ms\":%llu,\"handoff\":%s,\"timeout\":%s}\n",
		       kind, (unsigned long long)ev->transfer, (unsigned long long)ev->request_id,
		       ev->pid, ev->uid, (unsigned long long)ev->offset,
		       (unsigned long long)ev->bytes_sent, wire_status_token(ev->status), ev->error,
		       wire_method_name(ev->method), (unsigned long long)ev->time_ms,
		       (unsigned long long)ev->duration_ms, ev->handoff ? "true" : "false",
		       ev->timeout == WIRE_TIMEOUT_DEADLINE ? "\"deadline\""
		       : ev->timeout == WIRE_TIMEOUT_IDLE   ? "\"idle\""
		                                            : "null");
	else if (ev->kind == SENDFILED__CONTROL__V1__EVENT__KIND__START)
		printf("start  transfer %llu (pid %u uid %u request %llu) offset "
		       "%llu%s\n",
		       (unsigned long long)ev->transfer, ev->pid, ev->uid,
		       (unsigned long long)ev->request_id, (unsigned long long)ev->offset,
		       ev->handoff ? ", handed off" : "");
	else
		printf("%-6s transfer %llu: %s%s, %llu bytes by %s in %llu ms%s%s%s\n", kind,
		       (unsigned long long)ev->transfer, wire_status_token(ev->status),
		       ev->timeout == WIRE_TIMEOUT_DEADLINE ? " (deadline)"
		       : ev->timeout == WIRE_TIMEOUT_IDLE   ? " (idle timeout)"
		                                            : "",
		       (unsigned long long)ev->bytes_sent, wire_method_name(ev->method),
		       (unsigned long long)ev->duration_ms, ev->error ? ": " : "",
		       ev->error ? strerror(ev->error) : "", ev->handoff ? " (handed off)" : "");
	fflush(stdout);
}

/* Return: -1 to go on, or an exit code. */
static int
watch_options(struct sfctl_global *g, int argc, char **argv, bool *json, uint64_t *count)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	                                     {"count", required_argument, NULL, 'n'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     SFCTL_GLOBAL_OPTIONS,
	                                     SFCTL_GLOBAL_TIMEOUT,
	                                     {0}};
	int o, r;

	while ((o = getopt_long(argc, argv, "jn:h" SFCTL_GLOBAL_SHORT "t:", opts, NULL)) != -1) {
		r = sfctl_global_option(g, o, optarg);
		if (r == -EINVAL)
			return SFCTL_EXIT_USAGE;
		if (r == 0)
			continue;
		switch (o) {
		case 'j':
			*json = true;
			break;
		case 'n':
			if (sfctl_parse_u64(optarg, count) < 0)
				return sfctl_usage_error("watch", "bad --count '%s'", optarg);
			break;
		case 'h':
			printf("Usage: sendfilectl watch [--json] [--count N]\n"
			       "Print transfer events (start, done, error) as they happen, until "
			       "interrupted or N events.\n");
			return SFCTL_EXIT_OK;
		default:
			/* getopt has said what was wrong. */
			fputs("Try 'sendfilectl watch --help'.\n", stderr);
			return SFCTL_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return sfctl_usage_error("watch", "unexpected argument");
	return -1;
}

/* A subscription that notices when it has gone quiet. */
struct watch {
	char url[200];
	nng_socket s;
	nng_dialer d;
	int64_t last, silence;
	bool heard;
};

/*
 * Not even a heartbeat for a while: the connection is gone in a way nng
 * 1.5.2 did not notice (its poller can miss the end of a connection the
 * daemon dropped right after the handshake). A new socket, dialled in the
 * background until the daemon answers.
 * Return: 0, or an nng error.
 */
static int
redial_if_silent(struct watch *w)
{
	int rv;

	if (mono_ms() - w->last < w->silence)
		return 0;
	/* nng_close() can wait forever for such a pipe: leave the old socket
	 * to the process's exit, but stop it dialling (closing a dialer does
	 * not wait for its pipes). */
	nng_dialer_close(w->d);
	rv = watch_dial(w->url, NNG_FLAG_NONBLOCK, &w->s, &w->d);
	if (rv != 0)
		return rv;
	w->last = mono_ms();
	/* Nothing heard on the last one either: the daemon is away; look
	 * less often. */
	if (!w->heard && w->silence < WATCH_SILENCE_MAX_MS / 2)
		w->silence *= 2;
	else if (!w->heard)
		w->silence = WATCH_SILENCE_MAX_MS;
	w->heard = false;
	return 0;
}

/* The next event that is not a heartbeat. Return: 0 and *ret; 1 for none
 * yet (a timeout, silence, a message that does not parse); -1 when the
 * events socket failed (said on stderr), with the exit code in *ret_exit. */
static int
next_event(struct watch *w, Sendfiled__Control__V1__Event **ret, int *ret_exit)
{
	Sendfiled__Control__V1__Event *ev;
	nng_msg *m;
	int rv = nng_recvmsg(w->s, &m, 0);

	if (rv == NNG_ETIMEDOUT) {
		rv = redial_if_silent(w);
		if (rv == 0)
			return 1;
		sfctl_error("events socket %s: %s", w->url + 6, nng_strerror(rv));
		*ret_exit = SFCTL_EXIT_UNREACHABLE;
		return -1;
	}
	if (rv != 0) {
		sfctl_error("events socket: %s", nng_strerror(rv));
		*ret_exit = SFCTL_EXIT_OK;
		return -1;
	}
	w->last = mono_ms();
	w->heard = true;
	w->silence = WATCH_SILENCE_MS;
	ev = sendfiled__control__v1__event__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (!ev)
		return 1;
	if (ev->kind == SENDFILED__CONTROL__V1__EVENT__KIND__HEARTBEAT) {
		sendfiled__control__v1__event__free_unpacked(ev, NULL);
		return 1;
	}
	*ret = ev;
	return 0;
}

int
sfctl_cmd_watch(struct sfctl_global *g, int argc, char **argv)
{
	struct watch w = {.silence = WATCH_SILENCE_MS};
	struct sigaction sa = {.sa_handler = on_stop};
	uint64_t count = 0, seen = 0;
	bool json = false;
	int r, rv;

	r = watch_options(g, argc, argv, &json, &count);
	if (r >= 0)
		return r;
	if (endpoint_url(g, true, w.url, sizeof(w.url)) < 0)
		return sfctl_usage_error("watch", "events socket path too long");
	if (endpoint_present(w.url, "events", false) < 0)
		return SFCTL_EXIT_UNREACHABLE;
	rv = watch_dial(w.url, 0, &w.s, &w.d);
	if (rv != 0) {
		/* A socket left by a daemon that is gone. */
		sfctl_error("events socket %s: %s", w.url + 6,
		            rv == NNG_ECONNREFUSED ? "nothing listens on it (is sendfiled running?)"
		                                   : nng_strerror(rv));
		return SFCTL_EXIT_UNREACHABLE;
	}
	w.last = mono_ms();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* The subscription is in place once the dial returns. */
	fprintf(stderr, "watching %s\n", w.url + 6);
	while (!stop_watch && (count == 0 || seen < count)) {
		Sendfiled__Control__V1__Event *ev;

		r = next_event(&w, &ev, &rv);
		if (r < 0)
			return rv;
		if (r > 0)
			continue;
		seen++;
		print_event(ev, json);
		sendfiled__control__v1__event__free_unpacked(ev, NULL);
	}
	/* No nng_close(): after a lost connection it may never return (see
	 * above); the process's exit closes everything. */
	return SFCTL_EXIT_OK;
}
