/*
 * main.c - sendfiled: settings, process setup, the loop.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "conf.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "pool.h"
#include "server.h"
#include "service.h"
#include "xfer.h"

static struct server *srv;
static struct service svc;
static uv_signal_t sig_term, sig_int;
/* SIGTERM and SIGINT: blocked in every thread but the loop's, and in the
 * loop's too while it starts and once it has stopped. */
static sigset_t stop_signals;
static bool stopped;
static struct ctl *ctl;

static void
usage(FILE *f)
{
	fprintf(f,
	        "Usage: sendfiled [OPTION]...\n"
	        "Send files over sockets zero-copy on behalf of local processes.\n"
	        "\n"
	        "  -c, --config PATH            configuration file (default: $SENDFILED_CONFIG,\n"
	        "                               else " SFD_CONFIG_PATH ",\n"
	        "                               which may be missing)\n"
	        "      --check-config           print the effective settings and exit 0, or\n"
	        "                               print the errors and exit 1\n"
	        "  -s, --socket PATH            data socket (default: $SENDFILED_SOCKET, else\n"
	        "                               $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock, else\n"
	        "                               /run/sendfiled/sendfiled.sock)\n"
	        "      --socket-mode MODE       octal file mode of the data socket (default 0660)\n"
	        "      --socket-group GROUP     group of the sockets, by name or number\n"
	        "      --control-socket PATH    control socket (default: NAME.control.sock beside\n"
	        "                               the data socket NAME.sock; control.sock beside\n"
	        "                               sendfiled.sock)\n"
	        "      --events-socket PATH     events socket (default: NAME.events.sock, or\n"
	        "                               events.sock, beside it)\n"
	        "      --control-mode MODE      octal file mode of both (default 0600, or 0660\n"
	        "                               with a socket group)\n"
	        "      --control-probe-ms MS    how often to check that the control listeners\n"
	        "                               still accept (default 1000; 0: never)\n"
	        "      --no-control             run without the control plane\n"
	        "      --max-connections N      client connections at once (default 256)\n"
	        "      --max-in-flight N        requests in flight per connection (default 1024)\n"
	        "      --max-in-flight-per-uid N  requests in flight per user (default 4096)\n"
	        "      --max-handoffs N         handed-off transfers in flight (default 1024;\n"
	        "                               0: refuse hand-offs)\n"
	        "      --chunk-size BYTES       bytes sent per wake-up of one transfer; K, M, G\n"
	        "                               suffixes (default 2M)\n"
	        "      --drain-timeout MS       on SIGTERM, how long transfers may finish\n"
	        "                               (default 10000)\n"
	        "      --deadline MS            a transfer's deadline when its request sets\n"
	        "                               none (default 0: none)\n"
	        "      --max-deadline MS        the longest deadline a request may ask for\n"
	        "                               (default 86400000, one day; 0: any)\n"
	        "      --idle-timeout MS        end a transfer after this long without a byte\n"
	        "                               moving, when its request sets none (default 0:\n"
	        "                               never)\n"
	        "      --max-idle-timeout MS    the longest idle timeout a request may ask for\n"
	        "                               (default 86400000; 0: any)\n"
	        "      --workers N              threads for transfers that could block\n"
	        "                               (default 8)\n"
	        "      --loops N                event loops, each in a thread of its own\n"
	        "                               (default: one per CPU; 1: one loop thread)\n"
	        "      --allow-uid USER         allow this user, by name or uid (repeatable;\n"
	        "                               default: anyone who can open the socket)\n"
	        "      --allow-gid GROUP        allow this primary group (repeatable)\n"
	        "  -l, --log-level LEVEL        err, warning, notice (default), info, debug\n"
	        "  -v, --verbose                same as --log-level debug\n"
	        "  -h, --help                   show this help and exit\n"
	        "  -V, --version                show the version and exit\n"
	        "\n"
	        "Each setting is taken from the first of: the command line; the environment\n"
	        "($SENDFILED_SOCKET, $SENDFILED_LOG_LEVEL); the configuration file; the\n"
	        "built-in default. See sendfiled(8) and sendfiled.conf(5).\n"
	        "\n"
	        "Under socket activation the data socket is the one passed by the service\n"
	        "manager (FileDescriptorName=data); socket, socket_mode and socket_group then\n"
	        "do not apply to it.\n"
	        "\n"
	        "SIGTERM or SIGINT: stop accepting, let transfers in flight finish until the\n"
	        "drain timeout, then cancel the rest; a second signal cancels at once.\n");
}

/* ---- settings ----------------------------------------------------------- */

/* Options that set a configuration key carry OPT_KEY + the key. */
enum {
	OPT_CONFIG = 'c',
	OPT_CHECK = 0x100,
	OPT_NO_CONTROL,
	OPT_KEY = 0x200,
};

static const struct option long_opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"no-control", no_argument, NULL, OPT_NO_CONTROL},
        {"socket", required_argument, NULL, OPT_KEY + CONF_SOCKET},
        {"socket-mode", required_argument, NULL, OPT_KEY + CONF_SOCKET_MODE},
        {"socket-group", required_argument, NULL, OPT_KEY + CONF_SOCKET_GROUP},
        {"control-socket", required_argument, NULL, OPT_KEY + CONF_CONTROL_SOCKET},
        {"events-socket", required_argument, NULL, OPT_KEY + CONF_EVENTS_SOCKET},
        {"control-mode", required_argument, NULL, OPT_KEY + CONF_CONTROL_MODE},
        {"control-probe-ms", required_argument, NULL, OPT_KEY + CONF_CONTROL_PROBE_MS},
        {"max-connections", required_argument, NULL, OPT_KEY + CONF_MAX_CONNECTIONS},
        {"max-in-flight", required_argument, NULL, OPT_KEY + CONF_MAX_IN_FLIGHT},
        {"max-in-flight-per-uid", required_argument, NULL, OPT_KEY + CONF_MAX_IN_FLIGHT_PER_UID},
        {"max-handoffs", required_argument, NULL, OPT_KEY + CONF_MAX_HANDOFFS},
        {"chunk-size", required_argument, NULL, OPT_KEY + CONF_CHUNK_SIZE},
        {"drain-timeout", required_argument, NULL, OPT_KEY + CONF_DRAIN_TIMEOUT_MS},
        {"deadline", required_argument, NULL, OPT_KEY + CONF_DEADLINE_MS},
        {"max-deadline", required_argument, NULL, OPT_KEY + CONF_MAX_DEADLINE_MS},
        {"idle-timeout", required_argument, NULL, OPT_KEY + CONF_IDLE_TIMEOUT_MS},
        {"max-idle-timeout", required_argument, NULL, OPT_KEY + CONF_MAX_IDLE_TIMEOUT_MS},
        {"workers", required_argument, NULL, OPT_KEY + CONF_WORKERS},
        {"loops", required_argument, NULL, OPT_KEY + CONF_LOOPS},
        {"allow-uid", required_argument, NULL, OPT_KEY + CONF_ALLOW_UIDS},
        {"allow-gid", required_argument, NULL, OPT_KEY + CONF_ALLOW_GIDS},
        {"log-level", required_argument, NULL, OPT_KEY + CONF_LOG_LEVEL},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
};

/* A setting from the command line, applied after the file and environment. */
struct flag {
	enum conf_key key;
	const char *value;
	const char *name; /* the option's long name, for messages */
	bool append;
};

struct options {
	const char *config; /* --config */
	bool check;
	bool no_control;
	struct flag *flags;
	int n_flags;
};

/* The long name of option @c, for messages ("--socket" also for -s). */
static const char *
flag_name(int c)
{
	if (c == 's')
		c = OPT_KEY + CONF_SOCKET;
	else if (c == 'l')
		c = OPT_KEY + CONF_LOG_LEVEL;
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* Return: -1 to go on, else the exit status. */
static int
parse_args(int argc, char **argv, struct options *o)
{
	bool seen_list[CONF_N_KEYS] = {false};
	int c;

	o->flags = calloc((size_t)argc + 1, sizeof(*o->flags));
	if (!o->flags)
		return 1;
	for (;;) {
		struct flag *fl = &o->flags[o->n_flags];

		c = getopt_long(argc, argv, "c:s:l:vhV", long_opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_CONFIG:
			o->config = optarg;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_NO_CONTROL:
			o->no_control = true;
			break;
		case 's':
		case 'l':
		case 'v':
			fl->key = c == 's' ? CONF_SOCKET : CONF_LOG_LEVEL;
			fl->value = c == 'v' ? "debug" : optarg;
			fl->name = flag_name(c);
			o->n_flags++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sendfiled %s\n", SFD_VERSION);
			return 0;
		default:
			if (c < OPT_KEY || c >= OPT_KEY + CONF_N_KEYS) {
				usage(stderr);
				return 2;
			}
			fl->key = (enum conf_key)(c - OPT_KEY);
			fl->value = optarg;
			fl->name = flag_name(c);
			/* Repeated --allow-uid/--allow-gid add up; the first
			 * replaces the file's list. */
			fl->append = seen_list[fl->key];
			seen_list[fl->key] = true;
			o->n_flags++;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sendfiled: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

static void
on_conf_error(void *userdata, const char *msg)
{
	bool check = *(bool *)userdata;

	/* --check-config reads like a compiler: "FILE:LINE: message". */
	if (check)
		fprintf(stderr, "%s\n", msg);
	else
		log_err("%s", msg);
}

/*
 * Settings in rising precedence: defaults, file, environment, command line.
 * Return: -1 to go on, else the exit status.
 */
static int
load_settings(const struct options *o, struct conf *cfg)
{
	const char *env = getenv("SENDFILED_CONFIG");
	bool explicit = o->config || (env && *env);
	const char *path = o->config ? o->config : explicit ? env : SFD_CONFIG_PATH;
	bool check = o->check;
	int file_errors, env_errors, flag_errors = 0;
	bool found;

	conf_defaults(cfg);
	file_errors = conf_load(cfg, path, explicit, on_conf_error, &check);
	found = file_errors != -ENOENT;
	if (!found)
		file_errors = 0;
	env_errors = conf_apply_env(cfg, on_conf_error, &check);
	for (int i = 0; i < o->n_flags; i++) {
		const struct flag *fl = &o->flags[i];
		char err[512], msg[640];

		if (conf_set(cfg, fl->key, fl->value, fl->append, CONF_FROM_CMDLINE, 0, err,
		             sizeof(err)) < 0) {
			snprintf(msg, sizeof(msg), "--%s: %s", fl->name, err);
			on_conf_error(&check, msg);
			flag_errors++;
		}
	}

	if (o->check) {
		int errors = file_errors + env_errors + flag_errors;

		if (errors) {
			fprintf(stderr, "sendfiled: %d error%s in the configuration\n", errors,
			        errors == 1 ? "" : "s");
			return 1;
		}
		printf("# sendfiled %s: effective configuration\n", SFD_VERSION);
		printf("# configuration file: %s%s\n", path,
		       found ? "" : " (not found: built-in defaults)");
		if (o->no_control)
			printf("# control plane: off (--no-control)\n");
		conf_print(cfg, stdout);
		return 0;
	}
	if (flag_errors) {
		fprintf(stderr, "Try 'sendfiled --help'.\n");
		return 2;
	}
	if (file_errors || env_errors)
		return 1;
	if (found)
		log_info("configuration read from %s", path);
	return -1;
}

/* ---- the running daemon ------------------------------------------------- */

static void
on_stopping(void *data)
{
	(void)data;
	service_stopping(&svc);
}

static void
on_stopped(void *data)
{
	(void)data;
	if (stopped)
		return;
	stopped = true;
	/* Closing the handles restores the default action, which would kill
	 * the process on a stop request that comes during the last steps. */
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	service_close(&svc);
	ctl_free(ctl);
	ctl = NULL;
	server_free(srv);
	srv = NULL;
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct server_status ss;
	bool again;

	server_status(srv, &ss);
	again = ss.stopping;
	log_notice("%s: %s", strsignal(signum),
	           again ? "cancelling transfers in flight" : "shutting down");
	server_stop(srv, again);
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

/* Give the socket file at @path to @gid, unless it has it already (a
 * service whose own group it is need not, and may not be allowed to, call
 * chown()). */
static int
chown_group(const char *path, gid_t gid)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (st.st_gid == gid)
		return 0;
	if (chown(path, (uid_t)-1, gid) < 0)
		return -errno;
	return 0;
}

/*
 * The data socket: the one the service manager passed, or one we bind.
 * Return: 0, or the exit status.
 */
static int
start_server(uv_loop_t *loop, struct conf *cfg, bool no_control)
{
	static const struct server_hooks hooks = {.on_stopping = on_stopping,
	                                          .on_stopped = on_stopped};
	char path[sizeof(cfg->srv.socket_path)];
	struct server_status ss;
	struct ctl_config ccfg;
	int fd = -1, r;

	r = service_take_listener(&fd, path, sizeof(path));
	if (r < 0)
		return 1;
	if (r > 0) {
		if (cfg->origin[CONF_SOCKET] != CONF_FROM_DEFAULT &&
		    strcmp(path, cfg->srv.socket_path) != 0)
			log_notice("serving the socket passed by the service manager (%s), not %s",
			           path[0] ? path : "no path", cfg->srv.socket_path);
		if (cfg->origin[CONF_SOCKET_MODE] != CONF_FROM_DEFAULT || cfg->has_socket_group)
			log_info("socket_mode and socket_group do not apply to a passed socket: "
			         "its owner sets them (SocketMode=, SocketGroup=)");
		if (!no_control && conf_ctl_config(cfg, path, &ccfg) == -EDESTADDRREQ) {
			log_err("the passed socket has no file system path to put the control "
			        "sockets beside: set control_socket and events_socket, or use "
			        "--no-control");
			close(fd);
			return 1;
		}
		memcpy(cfg->srv.socket_path, path, sizeof(path));
		log_info("socket activation: serving the passed socket %s",
		         path[0] ? path : "(no path)");
	}

	cfg->srv.workers = cfg->workers;
	r = server_new(loop, &cfg->srv, fd, &hooks, &srv);
	if (r < 0) {
		log_err("cannot listen on %s: %s", cfg->srv.socket_path,
		        r == -EADDRINUSE ? "another daemon is serving it" : strerror(-r));
		return 1;
	}
	server_status(srv, &ss);
	if (ss.owns_path && cfg->has_socket_group) {
		r = chown_group(cfg->srv.socket_path, cfg->socket_group);
		if (r < 0) {
			log_err("cannot give %s to group %u: %s", cfg->srv.socket_path,
			        (unsigned)cfg->socket_group, strerror(-r));
			server_free(srv);
			srv = NULL;
			return 1;
		}
	}
	return 0;
}

/* Return: 0, or the exit status. */
static int
start_control(const struct conf *cfg)
{
	const char *data_path = server_config(srv)->socket_path;
	struct ctl_config ccfg;
	int r;

	r = conf_ctl_config(cfg, data_path, &ccfg);
	if (r < 0) {
		log_err("control socket path too long (beside %s)", data_path);
		return 1;
	}
	ccfg.has_group = cfg->has_socket_group;
	ccfg.group = cfg->socket_group;
	r = ctl_start(srv, &ccfg, &ctl);
	if (r < 0) {
		log_err("cannot start the control plane on %s and %s: %s (--no-control runs "
		        "without it)",
		        ccfg.control_path, ccfg.events_path, strerror(-r));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct options opts = {0};
	struct conf cfg;
	uv_loop_t *loop;
	char buf[32];
	int r;

	/* A stop request that comes while we start up (a supervisor may send
	 * one at any time) waits until the loop can handle it gracefully,
	 * rather than killing us halfway. Threads started meanwhile (nng's)
	 * keep these blocked, so the loop's handler receives them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	pool_init(&stop_signals);

	log_setup();
	r = parse_args(argc, argv, &opts);
	if (r < 0)
		r = load_settings(&opts, &cfg);
	free(opts.flags);
	if (r >= 0)
		return r;
	log_set_level(cfg.log_level);

	/* sendfile(2) has no MSG_NOSIGNAL: a closed peer must be an EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile_limit();
	/* libuv reads this once, when the first work item is queued. */
	snprintf(buf, sizeof(buf), "%u", cfg.workers);
	setenv("UV_THREADPOOL_SIZE", buf, 1);
	r = xfer_global_init();
	if (r < 0) {
		log_err("cannot set up signals: %s", strerror(-r));
		return 1;
	}

	loop = uv_default_loop();
	r = start_server(loop, &cfg, opts.no_control);
	if (r == 0 && !opts.no_control) {
		r = start_control(&cfg);
		if (r) {
			server_free(srv);
			srv = NULL;
		}
	}
	if (r) {
		/* Let the closed handles finish closing. */
		uv_run(loop, UV_RUN_DEFAULT);
		uv_loop_close(loop);
		return r;
	}
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
	service_start(&svc, loop, srv);

	log_notice("sendfiled %s serving %s with %u loop%s", SFD_VERSION,
	           server_config(srv)->socket_path, server_config(srv)->loops,
	           server_config(srv)->loops == 1 ? "" : "s");
	uv_run(loop, UV_RUN_DEFAULT);
	log_notice("stopped");
	uv_loop_close(loop);
	return 0;
}
