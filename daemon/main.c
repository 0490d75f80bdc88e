/*
 * main.c - sendfiled: command line, process setup, the loop.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "config.h"
#include "ctl.h"
#include "log.h"
#include "server.h"
#include "sockpath.h"
#include "xfer.h"

static struct server srv;
static uv_signal_t sig_term, sig_int;
static bool stopped;
static struct ctl *ctl;

static void
usage(FILE *f)
{
	fprintf(f,
	        "Usage: sendfiled [OPTION]...\n"
	        "Send files over sockets zero-copy on behalf of local processes.\n"
	        "\n"
	        "  -s, --socket PATH            data socket (default: $SENDFILED_SOCKET, else\n"
	        "                               $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock, else\n"
	        "                               /run/sendfiled/sendfiled.sock)\n"
	        "      --socket-mode MODE       octal file mode of the data socket (default 0660)\n"
	        "      --max-connections N      client connections at once (default 256)\n"
	        "      --max-in-flight N        requests in flight per connection (default 1024)\n"
	        "      --max-in-flight-per-uid N  requests in flight per user (default 4096)\n"
	        "      --chunk-size BYTES       bytes sent per wake-up of one transfer (default "
	        "2097152)\n"
	        "      --drain-timeout MS       on SIGTERM, how long transfers may finish (default "
	        "10000)\n"
	        "      --workers N              threads for transfers that could block (default "
	        "8)\n"
	        "      --allow-uid UID          allow this uid (repeatable; default: anyone who "
	        "can\n"
	        "                               open the socket)\n"
	        "      --allow-gid GID          allow this primary gid (repeatable)\n"
	        "  -l, --log-level LEVEL        err, warning, notice (default), info, debug\n"
	        "  -v, --verbose                same as --log-level debug\n"
	        "  -h, --help                   show this help and exit\n"
	        "  -V, --version                show the version and exit\n"
	        "\n"
	        "SIGTERM or SIGINT: stop accepting, let transfers in flight finish until the\n"
	        "drain timeout, then cancel the rest; a second signal cancels at once.\n");
}

static int
parse_u64(const char *s, unsigned long long max, unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end || *s == '-' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void
on_stopped(struct server *s)
{
	(void)s;
	if (stopped)
		return;
	stopped = true;
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	ctl_free(ctl);
	ctl = NULL;
	server_free(&srv);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	bool again = srv.stopping;

	log_notice("%s: %s", strsignal(signum),
	           again ? "cancelling transfers in flight" : "shutting down");
	server_stop(&srv, again);
}

static void
raise_nofile_limit(void)
{
	struct rlimit rl;

	/* Every transfer holds two descriptors: use all the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	enum {
		OPT_MODE = 0x100,
		OPT_MAXCONN,
		OPT_MAXFLIGHT,
		OPT_MAXUID,
		OPT_CHUNK,
		OPT_DRAIN,
		OPT_WORKERS,
		OPT_ALLOW_UID,
		OPT_ALLOW_GID,
	};
	static const struct option opts[] = {
	        {"socket", required_argument, NULL, 's'},
	        {"socket-mode", required_argument, NULL, OPT_MODE},
	        {"max-connections", required_argument, NULL, OPT_MAXCONN},
	        {"max-in-flight", required_argument, NULL, OPT_MAXFLIGHT},
	        {"max-in-flight-per-uid", required_argument, NULL, OPT_MAXUID},
	        {"chunk-size", required_argument, NULL, OPT_CHUNK},
	        {"drain-timeout", required_argument, NULL, OPT_DRAIN},
	        {"workers", required_argument, NULL, OPT_WORKERS},
	        {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
	        {"allow-gid", required_argument, NULL, OPT_ALLOW_GID},
	        {"log-level", required_argument, NULL, 'l'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	struct server_config cfg;
	unsigned long long v, workers = 8;
	uv_loop_t *loop;
	char buf[32];
	int c, r;

	log_setup();
	server_config_defaults(&cfg);
	r = sockpath_default(cfg.socket_path, sizeof(cfg.socket_path));
	if (r < 0) {
		log_err("default socket path is too long");
		return 1;
	}

	while ((c = getopt_long(argc, argv, "s:l:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (strlen(optarg) >= sizeof(cfg.socket_path)) {
				log_err("socket path too long: %s", optarg);
				return 2;
			}
			strcpy(cfg.socket_path, optarg);
			break;
		case OPT_MODE: {
			char *end;
			long m = strtol(optarg, &end, 8);

			if (!*optarg || *end || m < 0 || m > 07777) {
				log_err("bad --socket-mode: %s", optarg);
				return 2;
			}
			cfg.socket_mode = (unsigned)m;
			break;
		}
		case OPT_MAXCONN:
		case OPT_MAXFLIGHT:
		case OPT_MAXUID:
		case OPT_DRAIN:
		case OPT_WORKERS:
			if (parse_u64(optarg, c == OPT_WORKERS ? 1024 : UINT_MAX, &v) < 0 ||
			    (v == 0 && c != OPT_DRAIN)) {
				log_err("bad value for --%s: %s", opts[c - OPT_MODE + 1].name,
				        optarg);
				return 2;
			}
			if (c == OPT_MAXCONN)
				cfg.max_connections = (unsigned)v;
			else if (c == OPT_MAXFLIGHT)
				cfg.max_in_flight_per_conn = (unsigned)v;
			else if (c == OPT_MAXUID)
				cfg.max_in_flight_per_uid = (unsigned)v;
			else if (c == OPT_DRAIN)
				cfg.drain_timeout_ms = (unsigned)v;
			else
				workers = v;
			break;
		case OPT_CHUNK:
			if (parse_u64(optarg, XFER_SYSCALL_MAX, &v) < 0 || v < 4096) {
				log_err("bad --chunk-size (4096..%u): %s", XFER_SYSCALL_MAX,
				        optarg);
				return 2;
			}
			cfg.chunk_size = (size_t)v;
			break;
		case OPT_ALLOW_UID:
		case OPT_ALLOW_GID:
			if (parse_u64(optarg, UINT_MAX - 1, &v) < 0) {
				log_err("bad uid/gid: %s", optarg);
				return 2;
			}
			if (c == OPT_ALLOW_UID && cfg.n_allow_uids < SERVER_MAX_ALLOW)
				cfg.allow_uids[cfg.n_allow_uids++] = (uid_t)v;
			else if (c == OPT_ALLOW_GID && cfg.n_allow_gids < SERVER_MAX_ALLOW)
				cfg.allow_gids[cfg.n_allow_gids++] = (gid_t)v;
			break;
		case 'l':
			r = log_parse_level(optarg);
			if (r < 0) {
				log_err("bad log level: %s", optarg);
				return 2;
			}
			log_set_level(r);
			break;
		case 'v':
			log_set_level(LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sendfiled %s\n", SFD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument: %s", argv[optind]);
		usage(stderr);
		return 2;
	}

	/* sendfile(2) has no MSG_NOSIGNAL: a closed peer must be an EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile_limit();
	/* libuv reads this once, when the first work item is queued. */
	snprintf(buf, sizeof(buf), "%llu", workers);
	setenv("UV_THREADPOOL_SIZE", buf, 1);
	r = xfer_global_init();
	if (r < 0) {
		log_err("cannot set up signals: %s", strerror(-r));
		return 1;
	}

	loop = uv_default_loop();
	r = server_init(&srv, loop, &cfg, -1);
	if (r < 0) {
		log_err("cannot listen on %s: %s", cfg.socket_path,
		        r == -EADDRINUSE ? "another daemon is serving it" : strerror(-r));
		return 1;
	}
	srv.on_stopped = on_stopped;
	{
		struct ctl_config ccfg;

		ctl_config_defaults(&ccfg);
		r = ctl_start(&srv, &ccfg, &ctl);
		if (r < 0) {
			log_err("cannot start the control plane: %s", strerror(-r));
			return 1;
		}
	}
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);

	log_notice("sendfiled %s serving %s", SFD_VERSION, cfg.socket_path);
	uv_run(loop, UV_RUN_DEFAULT);
	log_notice("stopped");
	uv_loop_close(loop);
	return 0;
}
