/*
 * fuzz-ctl.c - libFuzzer target for the control plane's requests: any bytes
 * a process that can reach the control socket sends go through
 * ctl_handle_request() (the decoder and the table of operations), as the
 * daemon's loop thread runs it, without nng's sockets.
 *
 * The server is a small fake with the functions ctl-requests.c calls (three
 * transfers in flight, a real account with counters in it); ctl_post() is a
 * fake that keeps the reply. Beyond "no crash, no leak", each reply must
 * parse and say what the request asked for: a request that does not parse
 * gets EBADMSG, an unknown operation EOPNOTSUPP, every error a message, a
 * success the body of its operation; only a drain asks to drain, only a
 * cancel of a transfer in flight succeeds.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "control.pb-c.h"
#include "ctl-internal.h"
#include "log.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_TRANSFERS 3

struct server {
	uv_loop_t loop;
	struct server_config cfg;
	struct account *account;
	struct transfer_info transfers[N_TRANSFERS];
	bool live[N_TRANSFERS];
};

static struct server fake;
static struct ctl ctl;
/* What ctl_post() was handed for the request under test. */
static nng_msg *posted;
static bool posted_rearm;
static unsigned n_posts;

uv_loop_t *
server_loop(const struct server *srv)
{
	return (uv_loop_t *)&srv->loop;
}

const struct server_config *
server_config(const struct server *srv)
{
	return &srv->cfg;
}

struct account *
server_account(const struct server *srv)
{
	return srv->account;
}

void
server_status(const struct server *srv, struct server_status *ret)
{
	unsigned n = 0;

	for (unsigned i = 0; i < N_TRANSFERS; i++)
		n += srv->live[i];
	*ret = (struct server_status){.connections = n, .uptime_ms = 1234};
}

void
server_foreach_transfer(struct server *srv, void (*fn)(const struct transfer_info *info, void *arg),
                        void *arg)
{
	for (unsigned i = 0; i < N_TRANSFERS; i++)
		if (srv->live[i])
			fn(&srv->transfers[i], arg);
}

int
server_cancel_transfer(struct server *srv, uint64_t transfer)
{
	for (unsigned i = 0; i < N_TRANSFERS; i++) {
		if (srv->live[i] && srv->transfers[i].transfer == transfer) {
			srv->live[i] = false;
			return 0;
		}
	}
	return -ENOENT;
}

void
ctl_post(struct ctl *c, nng_msg *reply, bool rearm, nng_msg *event, struct endpoint *restart)
{
	if (c != &ctl || event || restart || n_posts++ > 0)
		abort();
	posted = reply;
	posted_rearm = rearm;
}

static void
setup(void)
{
	static const uid_t uids[] = {0, 1000, 65534};

	if (uv_loop_init(&fake.loop) < 0)
		abort();
	/* Not server_config_defaults(): that is server.c's, which the
	 * fake stands in for. */
	fake.cfg = (struct server_config){
	        .socket_mode = 0666,
	        .max_connections = 256,
	        .max_in_flight_per_conn = 64,
	        .max_in_flight_per_uid = 256,
	        .chunk_size = 1 << 20,
	        .drain_timeout_ms = 30000,
	};
	snprintf(fake.cfg.socket_path, sizeof(fake.cfg.socket_path), "/run/sendfiled/fuzz.sock");
	fake.cfg.allow_uids[0] = 1000;
	fake.cfg.n_allow_uids = 1;
	fake.cfg.allow_gids[0] = 100;
	fake.cfg.allow_gids[1] = 1000;
	fake.cfg.n_allow_gids = 2;
	if (account_new(fake.cfg.max_in_flight_per_uid, &fake.account) < 0)
		abort();
	account_connection(fake.account, true);
	account_connection(fake.account, false);
	for (unsigned i = 0; i < N_TRANSFERS; i++) {
		struct transfer_info *t = &fake.transfers[i];

		*t = (struct transfer_info){
		        .request_id = 100 + i,
		        .pid = 4000 + (pid_t)i,
		        .uid = uids[i],
		        .offset = 4096 * i,
		        .count = 65536,
		        .has_count = i != 1,
		        .bytes_sent = 512 * i,
		        .method = (int)i,
		        .on_worker = i == 2,
		        .waiting = i == 1,
		};
		account_request(fake.account);
		if (account_reserve(fake.account, t->uid) < 0)
			abort();
		account_start(fake.account, t);
	}
	account_reply(fake.account, 1);
	ctl.srv = &fake;
}

static int
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The body a successful reply to @op must carry. */
static int
expected_body(int op)
{
	switch (op) {
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS:
		return SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATUS;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATS:
		return SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_STATS;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST:
		return SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIST;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIMITS:
		return SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIMITS;
	default:
		return SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY__NOT_SET;
	}
}

static void
check_reply(const Sendfiled__Control__V1__ControlRequest *req,
            const Sendfiled__Control__V1__ControlResponse *resp, bool was_live[N_TRANSFERS])
{
	bool cancelled = false;

	if (resp->has_error && (resp->error == 0 || !resp->message))
		abort();
	if (!req) {
		if (!resp->has_error || resp->error != EBADMSG)
			abort();
		return;
	}
	for (unsigned i = 0; i < N_TRANSFERS; i++) {
		if (was_live[i] && !fake.live[i]) {
			if (cancelled)
				abort();
			cancelled = true;
		}
	}
	if (ctl.drain_after_reply !=
	    (req->op_case == SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_DRAIN))
		abort();
	switch (req->op_case) {
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP__NOT_SET:
		if (!resp->has_error || resp->error != EOPNOTSUPP)
			abort();
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_CANCEL:
		if (cancelled == resp->has_error)
			abort();
		if (cancelled && !req->cancel->has_transfer)
			abort();
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_SET_LOG_LEVEL:
		if (!resp->has_error && !resp->message)
			abort();
		break;
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATS:
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_DRAIN:
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_STATUS:
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIST:
	case SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_LIMITS:
		if (resp->has_error)
			abort();
		break;
	default:
		/* An operation this build does not know is not an error to
		 * decode, only to answer. */
		if (!resp->has_error || resp->error != EOPNOTSUPP)
			abort();
		break;
	}
	if (req->op_case != SENDFILED__CONTROL__V1__CONTROL_REQUEST__OP_CANCEL && cancelled)
		abort();
	if (!resp->has_error && (int)resp->body_case != expected_body((int)req->op_case))
		abort();
	if (resp->body_case == SENDFILED__CONTROL__V1__CONTROL_RESPONSE__BODY_LIST) {
		size_t n = 0;

		for (unsigned i = 0; i < N_TRANSFERS; i++)
			n += fake.live[i];
		if (resp->list->n_transfers != n)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	Sendfiled__Control__V1__ControlRequest *req;
	Sendfiled__Control__V1__ControlResponse *resp;
	bool was_live[N_TRANSFERS];
	nng_msg *msg;
	int before;

	if (!ready) {
		setup();
		ready = true;
	}
	/* Each input starts from the same state, quiet unless it breaks. */
	for (unsigned i = 0; i < N_TRANSFERS; i++)
		fake.live[i] = was_live[i] = true;
	ctl.drain_after_reply = false;
	log_set_level(LOG_ERR);
	posted = NULL;
	posted_rearm = false;
	n_posts = 0;
	before = count_open_fds();

	if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, data, size) != 0)
		abort();
	ctl_handle_request(&ctl, msg);
	nng_msg_free(msg);
	if (n_posts != 1)
		abort();
	/* No reply only when memory ran out for it. */
	if (!posted) {
		if (!posted_rearm)
			abort();
		return 0;
	}

	req = sendfiled__control__v1__control_request__unpack(NULL, size, data);
	resp = sendfiled__control__v1__control_response__unpack(NULL, nng_msg_len(posted),
	                                                        nng_msg_body(posted));
	if (!resp)
		abort();
	check_reply(req, resp, was_live);
	sendfiled__control__v1__control_response__free_unpacked(resp, NULL);
	if (req)
		sendfiled__control__v1__control_request__free_unpacked(req, NULL);
	nng_msg_free(posted);
	log_set_level(LOG_ERR);
	if (count_open_fds() != before)
		abort();
	return 0;
}
