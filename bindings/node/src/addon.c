/*
 * addon.c - the native part of the Node.js binding: libsendfiled, loaded with
 * dlopen() from a path the JavaScript side found, driven from Node's own
 * event loop.
 *
 * Only Node-API and libuv's public header are used (no V8, no C++), and of
 * libsendfiled only its public header: every function is resolved by name,
 * so the library is found at run time by the lookup rules of lib/library.js
 * rather than by the dynamic linker's.
 *
 * A connection's descriptor is watched with one uv_poll_t on the loop of the
 * environment that opened it. Readable: sfd_client_dispatch() collects the
 * completions, which go to the connection's JavaScript callback in one call.
 * Writable is watched only while the JavaScript side holds requests that met
 * -EAGAIN (the client is in non-blocking mode, so nothing here ever waits).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include <sendfiled.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* One loaded copy of the library. Never unloaded: clients made from it may
 * live as long as the process. */
struct lib {
	void *dl;
	__typeof__(sfd_client_open) *open;
	__typeof__(sfd_client_free) *free;
	__typeof__(sfd_client_get_fd) *get_fd;
	__typeof__(sfd_client_set_nonblocking) *set_nonblocking;
	__typeof__(sfd_client_set_reconnect) *set_reconnect;
	__typeof__(sfd_client_submit) *submit;
	__typeof__(sfd_client_dispatch) *dispatch;
	__typeof__(sfd_client_cancel) *cancel;
	__typeof__(sfd_client_in_flight) *in_flight;
	__typeof__(sfd_default_socket_path) *default_socket_path;
	/* Optional: added in the library's version 0.3; NULL in an older one,
	 * which still loads (ping() then rejects). */
	__typeof__(sfd_client_ping) *ping;
};

/*
 * A connection. Its lifecycle: OPEN (polled), then CLOSED by conn.close(),
 * by the environment's teardown or by the finaliser of its JavaScript
 * handle, whichever comes first: the client is freed and the poll handle
 * closed then. The memory goes once both the handle's close callback and
 * the finaliser have run.
 */
struct conn {
	napi_env env;
	const struct lib *lib;
	struct sfd_client *client;
	uv_poll_t poll;
	int events; /* UV_READABLE, plus UV_WRITABLE while wanted */
	napi_ref cb;
	napi_async_context actx;
	/* Filled by on_completion() during one dispatch. */
	napi_value batch;
	uint32_t batch_len;
	bool closed;
	bool handle_closed;
	bool finalized;
};

#define CHECK(env, call)                                                                           \
	do {                                                                                       \
		if ((call) != napi_ok)                                                             \
			return throw_last(env);                                                    \
	} while (0)

static napi_value
throw_last(napi_env env)
{
	const napi_extended_error_info *info = NULL;
	bool pending = false;

	napi_is_exception_pending(env, &pending);
	if (!pending) {
		napi_get_last_error_info(env, &info);
		napi_throw_error(env, "ERR_SENDFILED_ADDON",
		                 info && info->error_message ? info->error_message
		                                             : "Node-API call failed");
	}
	return NULL;
}

static napi_value
throw_type(napi_env env, const char *msg)
{
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
	return NULL;
}

static napi_value
make_int(napi_env env, int64_t v)
{
	napi_value out = NULL;

	napi_create_int64(env, v, &out);
	return out;
}

static napi_value
make_u64(napi_env env, uint64_t v)
{
	napi_value out = NULL;

	/* Byte counts and ids: exact as doubles far beyond any file size. */
	napi_create_double(env, (double)v, &out);
	return out;
}

static bool
get_i64(napi_env env, napi_value v, int64_t *ret)
{
	napi_valuetype t;

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number)
		return false;
	return napi_get_value_int64(env, v, ret) == napi_ok;
}

/* The external pointer of a handle made by this addon, or NULL. */
static void *
unwrap(napi_env env, napi_value v)
{
	napi_valuetype t;
	void *p = NULL;

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external)
		return NULL;
	if (napi_get_value_external(env, v, &p) != napi_ok)
		return NULL;
	return p;
}

/* ---- the library --------------------------------------------------------- */

/*
 * load(path) -> handle. Throws an Error whose message is dlerror()'s, or
 * names the first public function the file lacks.
 */
static napi_value
js_load(napi_env env, napi_callback_info info)
{
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(field, name) {#name, offsetof(struct lib, field)}
	        SYM(open, sfd_client_open),
	        SYM(free, sfd_client_free),
	        SYM(get_fd, sfd_client_get_fd),
	        SYM(set_nonblocking, sfd_client_set_nonblocking),
	        SYM(set_reconnect, sfd_client_set_reconnect),
	        SYM(submit, sfd_client_submit),
	        SYM(dispatch, sfd_client_dispatch),
	        SYM(cancel, sfd_client_cancel),
	        SYM(in_flight, sfd_client_in_flight),
	        SYM(default_socket_path, sfd_default_socket_path),
#undef SYM
	};
	size_t argc = 1, len = 0;
	napi_value argv[1], out;
	char path[4096];
	struct lib *lib;
	void *dl;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok)
		return throw_type(env, "the library path must be a string");
	if (len == 0 || len >= sizeof(path) - 1)
		return throw_type(env, "the library path must be a non-empty string");

	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *e = dlerror();

		napi_throw_error(env, "ERR_DLOPEN_FAILED", e ? e : "dlopen failed");
		return NULL;
	}
	lib = calloc(1, sizeof(*lib));
	if (!lib) {
		dlclose(dl);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	lib->dl = dl;
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *f = dlsym(dl, syms[i].name);

		if (!f) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s is missing from this library (too old?)",
			         syms[i].name);
			dlclose(dl);
			free(lib);
			napi_throw_error(env, "ERR_DLOPEN_FAILED", msg);
			return NULL;
		}
		memcpy((char *)lib + syms[i].off, &f, sizeof(f));
	}
	lib->ping = (__typeof__(sfd_client_ping) *)dlsym(dl, "sfd_client_ping");
	/* Kept for the life of the process: see struct lib. */
	CHECK(env, napi_create_external(env, lib, NULL, NULL, &out));
	return out;
}

/* defaultSocketPath(lib) -> string or negative errno. */
static napi_value
js_default_socket_path(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	const struct lib *lib;
	char buf[4096];
	int n;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	lib = argc >= 1 ? unwrap(env, argv[0]) : NULL;
	if (!lib)
		return throw_type(env, "not a library handle");
	n = lib->default_socket_path(buf, sizeof(buf));
	if (n < 0)
		return make_int(env, n);
	CHECK(env, napi_create_string_utf8(env, buf, (size_t)n, &out));
	return out;
}

/* ---- connections ---------------------------------------------------------- */

static void
conn_maybe_free(struct conn *c)
{
	if (c->handle_closed && c->finalized)
		free(c);
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->handle_closed = true;
	conn_maybe_free(c);
}

static void cleanup_hook(void *arg);

/* Stop watching, free the client (closing its descriptor), drop the
 * callback. Safe to call more than once. */
static void
conn_close(struct conn *c, bool from_cleanup)
{
	if (c->closed)
		return;
	c->closed = true;
	/* Stopped before the descriptor closes: libuv must not watch a
	 * descriptor number that may be reused. */
	uv_poll_stop(&c->poll);
	c->lib->free(c->client);
	c->client = NULL;
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	if (c->cb) {
		napi_delete_reference(c->env, c->cb);
		c->cb = NULL;
	}
	if (c->actx) {
		napi_async_destroy(c->env, c->actx);
		c->actx = NULL;
	}
	if (!from_cleanup)
		napi_remove_env_cleanup_hook(c->env, cleanup_hook, c);
}

static void
cleanup_hook(void *arg)
{
	conn_close(arg, true);
}

static void
conn_finalize(napi_env env, void *data, void *hint)
{
	struct conn *c = data;

	(void)env;
	(void)hint;
	conn_close(c, false);
	c->finalized = true;
	conn_maybe_free(c);
}

static napi_value
result_object(napi_env env, const struct sfd_result *r)
{
	napi_value o = NULL, v;

	if (napi_create_object(env, &o) != napi_ok)
		return NULL;
	napi_set_named_property(env, o, "id", make_u64(env, r->id));
	napi_set_named_property(env, o, "status", make_int(env, r->status));
	napi_set_named_property(env, o, "error", make_int(env, r->error));
	napi_set_named_property(env, o, "method", make_int(env, r->method));
	napi_set_named_property(env, o, "flags", make_int(env, r->flags));
	napi_set_named_property(env, o, "bytesSent", make_u64(env, r->bytes_sent));
	napi_set_named_property(env, o, "finalOffset", make_u64(env, r->final_offset));
	if (napi_create_string_utf8(env, r->message, strnlen(r->message, SFD_MESSAGE_MAX), &v) ==
	    napi_ok)
		napi_set_named_property(env, o, "message", v);
	return o;
}

/* Called by sfd_client_dispatch(), inside on_poll()'s handle scope. */
static void
on_completion(struct sfd_client *client, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct conn *c = userdata;
	napi_value o;

	(void)client;
	(void)id;
	o = result_object(c->env, res);
	if (o)
		napi_set_element(c->env, c->batch, c->batch_len++, o);
}

/*
 * Did the daemon close the connection with records of ours unread? The
 * kernel says so with ECONNRESET (rather than a plain end of file), once:
 * ask before sfd_client_dispatch() reads the end. Records are read in
 * order, so then the last request sent was never read.
 */
static bool
closed_unread(const struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->lib->get_fd(c->client), SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return false;
	return err == ECONNRESET;
}

/*
 * The connection's descriptor is ready. The JavaScript callback gets
 * (results, error, writable, unread): the completions dispatched now, a
 * negative errno when the connection has ended (0 otherwise), whether the
 * descriptor is writable, and whether the daemon left the last request sent
 * unread when it closed (see closed_unread()).
 */
static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	napi_env env = c->env;
	napi_handle_scope scope;
	napi_value argv[4], fn, recv, ignored;
	bool unread = false;
	int err = 0;

	if (c->closed)
		return;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	if (napi_create_array(env, &c->batch) != napi_ok)
		goto out;
	c->batch_len = 0;
	if (status < 0 || (events & UV_DISCONNECT))
		unread = closed_unread(c);
	if (status < 0)
		err = -ECONNRESET;
	else if (events & (UV_READABLE | UV_DISCONNECT))
		err = c->lib->dispatch(c->client, on_completion);
	if (err > 0)
		err = 0;
	argv[0] = c->batch;
	argv[1] = make_int(env, err);
	napi_get_boolean(env, status >= 0 && (events & UV_WRITABLE), &argv[2]);
	napi_get_boolean(env, unread, &argv[3]);
	if (napi_get_reference_value(env, c->cb, &fn) != napi_ok || !fn)
		goto out;
	napi_get_global(env, &recv);
	/* Through napi_make_callback(): promises resolved by the callback
	 * run their reactions before control returns to libuv. */
	if (napi_make_callback(env, c->actx, recv, fn, 4, argv, &ignored) != napi_ok) {
		bool pending = false;
		napi_value exc;

		napi_is_exception_pending(env, &pending);
		if (pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok)
			napi_fatal_exception(env, exc);
	}
out:
	c->batch = NULL;
	napi_close_handle_scope(env, scope);
}

/*
 * open(lib, path | null, callback) -> handle, or a negative errno from
 * sfd_client_open(). The client is put in non-blocking mode and its
 * descriptor watched on this environment's loop.
 */
static napi_value
js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 3, len = 0;
	napi_value argv[3], out, name;
	napi_valuetype t;
	const struct lib *lib;
	char path[4096], *p = NULL;
	struct uv_loop_s *loop;
	struct sfd_client *client = NULL;
	struct conn *c;
	int r;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	lib = argc >= 3 ? unwrap(env, argv[0]) : NULL;
	if (!lib)
		return throw_type(env, "not a library handle");
	CHECK(env, napi_typeof(env, argv[1], &t));
	if (t == napi_string) {
		CHECK(env, napi_get_value_string_utf8(env, argv[1], path, sizeof(path), &len));
		if (len >= sizeof(path) - 1)
			return make_int(env, -ENAMETOOLONG);
		p = path;
	} else if (t != napi_null && t != napi_undefined) {
		return throw_type(env, "the socket path must be a string");
	}
	CHECK(env, napi_typeof(env, argv[2], &t));
	if (t != napi_function)
		return throw_type(env, "the callback must be a function");
	CHECK(env, napi_get_uv_event_loop(env, &loop));

	r = lib->open(p, &client);
	if (r < 0)
		return make_int(env, r);
	c = calloc(1, sizeof(*c));
	if (!c) {
		lib->free(client);
		return make_int(env, -ENOMEM);
	}
	c->env = env;
	c->lib = lib;
	c->client = client;
	c->poll.data = c;
	/* The loop watches this descriptor: it must never be replaced. */
	lib->set_reconnect(client, 0);
	lib->set_nonblocking(client, true);
	r = uv_poll_init(loop, &c->poll, lib->get_fd(client));
	if (r < 0) {
		lib->free(client);
		free(c);
		return make_int(env, r);
	}
	c->events = UV_READABLE | UV_DISCONNECT;
	r = uv_poll_start(&c->poll, c->events, on_poll);
	if (r < 0) {
		lib->free(client);
		uv_close((uv_handle_t *)&c->poll, on_handle_closed);
		c->closed = true;
		c->finalized = true; /* no external will own it */
		return make_int(env, r);
	}
	/* Idle connections do not keep the process alive; the JavaScript
	 * side refs the handle while requests are in flight. */
	uv_unref((uv_handle_t *)&c->poll);
	if (napi_create_reference(env, argv[2], 1, &c->cb) != napi_ok ||
	    napi_create_string_utf8(env, "sendfiled", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_async_init(env, NULL, name, &c->actx) != napi_ok ||
	    napi_add_env_cleanup_hook(env, cleanup_hook, c) != napi_ok ||
	    napi_create_external(env, c, conn_finalize, NULL, &out) != napi_ok) {
		/* Not owned by an external yet: finalise by hand. */
		conn_finalize(env, c, NULL);
		return throw_last(env);
	}
	return out;
}

static struct conn *
conn_arg(napi_env env, napi_callback_info info, size_t n, napi_value *argv)
{
	size_t argc = n;
	struct conn *c;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n)
		return NULL;
	c = unwrap(env, argv[0]);
	return c;
}

/* submit(conn, outFd, inFd, offset, count, flags) -> id (> 0) or a negative
 * errno (-EAGAIN: the connection is full, nothing was sent). */
static napi_value
js_submit(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	struct conn *c = conn_arg(env, info, 6, argv);
	int64_t out_fd, in_fd, off, count, flags;
	uint64_t id = 0;
	int r;

	if (!c)
		return throw_type(env, "not a connection handle");
	if (!get_i64(env, argv[1], &out_fd) || !get_i64(env, argv[2], &in_fd) ||
	    !get_i64(env, argv[3], &off) || !get_i64(env, argv[4], &count) ||
	    !get_i64(env, argv[5], &flags))
		return throw_type(env, "submit() takes numbers");
	if (c->closed)
		return make_int(env, -ENOTCONN);
	if (out_fd < 0 || out_fd > INT32_MAX || in_fd < 0 || in_fd > INT32_MAX)
		return make_int(env, -EBADF);
	if (off < 0 || count < 0 || flags < 0 || flags > UINT32_MAX)
		return make_int(env, -EINVAL);
	r = c->lib->submit(c->client, (int)out_fd, (int)in_fd, (uint64_t)off, (uint64_t)count,
	                   (unsigned)flags, c, &id);
	if (r < 0)
		return make_int(env, r);
	return make_u64(env, id);
}

/* cancel(conn, id) -> 0 or a negative errno (-EAGAIN, -ENOENT). */
static napi_value
js_cancel(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct conn *c = conn_arg(env, info, 2, argv);
	int64_t id;

	if (!c)
		return throw_type(env, "not a connection handle");
	if (!get_i64(env, argv[1], &id) || id <= 0)
		return throw_type(env, "the id must be a positive number");
	if (c->closed)
		return make_int(env, -ENOTCONN);
	return make_int(env, c->lib->cancel(c->client, (uint64_t)id));
}

/* setWatch(conn, writable, ref): watch writability too (or not); keep the
 * loop alive (or not). */
static napi_value
js_set_watch(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct conn *c = conn_arg(env, info, 3, argv);
	bool writable = false, ref = false;
	int events, r = 0;

	if (!c)
		return throw_type(env, "not a connection handle");
	napi_get_value_bool(env, argv[1], &writable);
	napi_get_value_bool(env, argv[2], &ref);
	if (c->closed)
		return make_int(env, -ENOTCONN);
	events = UV_READABLE | UV_DISCONNECT | (writable ? UV_WRITABLE : 0);
	if (events != c->events) {
		r = uv_poll_start(&c->poll, events, on_poll);
		if (r == 0)
			c->events = events;
	}
	if (ref)
		uv_ref((uv_handle_t *)&c->poll);
	else
		uv_unref((uv_handle_t *)&c->poll);
	return make_int(env, r);
}

/* close(conn): the daemon cancels what is still in flight; no callback
 * comes after this. */
static napi_value
js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct conn *c = conn_arg(env, info, 1, argv);

	if (!c)
		return throw_type(env, "not a connection handle");
	conn_close(c, false);
	return NULL;
}

/* inFlight(conn) -> requests submitted and not completed. */
static napi_value
js_in_flight(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct conn *c = conn_arg(env, info, 1, argv);

	if (!c)
		return throw_type(env, "not a connection handle");
	return make_int(env, c->closed ? 0 : c->lib->in_flight(c->client));
}

/* ---- ping ------------------------------------------------------------------ */

/* One ping, run on libuv's thread pool: sfd_client_ping() waits for the
 * daemon's answer, which Node's event loop must not do. It uses a connection
 * of its own, since a client is not thread-safe and a connection's client
 * belongs to the loop thread. */
struct ping_work {
	const struct lib *lib;
	char path[4096];
	bool has_path;
	int timeout_ms;
	napi_async_work work;
	napi_deferred deferred;
	int r;
	struct sfd_ping_info info;
};

static void
ping_execute(napi_env env, void *data)
{
	struct ping_work *w = data;
	struct sfd_client *c = NULL;

	(void)env;
	w->r = w->lib->open(w->has_path ? w->path : NULL, &c);
	if (w->r < 0)
		return;
	w->r = w->lib->ping(c, w->timeout_ms, &w->info);
	w->lib->free(c);
}

/* Settles with { r } (a negative errno) or { r: 0, protocolVersion,
 * daemonVersion, features }, the features as the library's bit mask. */
static void
ping_complete(napi_env env, napi_status status, void *data)
{
	struct ping_work *w = data;
	napi_value out = NULL, v;

	if (napi_create_object(env, &out) == napi_ok) {
		napi_set_named_property(env, out, "r",
		                        make_int(env, status == napi_ok ? w->r : -ECANCELED));
		if (status == napi_ok && w->r == 0) {
			napi_set_named_property(env, out, "protocolVersion",
			                        make_int(env, w->info.protocol_version));
			if (napi_create_string_utf8(env, w->info.daemon_version, NAPI_AUTO_LENGTH,
			                            &v) == napi_ok)
				napi_set_named_property(env, out, "daemonVersion", v);
			napi_set_named_property(env, out, "features",
			                        make_int(env, w->info.features));
		}
		napi_resolve_deferred(env, w->deferred, out);
	} else {
		napi_get_undefined(env, &out);
		napi_reject_deferred(env, w->deferred, out);
	}
	napi_delete_async_work(env, w->work);
	free(w);
}

/* A ping that could not be started: its promise resolves to { r: -ENOMEM }. */
static void
ping_settle_failed(napi_env env, napi_deferred deferred)
{
	napi_value out = NULL;

	if (napi_create_object(env, &out) == napi_ok)
		napi_set_named_property(env, out, "r", make_int(env, -ENOMEM));
	else
		napi_get_undefined(env, &out);
	napi_resolve_deferred(env, deferred, out);
}

/*
 * ping(lib, path or null, timeoutMs) -> a Promise of the outcome (see
 * ping_complete()), or -ENOSYS at once when the library has no
 * sfd_client_ping().
 */
static napi_value
js_ping(napi_env env, napi_callback_info info)
{
	size_t argc = 3, len = 0;
	napi_value argv[3], promise, name;
	napi_valuetype t;
	struct ping_work *w;
	const struct lib *lib;
	int64_t timeout;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3 || !(lib = unwrap(env, argv[0])))
		return throw_type(env, "not a library handle");
	if (!get_i64(env, argv[2], &timeout))
		return throw_type(env, "the timeout must be a number");
	if (!lib->ping)
		return make_int(env, -ENOSYS);
	w = calloc(1, sizeof(*w));
	if (!w) {
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	w->lib = lib;
	w->timeout_ms = timeout < 0 ? -1 : (int)(timeout > INT32_MAX ? INT32_MAX : timeout);
	if (napi_typeof(env, argv[1], &t) == napi_ok && t == napi_string) {
		if (napi_get_value_string_utf8(env, argv[1], w->path, sizeof(w->path), &len) !=
		            napi_ok ||
		    len == 0 || len >= sizeof(w->path) - 1) {
			free(w);
			return throw_type(env, "the socket path must be a non-empty string");
		}
		w->has_path = true;
	}
	if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
		free(w);
		return throw_last(env);
	}
	if (napi_create_string_utf8(env, "sendfiled.ping", NAPI_AUTO_LENGTH, &name) == napi_ok &&
	    napi_create_async_work(env, NULL, name, ping_execute, ping_complete, w, &w->work) ==
	            napi_ok) {
		if (napi_queue_async_work(env, w->work) == napi_ok)
			return promise;
		napi_delete_async_work(env, w->work);
	}
	/* The promise is made: settle it, so that nothing waits on it forever. */
	ping_settle_failed(env, w->deferred);
	free(w);
	return promise;
}

/* ---- file positions -------------------------------------------------------- */

/*
 * lseek(fd, offset, whence) -> the new position, or a negative errno. Node
 * has no lseek of its own, and the file position is part of the result.
 */
static napi_value
js_lseek(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int64_t fd, off, whence;
	off_t r;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off) ||
	    !get_i64(env, argv[2], &whence))
		return throw_type(env, "lseek() takes numbers");
	if (fd < 0 || fd > INT32_MAX)
		return make_int(env, -EBADF);
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
		return make_int(env, -EINVAL);
	r = lseek((int)fd, (off_t)off, (int)whence);
	if (r < 0)
		return make_int(env, -errno);
	return make_int(env, r);
}

/*
 * Keep this module's code mapped for the life of the process. Node unloads
 * an addon when the last environment using it ends (a worker thread
 * exiting), but the poll handles closed then still call on_handle_closed()
 * when the loop finishes closing them, after the unload.
 */
static void
pin_module(void)
{
	static bool pinned;
	Dl_info info;

	if (pinned || !dladdr((void *)on_handle_closed, &info) || !info.dli_fname)
		return;
	/* RTLD_NOLOAD: the object is loaded already; this only adds
	 * RTLD_NODELETE to it. */
	if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
		pinned = true;
}

NAPI_MODULE_INIT()
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
	        {"load", js_load},     {"defaultSocketPath", js_default_socket_path},
	        {"open", js_open},     {"submit", js_submit},
	        {"cancel", js_cancel}, {"setWatch", js_set_watch},
	        {"close", js_close},   {"inFlight", js_in_flight},
	        {"lseek", js_lseek},   {"ping", js_ping},
	};

	pin_module();
	for (size_t i = 0; i < ARRAY_SIZE(fns); i++) {
		napi_value f;

		if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) !=
		            napi_ok ||
		    napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
			return NULL;
	}
	return exports;
}
