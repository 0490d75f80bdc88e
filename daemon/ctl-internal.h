/*
 * ctl-internal.h - what the control plane's files share: ctl.c (the nng
 * thread, the hand-off to the loop, events, setup and teardown),
 * ctl-requests.c (one function per control request) and ctl-probe.c (the
 * listener probe nng 1.5.2 needs). Not for other modules.
 */
#ifndef SFD_CTL_INTERNAL_H
#define SFD_CTL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include <nng/nng.h>

#include "ctl.h"
#include "sockpath.h"

/* Control requests are tiny; anything larger is refused by nng itself. */
#define CTL_RECV_MAX (64 * 1024)
/* How long the probe waits for a listener's SP handshake. */
#define PROBE_TIMEOUT_MS 1000
/* How long a starting daemon waits for the one on its control socket to say
 * whether it drains. */
#define CLAIM_TIMEOUT_MS 5000
/* SP protocol numbers (see nng's protocol headers): what the probe says it is. */
#define SP_PROTO_REQ0 0x30
#define SP_PROTO_SUB0 0x21
/* How often subscribers hear from an idle daemon. */
#define HEARTBEAT_MS 1000
/* Pipes of one endpoint tracked by id (control clients and subscribers). */
#define MAX_TRACKED_PIPES 256
/* Events waiting for the nng thread; past this, new ones are dropped (as PUB
 * drops for a slow subscriber). */
#define MAX_QUEUED_EVENTS 1024

struct endpoint {
	char path[SOCKPATH_MAX];
	char url[128];
	nng_socket sock;
	nng_listener listener;
	bool open;
	int probe_proto;
	/* Pipes the socket core has taken from this endpoint, and those open
	 * now (updated on nng threads). */
	atomic_ulong attached;
	atomic_long connected;
	/* Which pipes are open: nng also reports the removal of a pipe it
	 * never finished adding (one refused mid-handshake, as on a listener
	 * hit by issue #1518), which must not count. */
	pthread_mutex_t pipes_mtx;
	uint32_t pipes[MAX_TRACKED_PIPES];
	unsigned n_pipes;
	bool pipes_overflow; /* more than we track: count as connected from now on */
	/* The socket file we listen on (0: none yet), and whether a
	 * successor has taken its path over. */
	dev_t dev;
	ino_t ino;
	bool replaced;
};

struct ctl {
	struct server *srv;
	struct ctl_config cfg;
	struct endpoint rep, pub;

	nng_ctx ctx;
	nng_aio *aio;
	bool sending; /* the aio carries a reply (else a receive) */
	/* A drain waits until its own reply is on its way: stopping closes
	 * the control plane. */
	bool drain_after_reply;
	atomic_bool drain_now;

	/* Hand-off from nng's threads to the loop: a slot, and an eventfd the
	 * loop polls (not a uv_async_t, whose descriptor is libuv's and would
	 * not be in the nng thread's table; see nng_thread_main()). */
	pthread_mutex_t mtx;
	nng_msg *pending;
	int wake_fd;
	uv_poll_t wake_poll;

	/* Hand-off from the loop to the nng thread, which makes every call
	 * into nng (see nng_thread_main()). */
	pthread_t thread;
	pthread_mutex_t jobs_mtx;
	pthread_cond_t jobs_cv;
	bool ready;     /* the thread has set nng up, or failed to */
	int ready_err;  /* 0, or why it failed */
	nng_msg *reply; /* to send on the REP context */
	bool rearm;     /* no reply this time: receive the next request */
	bool restart_rep, restart_pub;
	bool stop; /* close nng's sockets and end */
	nng_msg *events[MAX_QUEUED_EVENTS];
	unsigned n_events;

	uv_timer_t heartbeat_timer;
	/* The probe thread (ctl-probe.c); jobs_mtx guards these. */
	pthread_t probe_thread;
	bool probe_started;
	pthread_cond_t probe_cv; /* CLOCK_MONOTONIC */
	bool closing;
	int holds; /* handles still closing: free when 0 */
	atomic_ullong listener_restarts;
};

/* ctl.c */
/* ctl_post() - loop thread: hand the nng thread a reply to send, a re-arm
 * (no reply this time), an event to publish, or a listener to re-create. */
void ctl_post(struct ctl *ctl, nng_msg *reply, bool rearm, nng_msg *event,
              struct endpoint *restart);
/* ctl_listen_endpoint() - nng thread: (re)start @ep's listener. */
int ctl_listen_endpoint(struct ctl *ctl, struct endpoint *ep);

/* ctl_endpoint_ours() - is the file at @ep's path still the socket we
 * listen on (and not a successor's)? */
bool ctl_endpoint_ours(const struct endpoint *ep);

/* ctl-requests.c */
/* ctl_handle_request() - loop thread: answer one control request (the
 * reply is posted to the nng thread). */
void ctl_handle_request(struct ctl *ctl, nng_msg *req_msg);

/* ctl-probe.c */
/* ctl_probe_thread_main() - the probe thread (see ctl-probe.c). */
void *ctl_probe_thread_main(void *arg);
/* ctl_restart_listener() - nng thread: re-create a listener the probe found
 * dead. */
void ctl_restart_listener(struct ctl *ctl, struct endpoint *ep);

#endif
