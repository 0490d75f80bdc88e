/*
 * test-xfer.c - the transfer engine on a real libuv loop, with real files and
 * sockets, and with its syscalls wrapped (-Wl,--wrap) so that a test can
 * inject what the kernel rarely does on demand: EAGAIN, EINTR, short counts,
 * a reset peer, EINVAL from a method that does not apply, a file truncated
 * under the transfer.
 *
 * xfer_new() takes ownership of the descriptors it is given, so each test
 * hands it dups and keeps its own: the source's file position is shared and
 * is part of the result.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/socket.h>
#include <uv.h>

#include "engine.h"
#include "fairq.h"
#include "macro.h"
#include "validate.h"
#include "xfer.h"
#include "helpers.h"

#define KiB (1024u)
#define MiB (1024u * 1024u)

#define ST_OK WIRE_STATUS_OK
#define ST_NOT_AVAILABLE WIRE_STATUS_NOT_AVAILABLE
#define ST_PEER_CLOSED WIRE_STATUS_PEER_CLOSED
#define ST_IO_ERROR WIRE_STATUS_IO_ERROR
#define ST_CANCELLED WIRE_STATUS_CANCELLED
#define M_NONE WIRE_METHOD_NONE
#define M_SENDFILE WIRE_METHOD_SENDFILE
#define M_SPLICE WIRE_METHOD_SPLICE
#define M_READ_WRITE WIRE_METHOD_READ_WRITE

/* ---- syscall wrappers and fault injection ------------------------------- */

enum sys {
	SYS_SENDFILE,
	SYS_SPLICE,
	SYS_WRITE,
	SYS_PREAD,
	SYS_COUNT,
};

enum fault_kind {
	FAULT_NONE,
	FAULT_FAIL_AT,     /* -1/err on call number `at` (1-based), once */
	FAULT_SHORT,       /* every call moves at most half of what it asks */
	FAULT_FAIL_AFTER,  /* -1/err once `after` bytes have gone through */
	FAULT_TRUNCATE_AT, /* after call number `at` moved bytes: ftruncate(src, to) */
};

struct fault {
	enum fault_kind kind;
	int err;
	unsigned at;
	uint64_t after;
	off_t to;
};

struct sys_stats {
	unsigned calls;
	size_t max_request;
	uint64_t bytes;
	/* Bytes moved per loop iteration (see on_prepare). */
	uint64_t iter_bytes, max_iter_bytes;
	unsigned last_iter;
};

static struct {
	pthread_mutex_t mtx;
	int dst, src; /* the engine's descriptors: only calls on them count */
	struct fault fault[SYS_COUNT];
	struct sys_stats st[SYS_COUNT];
	unsigned iteration;
} inj = {.mtx = PTHREAD_MUTEX_INITIALIZER, .dst = -1, .src = -1};

static void
inj_reset(void)
{
	pthread_mutex_lock(&inj.mtx);
	inj.dst = inj.src = -1;
	memset(inj.fault, 0, sizeof(inj.fault));
	memset(inj.st, 0, sizeof(inj.st));
	inj.iteration = 0;
	pthread_mutex_unlock(&inj.mtx);
}

static void
inj_arm(enum sys s, struct fault f)
{
	pthread_mutex_lock(&inj.mtx);
	inj.fault[s] = f;
	pthread_mutex_unlock(&inj.mtx);
}

static struct sys_stats
inj_stats(enum sys s)
{
	struct sys_stats st;

	pthread_mutex_lock(&inj.mtx);
	st = inj.st[s];
	pthread_mutex_unlock(&inj.mtx);
	return st;
}

/*
 * Before the real call: count it, and either fail it (return true, errno
 * set) or let it through, possibly asking for fewer bytes.
 */
static bool
fault_before(enum sys s, int fd, size_t *count)
{
	struct fault *f = &inj.fault[s];
	struct sys_stats *st = &inj.st[s];
	bool fail = false;

	pthread_mutex_lock(&inj.mtx);
	if (fd < 0 || fd != (s == SYS_PREAD ? inj.src : inj.dst)) {
		pthread_mutex_unlock(&inj.mtx);
		return false;
	}
	st->calls++;
	st->max_request = MAX(st->max_request, *count);
	switch (f->kind) {
	case FAULT_FAIL_AT:
		if (st->calls == f->at) {
			errno = f->err;
			fail = true;
		}
		break;
	case FAULT_SHORT:
		if (*count > 1)
			*count /= 2;
		break;
	case FAULT_FAIL_AFTER:
		if (st->bytes >= f->after) {
			errno = f->err;
			fail = true;
		} else if (*count > f->after - st->bytes) {
			*count = f->after - st->bytes;
		}
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&inj.mtx);
	return fail;
}

static void
fault_after(enum sys s, int fd, int src, ssize_t n)
{
	struct fault *f = &inj.fault[s];
	struct sys_stats *st = &inj.st[s];

	pthread_mutex_lock(&inj.mtx);
	if (fd < 0 || fd != (s == SYS_PREAD ? inj.src : inj.dst) || n <= 0) {
		pthread_mutex_unlock(&inj.mtx);
		return;
	}
	st->bytes += n;
	if (st->last_iter != inj.iteration) {
		st->last_iter = inj.iteration;
		st->iter_bytes = 0;
	}
	st->iter_bytes += n;
	st->max_iter_bytes = MAX(st->max_iter_bytes, st->iter_bytes);
	if (f->kind == FAULT_TRUNCATE_AT && st->calls == f->at)
		assert_int_equal(ftruncate(src, f->to), 0);
	pthread_mutex_unlock(&inj.mtx);
}

ssize_t __real_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t __wrap_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t __real_sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count);
ssize_t __wrap_sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count);
ssize_t __real_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                      unsigned int flags);
ssize_t __wrap_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                      unsigned int flags);
ssize_t __real_write(int fd, const void *buf, size_t count);
ssize_t __wrap_write(int fd, const void *buf, size_t count);
ssize_t __real_pread(int fd, void *buf, size_t count, off_t offset);
ssize_t __wrap_pread(int fd, void *buf, size_t count, off_t offset);
ssize_t __real_pread64(int fd, void *buf, size_t count, off64_t offset);
ssize_t __wrap_pread64(int fd, void *buf, size_t count, off64_t offset);

/* The page cache probe: counted on any descriptor, never failed. */
static unsigned probes;

ssize_t __real_preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
ssize_t __wrap_preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
ssize_t __real_preadv64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags);
ssize_t __wrap_preadv64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags);

ssize_t
__wrap_preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	__atomic_add_fetch(&probes, 1, __ATOMIC_RELAXED);
	return __real_preadv2(fd, iov, iovcnt, offset, flags);
}

ssize_t
__wrap_preadv64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags)
{
	__atomic_add_fetch(&probes, 1, __ATOMIC_RELAXED);
	return __real_preadv64v2(fd, iov, iovcnt, offset, flags);
}

ssize_t
__wrap_sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
	ssize_t n;

	if (fault_before(SYS_SENDFILE, out_fd, &count))
		return -1;
	n = __real_sendfile64(out_fd, in_fd, offset, count);
	fault_after(SYS_SENDFILE, out_fd, in_fd, n);
	return n;
}

ssize_t
__wrap_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	ssize_t n;

	if (fault_before(SYS_SENDFILE, out_fd, &count))
		return -1;
	n = __real_sendfile(out_fd, in_fd, offset, count);
	fault_after(SYS_SENDFILE, out_fd, in_fd, n);
	return n;
}

ssize_t
__wrap_splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
              unsigned int flags)
{
	ssize_t n;

	/* Only the leg into the destination counts (not source -> own pipe). */
	if (fault_before(SYS_SPLICE, fd_out, &len))
		return -1;
	n = __real_splice(fd_in, off_in, fd_out, off_out, len, flags);
	fault_after(SYS_SPLICE, fd_out, fd_in, n);
	return n;
}

ssize_t
__wrap_write(int fd, const void *buf, size_t count)
{
	ssize_t n;

	if (fault_before(SYS_WRITE, fd, &count))
		return -1;
	n = __real_write(fd, buf, count);
	fault_after(SYS_WRITE, fd, -1, n);
	return n;
}

ssize_t
__wrap_pread64(int fd, void *buf, size_t count, off64_t offset)
{
	ssize_t n;

	if (fault_before(SYS_PREAD, fd, &count))
		return -1;
	n = __real_pread64(fd, buf, count, offset);
	fault_after(SYS_PREAD, fd, fd, n);
	return n;
}

ssize_t
__wrap_pread(int fd, void *buf, size_t count, off_t offset)
{
	ssize_t n;

	if (fault_before(SYS_PREAD, fd, &count))
		return -1;
	n = __real_pread(fd, buf, count, offset);
	fault_after(SYS_PREAD, fd, fd, n);
	return n;
}

/* ---- one transfer on a loop --------------------------------------------- */

struct run {
	uv_loop_t loop;
	struct engine *engine;
	uv_prepare_t prepare;
	uv_timer_t cancel_timer;
	int64_t cancel_delay_ms, entered_at_ms, cancel_at_ms, done_at_ms;
	struct xfer *x;
	bool on_worker;
	unsigned ndone;
	struct xfer_result res;
};

static void
on_prepare(uv_prepare_t *h)
{
	pthread_mutex_lock(&inj.mtx);
	inj.iteration++;
	pthread_mutex_unlock(&inj.mtx);
}

static void
on_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	struct run *r = userdata;

	assert_ptr_equal(x, r->x);
	r->ndone++;
	r->res = *res;
	r->done_at_ms = now_ms();
}

static void
run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	inj_reset();
	assert_int_equal(uv_loop_init(&r->loop), 0);
	assert_int_equal(engine_new(&r->loop, &r->engine), 0);
	/* Counts loop iterations, without keeping the loop alive. */
	assert_int_equal(uv_prepare_init(&r->loop, &r->prepare), 0);
	assert_int_equal(uv_prepare_start(&r->prepare, on_prepare), 0);
	uv_unref((uv_handle_t *)&r->prepare);
}

/*
 * run_start() - validate dups of @dst and @src as the daemon does, hand them
 * to a new transfer and start it. Faults armed with inj_arm() apply to the
 * dups only.
 */
static void
run_start(struct run *r, int dst, int src, const struct xfer_params *p)
{
	int d = dup_cloexec(dst), s = dup_cloexec(src);
	struct fdinfo dinfo, sinfo;
	const char *msg;

	assert_int_equal(validate_dst(d, &dinfo, &msg), 0);
	assert_int_equal(validate_src(s, &sinfo, &msg), 0);
	pthread_mutex_lock(&inj.mtx);
	inj.dst = d;
	inj.src = s;
	pthread_mutex_unlock(&inj.mtx);
	assert_int_equal(xfer_new(r->engine, d, &dinfo, s, &sinfo, p, on_done, r, &r->x), 0);
	assert_int_equal(xfer_id(r->x), p->id);
	assert_int_equal(xfer_bytes_sent(r->x), 0);
	r->on_worker = xfer_on_worker(r->x);
	xfer_run(r->x);
}

/*
 * Cancel once the engine has been in sendfile(2) or splice(2) for @cancel_delay_ms:
 * a fixed delay from the start could fire before a busy machine has even
 * scheduled the worker thread, which would test another path.
 */
static void
on_cancel_timer(uv_timer_t *t)
{
	struct run *r = t->data;

	if (r->ndone) {
		uv_timer_stop(t);
		return;
	}
	if (inj_stats(SYS_SENDFILE).calls + inj_stats(SYS_SPLICE).calls == 0)
		return;
	if (r->entered_at_ms == 0)
		r->entered_at_ms = now_ms();
	if (now_ms() - r->entered_at_ms < r->cancel_delay_ms)
		return;
	uv_timer_stop(t);
	r->cancel_at_ms = now_ms();
	xfer_cancel(r->x);
	/* Documented as safe to call twice. */
	if (!r->ndone)
		xfer_cancel(r->x);
}

static void
run_cancel_after(struct run *r, unsigned ms)
{
	r->cancel_delay_ms = ms;
	assert_int_equal(uv_timer_init(&r->loop, &r->cancel_timer), 0);
	r->cancel_timer.data = r;
	assert_int_equal(uv_timer_start(&r->cancel_timer, on_cancel_timer, 5, 5), 0);
}

/* Run the loop until the transfer has reported and released everything. */
static void
run_finish(struct run *r)
{
	uv_run(&r->loop, UV_RUN_DEFAULT);
	assert_int_equal(r->ndone, 1);
	engine_free(r->engine);
	uv_close((uv_handle_t *)&r->prepare, NULL);
	if (r->cancel_timer.loop)
		uv_close((uv_handle_t *)&r->cancel_timer, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&r->loop), 0);
	/* The engine's descriptors are closed: the injection targets are gone. */
	pthread_mutex_lock(&inj.mtx);
	inj.dst = inj.src = -1;
	pthread_mutex_unlock(&inj.mtx);
}

static void
check_result(const struct run *r, int status, int error, uint64_t offset, uint64_t bytes,
             int method, bool short_source)
{
	const struct xfer_result *res = &r->res;

	print_message("result: status %d error %d bytes %llu final %llu method %d short %d "
	              "(%s)\n",
	              res->status, res->error, (unsigned long long)res->bytes_sent,
	              (unsigned long long)res->final_offset, res->method, res->short_source,
	              res->message ? res->message : "");
	assert_int_equal(res->status, status);
	assert_int_equal(res->error, error);
	assert_int_equal(res->bytes_sent, bytes);
	assert_int_equal(res->final_offset, offset + bytes);
	assert_int_equal(res->method, method);
	assert_int_equal(res->short_source, short_source);
	if (status != ST_OK)
		assert_non_null(res->message);
}

static struct xfer_params
params(uint64_t offset, uint64_t count, bool has_count, bool fallback, size_t chunk)
{
	return (struct xfer_params){
	        .id = 0x5eedull << 32 | 7,
	        .offset = offset,
	        .count = count,
	        .has_count = has_count,
	        .fallback = fallback,
	        .chunk = chunk,
	};
}

/* The usual setup: a file of @size pattern bytes at position @pos, and a
 * stream socket pair whose [0] is the destination and [1] the peer. */
struct fixture {
	int src;
	int sv[2];
	struct sink sink;
};

static void
fixture_open(struct fixture *f, size_t size, off_t pos, bool nonblock_dst)
{
	memset(f, 0, sizeof(*f));
	f->src = make_file(size, O_RDWR);
	assert_int_equal(lseek(f->src, pos, SEEK_SET), pos);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
	if (nonblock_dst)
		set_nonblock(f->sv[0], true);
}

/* Close our destination end (the engine closed its own) and collect what
 * the peer received, which must be the pattern from @offset. */
static void
fixture_drain(struct fixture *f, uint64_t offset, uint64_t want)
{
	f->sv[0] = safe_close(f->sv[0]);
	sink_join(&f->sink);
	print_message("peer received %zu bytes\n", f->sink.len);
	assert_int_equal(f->sink.len, want);
	assert_int_equal(pattern_mismatch(f->sink.data, f->sink.len, offset), f->sink.len);
}

static void
fixture_close(struct fixture *f)
{
	sink_free(&f->sink);
	safe_close(f->src);
	safe_close(f->sv[0]);
	safe_close(f->sv[1]);
}

/*
 * A loop-mode transfer of a @size byte file from @offset to a reading
 * peer, with the faults already armed. Checks the bytes the peer received
 * and the file position; returns the run for further checks.
 */
static void
loop_transfer(struct run *r, size_t size, const struct xfer_params *p, uint64_t want_bytes)
{
	struct fixture f;

	fixture_open(&f, size, 3, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(r, f.sv[0], f.src, p);
	assert_false(r->on_worker);
	run_finish(r);
	fixture_drain(&f, p->offset, want_bytes);
	assert_int_equal(fd_position(f.src), want_bytes ? p->offset + want_bytes : 3);
	fixture_close(&f);
}

/* ---- tests: plain transfers --------------------------------------------- */

static void
test_whole_file(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);

	run_init(&r);
	loop_transfer(&r, 1 * MiB, &p, 1 * MiB);
	check_result(&r, ST_OK, 0, 0, 1 * MiB, M_SENDFILE, false);
	assert_int_equal(inj_stats(SYS_WRITE).calls, 0);
}

static void
test_offset_and_count(void **state)
{
	struct run r;
	struct xfer_params p = params(1000, 5000, true, true, 256 * KiB);

	run_init(&r);
	loop_transfer(&r, 100 * KiB, &p, 5000);
	check_result(&r, ST_OK, 0, 1000, 5000, M_SENDFILE, false);
	/* No request asks past the range. */
	assert_true(inj_stats(SYS_SENDFILE).max_request <= 5000);
}

static void
test_eof_before_count(void **state)
{
	struct run r;
	struct xfer_params p = params(1000, 5000, true, true, 256 * KiB);

	run_init(&r);
	loop_transfer(&r, 3000, &p, 2000);
	check_result(&r, ST_OK, 0, 1000, 2000, M_SENDFILE, true);
}

static void
test_offset_past_eof(void **state)
{
	struct run r;
	struct xfer_params p = params(500, 0, false, true, 256 * KiB);

	/* To EOF from past EOF: nothing to send, nothing missing. */
	run_init(&r);
	loop_transfer(&r, 100, &p, 0);
	check_result(&r, ST_OK, 0, 500, 0, M_NONE, false);

	/* A count from past EOF: nothing sent, and the source was short. */
	p = params(500, 10, true, true, 256 * KiB);
	run_init(&r);
	loop_transfer(&r, 100, &p, 0);
	check_result(&r, ST_OK, 0, 500, 0, M_NONE, true);
}

static void
test_empty_file(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);

	run_init(&r);
	loop_transfer(&r, 0, &p, 0);
	check_result(&r, ST_OK, 0, 0, 0, M_NONE, false);
}

/* ---- tests: injected faults on the loop --------------------------------- */

static void
test_eagain_once(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 2, .err = EAGAIN});
	loop_transfer(&r, 300 * KiB, &p, 300 * KiB);
	check_result(&r, ST_OK, 0, 0, 300 * KiB, M_SENDFILE, false);
	assert_true(inj_stats(SYS_SENDFILE).calls >= 3);
}

static void
test_eagain_first(void **state)
{
	struct run r;
	struct xfer_params p = params(10, 0, false, true, 256 * KiB);

	/* Not even the first call goes through: the engine must wait for
	 * writability rather than give up or spin. */
	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EAGAIN});
	loop_transfer(&r, 64 * KiB, &p, 64 * KiB - 10);
	check_result(&r, ST_OK, 0, 10, 64 * KiB - 10, M_SENDFILE, false);
	assert_int_equal(inj_stats(SYS_SENDFILE).calls, 2);
}

static void
test_eintr_once(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINTR});
	loop_transfer(&r, 100 * KiB, &p, 100 * KiB);
	check_result(&r, ST_OK, 0, 0, 100 * KiB, M_SENDFILE, false);
	assert_true(inj_stats(SYS_SENDFILE).calls >= 2);
}

static void
test_short_counts(void **state)
{
	struct run r;
	struct xfer_params p = params(7, 200 * KiB, true, true, 256 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_SHORT});
	loop_transfer(&r, 300 * KiB, &p, 200 * KiB);
	check_result(&r, ST_OK, 0, 7, 200 * KiB, M_SENDFILE, false);
	/* Each call moved at most half of what it asked: it took many. */
	assert_true(inj_stats(SYS_SENDFILE).calls >= 10);
}

static void
test_reset_after(void **state)
{
	struct run r;
	struct xfer_params p = params(100, 0, false, true, 64 * KiB);

	/* The peer resets after 100000 bytes: those were sent, and the
	 * position says so. */
	run_init(&r);
	inj_arm(SYS_SENDFILE,
	        (struct fault){.kind = FAULT_FAIL_AFTER, .after = 100000, .err = ECONNRESET});
	loop_transfer(&r, 1 * MiB, &p, 100000);
	check_result(&r, ST_PEER_CLOSED, ECONNRESET, 100, 100000, M_SENDFILE, false);
}

static void
test_reset_at_once(void **state)
{
	struct run r;
	struct xfer_params p = params(100, 0, false, true, 64 * KiB);

	/* Nothing sent: the position stays where the client left it. */
	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = ECONNRESET});
	loop_transfer(&r, 1 * MiB, &p, 0);
	check_result(&r, ST_PEER_CLOSED, ECONNRESET, 100, 0, M_NONE, false);
}

static void
test_io_error_after(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AFTER, .after = 5000, .err = EIO});
	loop_transfer(&r, 1 * MiB, &p, 5000);
	check_result(&r, ST_IO_ERROR, EIO, 0, 5000, M_SENDFILE, false);
}

/*
 * EOPNOTSUPP from sendfile after bytes went out is an I/O error like any
 * other: NOT_AVAILABLE promises that nothing was sent.
 */
static void
test_eopnotsupp_after_bytes(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE,
	        (struct fault){.kind = FAULT_FAIL_AFTER, .after = 5000, .err = EOPNOTSUPP});
	loop_transfer(&r, 1 * MiB, &p, 5000);
	check_result(&r, ST_IO_ERROR, EOPNOTSUPP, 0, 5000, M_SENDFILE, false);
}

/* ---- tests: the method ladder ------------------------------------------- */

static void
test_fallback_to_copy(void **state)
{
	struct run r;
	struct xfer_params p = params(33, 0, false, true, 256 * KiB);

	/* sendfile says EINVAL at once (as for a /proc source): with fallback
	 * the user-space copy moves everything. */
	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINVAL});
	loop_transfer(&r, 500 * KiB, &p, 500 * KiB - 33);
	check_result(&r, ST_OK, 0, 33, 500 * KiB - 33, M_READ_WRITE, false);
	assert_int_equal(inj_stats(SYS_SENDFILE).calls, 1);
	assert_true(inj_stats(SYS_PREAD).calls > 0);
	assert_int_equal(inj_stats(SYS_WRITE).bytes, 500 * KiB - 33);
}

static void
test_no_fallback(void **state)
{
	struct run r;
	struct xfer_params p = params(33, 0, false, false, 256 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINVAL});
	loop_transfer(&r, 500 * KiB, &p, 0);
	check_result(&r, ST_NOT_AVAILABLE, EINVAL, 33, 0, M_NONE, false);
	/* Nothing was read in user space. */
	assert_int_equal(inj_stats(SYS_PREAD).calls, 0);
	assert_int_equal(inj_stats(SYS_WRITE).calls, 0);
}

static void
test_copy_faults(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 300 * KiB, true, true, 256 * KiB);

	/* In the copy: short writes, an EAGAIN, an EINTR from each side. */
	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINVAL});
	inj_arm(SYS_WRITE, (struct fault){.kind = FAULT_SHORT});
	loop_transfer(&r, 400 * KiB, &p, 300 * KiB);
	check_result(&r, ST_OK, 0, 0, 300 * KiB, M_READ_WRITE, false);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINVAL});
	inj_arm(SYS_WRITE, (struct fault){.kind = FAULT_FAIL_AT, .at = 3, .err = EAGAIN});
	inj_arm(SYS_PREAD, (struct fault){.kind = FAULT_FAIL_AT, .at = 2, .err = EINTR});
	loop_transfer(&r, 400 * KiB, &p, 300 * KiB);
	check_result(&r, ST_OK, 0, 0, 300 * KiB, M_READ_WRITE, false);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_FAIL_AT, .at = 1, .err = EINVAL});
	inj_arm(SYS_WRITE,
	        (struct fault){.kind = FAULT_FAIL_AFTER, .after = 70000, .err = ECONNRESET});
	loop_transfer(&r, 400 * KiB, &p, 70000);
	check_result(&r, ST_PEER_CLOSED, ECONNRESET, 0, 70000, M_READ_WRITE, false);
}

/* EINVAL after zero-copy has moved bytes is an error, not a reason to
 * switch methods halfway. */
static void
test_einval_after_bytes(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE,
	        (struct fault){.kind = FAULT_FAIL_AFTER, .after = 8192, .err = EINVAL});
	loop_transfer(&r, 1 * MiB, &p, 8192);
	check_result(&r, ST_IO_ERROR, EINVAL, 0, 8192, M_SENDFILE, false);
	assert_int_equal(inj_stats(SYS_PREAD).calls, 0);
}

/* ---- tests: the source changes under the transfer ----------------------- */

static void
test_truncated_mid_transfer(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_TRUNCATE_AT, .at = 1, .to = 100000});
	loop_transfer(&r, 1 * MiB, &p, 100000);
	check_result(&r, ST_OK, 0, 0, 100000, M_SENDFILE, true);
	/* 64 KiB, the 34464 left, then the 0 that says EOF: no spin. */
	assert_true(inj_stats(SYS_SENDFILE).calls <= 4);
}

static void
test_truncated_to_zero(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 900 * KiB, true, true, 64 * KiB);

	run_init(&r);
	inj_arm(SYS_SENDFILE, (struct fault){.kind = FAULT_TRUNCATE_AT, .at = 1, .to = 0});
	loop_transfer(&r, 1 * MiB, &p, 64 * KiB);
	check_result(&r, ST_OK, 0, 0, 64 * KiB, M_SENDFILE, true);
	assert_true(inj_stats(SYS_SENDFILE).calls <= 3);
}

/* ---- tests: chunking ---------------------------------------------------- */

static void
test_chunking(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	struct sys_stats st;
	const size_t size = 4 * MiB;

	run_init(&r);
	fixture_open(&f, size, 0, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], f.src, &p);
	/* One chunk, then back to the loop: not done inside xfer_run(). */
	assert_int_equal(r.ndone, 0);
	run_finish(&r);
	fixture_drain(&f, 0, size);
	check_result(&r, ST_OK, 0, 0, size, M_SENDFILE, false);
	assert_int_equal(fd_position(f.src), size);

	st = inj_stats(SYS_SENDFILE);
	print_message("sendfile: %u calls, largest request %zu, most in one iteration %llu\n",
	              st.calls, st.max_request, (unsigned long long)st.max_iter_bytes);
	assert_true(st.calls >= size / (64 * KiB));
	assert_true(st.max_request <= 64 * KiB);
	assert_true(st.max_iter_bytes <= 64 * KiB);
	fixture_close(&f);
}

/* ---- tests: real peers and other descriptor kinds ----------------------- */

static void
test_peer_closes(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);

	run_init(&r);
	fixture_open(&f, 4 * MiB, 0, true);
	sink_start_ex(&f.sink, f.sv[1], 0, 100 * KiB);
	run_start(&r, f.sv[0], f.src, &p);
	run_finish(&r);
	assert_int_equal(r.res.status, ST_PEER_CLOSED);
	assert_true(r.res.error == EPIPE || r.res.error == ECONNRESET);
	assert_true(r.res.bytes_sent >= 100 * KiB);
	assert_true(r.res.bytes_sent < 4 * MiB);
	assert_int_equal(r.res.final_offset, r.res.bytes_sent);
	assert_int_equal(fd_position(f.src), r.res.bytes_sent);
	sink_join(&f.sink);
	assert_int_equal(pattern_mismatch(f.sink.data, f.sink.len, 0), f.sink.len);
	fixture_close(&f);
}

static void
test_worker_blocking_dst(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(5, 0, false, true, 64 * KiB);
	const size_t size = 2 * MiB;

	run_init(&r);
	fixture_open(&f, size, 0, false);
	sink_start(&f.sink, f.sv[1], 20);
	run_start(&r, f.sv[0], f.src, &p);
	assert_true(r.on_worker);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 5, size - 5, M_SENDFILE, false);
	fixture_drain(&f, 5, size - 5);
	assert_int_equal(fd_position(f.src), size);
	/* Worker jobs are bounded too: 8 chunks. */
	assert_true(inj_stats(SYS_SENDFILE).max_request <= 8 * 64 * KiB);
	fixture_close(&f);
}

/* A worker transfer to a destination that does not read gives its thread
 * back and waits on the loop (holding no worker slot, waiting in no queue),
 * and goes on once the peer reads. */
struct parked_watch {
	struct run *r;
	struct fixture *f;
	int64_t until_ms;
	bool parked;
};

static void
on_parked_watch(uv_timer_t *t)
{
	struct parked_watch *w = t->data;
	struct fairq *q = engine_workq(w->r->engine);

	if (now_ms() > w->until_ms)
		fail_msg("the stalled job never gave its worker back");
	if (inj_stats(SYS_SENDFILE).calls == 0 || fairq_running(q) > 0 || fairq_waiting(q) > 0)
		return;
	w->parked = true;
	uv_close((uv_handle_t *)t, NULL);
	sink_start(&w->f->sink, w->f->sv[1], 0);
}

static void
test_worker_full_dst_waits_on_loop(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);
	const size_t size = 8 * MiB;
	struct parked_watch w = {.r = &r, .f = &f};
	uv_timer_t t;

	run_init(&r);
	fixture_open(&f, size, 0, false);
	run_start(&r, f.sv[0], f.src, &p);
	assert_true(r.on_worker);
	w.until_ms = now_ms() + 20000;
	assert_int_equal(uv_timer_init(&r.loop, &t), 0);
	t.data = &w;
	assert_int_equal(uv_timer_start(&t, on_parked_watch, 5, 5), 0);
	run_finish(&r);
	assert_true(w.parked);
	check_result(&r, ST_OK, 0, 0, size, M_SENDFILE, false);
	fixture_drain(&f, 0, size);
	assert_int_equal(fd_position(f.src), size);
	fixture_close(&f);
}

static void
test_file_dst(void **state)
{
	struct run r;
	struct xfer_params p = params(1000, 50000, true, true, 64 * KiB);
	int src = make_file(100 * KiB, O_RDWR), dst = make_file(0, O_RDWR);
	uint8_t *buf = malloc(60000);

	assert_non_null(buf);
	run_init(&r);
	run_start(&r, dst, src, &p);
	assert_true(r.on_worker);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 1000, 50000, M_SENDFILE, false);
	assert_int_equal(fd_position(src), 51000);
	assert_int_equal(pread(dst, buf, 60000, 0), 50000);
	assert_int_equal(pattern_mismatch(buf, 50000, 1000), 50000);
	free(buf);
	close(src);
	close(dst);
}

/* An O_APPEND destination refuses sendfile and splice (EINVAL): only the
 * user-space copy can serve it. No injection here: the kernel says so. */
static void
test_append_dst(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	int src = make_file(200 * KiB, O_RDWR), dst = make_file(0, O_RDWR | O_APPEND);
	uint8_t *buf = malloc(300 * KiB);

	assert_non_null(buf);
	run_init(&r);
	run_start(&r, dst, src, &p);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, 200 * KiB, M_READ_WRITE, false);
	assert_int_equal(pread(dst, buf, 300 * KiB, 0), 200 * KiB);
	assert_int_equal(pattern_mismatch(buf, 200 * KiB, 0), 200 * KiB);

	p.fallback = false;
	assert_int_equal(lseek(src, 9, SEEK_SET), 9);
	run_init(&r);
	run_start(&r, dst, src, &p);
	run_finish(&r);
	check_result(&r, ST_NOT_AVAILABLE, EINVAL, 0, 0, M_NONE, false);
	assert_int_equal(fd_position(src), 9);
	assert_int_equal(lseek(dst, 0, SEEK_END), 200 * KiB);
	free(buf);
	close(src);
	close(dst);
}

static void
test_pipe_source(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	uint8_t data[40000];
	int pfd[2];

	pattern_fill(data, sizeof(data), 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
	assert_true(fcntl(pfd[1], F_SETPIPE_SZ, 64 * KiB) >= (int)sizeof(data));
	write_all(pfd[1], data, sizeof(data));
	close(pfd[1]);

	run_init(&r);
	fixture_open(&f, 0, 0, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], pfd[0], &p);
	assert_false(r.on_worker);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, sizeof(data), M_SPLICE, false);
	fixture_drain(&f, 0, sizeof(data));
	assert_true(inj_stats(SYS_SPLICE).calls > 0);
	close(pfd[0]);
	fixture_close(&f);
}

/* A pipe source with a count it does not reach: EOF first, short_source. */
static void
test_pipe_source_short(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 50000, true, true, 64 * KiB);
	uint8_t data[1000];
	int pfd[2];

	pattern_fill(data, sizeof(data), 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
	write_all(pfd[1], data, sizeof(data));
	close(pfd[1]);

	run_init(&r);
	fixture_open(&f, 0, 0, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], pfd[0], &p);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, sizeof(data), M_SPLICE, true);
	fixture_drain(&f, 0, sizeof(data));
	close(pfd[0]);
	fixture_close(&f);
}

/* A stream socket source goes through the engine's own pipe. */
static void
test_socket_source(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	uint8_t data[60000];
	int sv[2];

	pattern_fill(data, sizeof(data), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	write_all(sv[1], data, sizeof(data));
	shutdown(sv[1], SHUT_WR);

	run_init(&r);
	fixture_open(&f, 0, 0, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], sv[0], &p);
	assert_false(r.on_worker);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, sizeof(data), M_SPLICE, false);
	fixture_drain(&f, 0, sizeof(data));
	close(sv[0]);
	close(sv[1]);
	fixture_close(&f);
}

/*
 * A socket source to an O_APPEND file: the first leg (socket -> the
 * engine's pipe) succeeds, the second (pipe -> O_APPEND file) says EINVAL.
 * With fallback the copy must still deliver every byte, including those
 * already taken from the socket into the pipe.
 */
static void
test_socket_source_append_dst(void **state)
{
	struct run r;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	uint8_t data[60000], buf[70000];
	int sv[2], dst = make_file(0, O_RDWR | O_APPEND);
	ssize_t n;

	pattern_fill(data, sizeof(data), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	write_all(sv[1], data, sizeof(data));
	shutdown(sv[1], SHUT_WR);

	run_init(&r);
	run_start(&r, dst, sv[0], &p);
	run_finish(&r);
	n = pread(dst, buf, sizeof(buf), 0);
	close(sv[0]);
	close(sv[1]);
	close(dst);
	print_message("file holds %zd of %zu bytes\n", n, sizeof(data));
	assert_int_equal(n, sizeof(data));
	assert_int_equal(pattern_mismatch(buf, n, 0), n);
	check_result(&r, ST_OK, 0, 0, sizeof(data), M_READ_WRITE, false);
}

/* A source that has nothing yet: the engine waits for it on the loop. */
struct feeder {
	uv_timer_t timer;
	int fd;
	size_t len;
};

static void
on_feed(uv_timer_t *t)
{
	struct feeder *fe = t->data;
	uint8_t buf[30000];

	assert_true(fe->len <= sizeof(buf));
	pattern_fill(buf, fe->len, 0);
	write_all(fe->fd, buf, fe->len);
	fe->fd = safe_close(fe->fd);
	uv_close((uv_handle_t *)t, NULL);
}

static void
test_pipe_source_waits(void **state)
{
	struct run r;
	struct fixture f;
	struct feeder fe;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	int pfd[2];

	assert_int_equal(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
	run_init(&r);
	fe.fd = pfd[1];
	fe.len = 30000;
	assert_int_equal(uv_timer_init(&r.loop, &fe.timer), 0);
	fe.timer.data = &fe;
	assert_int_equal(uv_timer_start(&fe.timer, on_feed, 50, 0), 0);
	fixture_open(&f, 0, 0, true);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], pfd[0], &p);
	assert_int_equal(r.ndone, 0);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, 30000, M_SPLICE, false);
	fixture_drain(&f, 0, 30000);
	/* It waited rather than spun: a handful of splice calls. */
	assert_true(inj_stats(SYS_SPLICE).calls < 20);
	close(pfd[0]);
	fixture_close(&f);
}

/*
 * The destination's peer has shut down its sending side (as an HTTP client
 * may after its request) but still reads, slowly. While the socket buffer is
 * full the engine must wait for writability, not wake up on the standing
 * "peer hung up its half" condition and spin.
 */
static void
test_peer_half_closed_no_spin(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);
	const size_t size = 2 * MiB;
	struct sys_stats st;

	run_init(&r);
	fixture_open(&f, size, 0, true);
	assert_int_equal(shutdown(f.sv[1], SHUT_WR), 0);
	sink_start(&f.sink, f.sv[1], 300);
	run_start(&r, f.sv[0], f.src, &p);
	run_finish(&r);
	check_result(&r, ST_OK, 0, 0, size, M_SENDFILE, false);
	fixture_drain(&f, 0, size);
	fixture_close(&f);
	st = inj_stats(SYS_SENDFILE);
	print_message("sendfile: %u calls in %u loop iterations\n", st.calls, inj.iteration);
	/* Each call moves at least a socket buffer's worth once writable:
	 * a few hundred calls at most, not one per spin of the loop. */
	assert_true(st.calls < 1000);
}

/*
 * A source file the client cannot read (write-only, or O_PATH): refused with
 * INVALID_ARGUMENT/EBADF before anything is sent, whether validation or the
 * engine's first syscall notices.
 */
static void
check_unreadable_source(int src, bool worker)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	struct fdinfo sinfo;
	const char *msg;
	int v;

	v = validate_src(src, &sinfo, &msg);
	if (v < 0) {
		assert_int_equal(v, -EBADF);
		return;
	}
	run_init(&r);
	fixture_open(&f, 0, 0, !worker);
	sink_start(&f.sink, f.sv[1], 0);
	run_start(&r, f.sv[0], src, &p);
	assert_int_equal(r.on_worker, worker);
	run_finish(&r);
	fixture_drain(&f, 0, 0);
	fixture_close(&f);
	check_result(&r, WIRE_STATUS_INVALID_ARGUMENT, EBADF, 0, 0, M_NONE, false);
}

static void
test_unreadable_source(void **state)
{
	int wo = make_file(10 * KiB, O_WRONLY), opath;
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", wo);
	opath = open(path, O_PATH | O_CLOEXEC);
	assert_true(opath >= 0);
	assert_int_equal(lseek(wo, 5, SEEK_SET), 5);
	check_unreadable_source(wo, false);
	check_unreadable_source(wo, true);
	check_unreadable_source(opath, false);
	assert_int_equal(fd_position(wo), 5);
	close(wo);
	close(opath);
}

/* ---- tests: cancellation ------------------------------------------------ */

static void
test_cancel_loop(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(4096, 0, false, true, 64 * KiB);

	/* The peer does not read: the transfer fills the socket buffer and
	 * waits on the loop until cancelled. */
	run_init(&r);
	fixture_open(&f, 8 * MiB, 0, true);
	run_start(&r, f.sv[0], f.src, &p);
	assert_false(r.on_worker);
	run_cancel_after(&r, 30);
	run_finish(&r);
	assert_int_equal(r.res.status, ST_CANCELLED);
	assert_int_equal(r.res.error, ECANCELED);
	assert_true(r.res.bytes_sent > 0);
	assert_true(r.res.bytes_sent < 8 * MiB - 4096);
	assert_int_equal(r.res.final_offset, 4096 + r.res.bytes_sent);
	assert_int_equal(r.res.method, M_SENDFILE);
	assert_false(r.res.short_source);
	assert_int_equal(fd_position(f.src), 4096 + r.res.bytes_sent);
	/* Exactly the bytes reported reached the peer. */
	sink_start(&f.sink, f.sv[1], 0);
	fixture_drain(&f, 4096, r.res.bytes_sent);
	fixture_close(&f);
}

static void
test_cancel_worker_blocked(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 256 * KiB);
	int64_t took;

	/* A blocking destination whose peer does not read: the worker sits in
	 * sendfile(2) until the cancel interrupts it. */
	run_init(&r);
	fixture_open(&f, 16 * MiB, 0, false);
	run_start(&r, f.sv[0], f.src, &p);
	assert_true(r.on_worker);
	run_cancel_after(&r, 100);
	run_finish(&r);
	took = r.done_at_ms - r.cancel_at_ms;
	print_message("cancel took %lld ms, reported %llu bytes, sendfile moved %llu in %u calls\n",
	              (long long)took, (unsigned long long)r.res.bytes_sent,
	              (unsigned long long)inj_stats(SYS_SENDFILE).bytes,
	              inj_stats(SYS_SENDFILE).calls);
	assert_true(r.cancel_at_ms > 0);
	assert_true(took >= 0 && took < 1000);
	assert_int_equal(r.res.status, ST_CANCELLED);
	assert_int_equal(r.res.error, ECANCELED);
	assert_true(r.res.bytes_sent > 0);
	assert_true(r.res.bytes_sent < 16 * MiB);
	assert_int_equal(r.res.final_offset, r.res.bytes_sent);
	assert_int_equal(fd_position(f.src), r.res.bytes_sent);
	sink_start(&f.sink, f.sv[1], 0);
	fixture_drain(&f, 0, r.res.bytes_sent);
	fixture_close(&f);
}

/* A blocking source pipe with nothing in it: the worker waits in poll(2) for
 * it, and the cancel must interrupt that wait too. */
static void
test_cancel_worker_waiting_source(void **state)
{
	struct run r;
	struct fixture f;
	struct xfer_params p = params(0, 0, false, true, 64 * KiB);
	int pfd[2];
	int64_t took;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	run_init(&r);
	fixture_open(&f, 0, 0, true);
	run_start(&r, f.sv[0], pfd[0], &p);
	assert_true(r.on_worker);
	run_cancel_after(&r, 100);
	run_finish(&r);
	took = r.done_at_ms - r.cancel_at_ms;
	print_message("cancel took %lld ms\n", (long long)took);
	assert_true(took >= 0 && took < 1000);
	check_result(&r, ST_CANCELLED, ECANCELED, 0, 0, M_NONE, false);
	/* Nothing was taken from the pipe: what is written now is still there. */
	write_all(pfd[1], "x", 1);
	assert_int_equal(read(pfd[0], (char[1]){0}, 1), 1);
	close(pfd[0]);
	close(pfd[1]);
	fixture_close(&f);
}

/* ---- main --------------------------------------------------------------- */

static void
noop_work(uv_work_t *w)
{
}

static int
group_setup(void **state)
{
	uv_loop_t loop;
	uv_work_t w;

	/* sendfile(2) has no MSG_NOSIGNAL: a closed peer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (xfer_global_init() < 0)
		return -1;
	/* libuv opens process-wide descriptors and threads on first use; open
	 * them now so that the per-test descriptor check sees only ours. */
	if (uv_loop_init(&loop) < 0 || uv_queue_work(&loop, &w, noop_work, NULL) < 0)
		return -1;
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) < 0 ? -1 : 0;
}

/* ---- tests: a batch of requests ----------------------------------------- */

static unsigned batch_done;

static void
on_batch_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	(void)x;
	(void)userdata;
	assert_int_equal(res->status, ST_OK);
	assert_int_equal(res->bytes_sent, 4 * KiB);
	batch_done++;
}

/* A 4 KiB transfer of dups of @dst and @src, as the daemon starts one. */
static void
batch_start(struct engine *e, int dst, int src, int ret_fds[2])
{
	struct xfer_params p = params(0, 4 * KiB, true, false, 256 * KiB);
	struct fdinfo dinfo, sinfo;
	const char *msg;
	struct xfer *x;

	ret_fds[0] = dup_cloexec(dst);
	ret_fds[1] = dup_cloexec(src);
	assert_int_equal(validate_dst(ret_fds[0], &dinfo, &msg), 0);
	assert_int_equal(validate_src(ret_fds[1], &sinfo, &msg), 0);
	assert_int_equal(
	        xfer_new(e, ret_fds[0], &dinfo, ret_fds[1], &sinfo, &p, on_batch_done, NULL, &x),
	        0);
	xfer_run(x);
}

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/*
 * Transfers that end during a loop turn keep their descriptors until the
 * engine's flush, which closes them all; a file range is probed once, and
 * not again for a moment (100 ms of loop time), also in the next turns,
 * while another file is probed, and so is the same range once the moment has
 * passed. The loop's turn flushes by itself.
 */
static void
test_batch(void **state)
{
	uv_loop_t loop;
	struct engine *e;
	int a = make_file(64 * KiB, O_RDONLY), b = make_file(64 * KiB, O_RDONLY), sv[2];
	int fds[4][2];
	uint8_t buf[4 * KiB];

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(engine_new(&loop, &e), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_nonblock(sv[0], true);
	batch_done = 0;
	probes = 0;

	batch_start(e, sv[0], a, fds[0]);
	batch_start(e, sv[0], a, fds[1]);
	batch_start(e, sv[0], b, fds[2]);
	assert_int_equal(batch_done, 3);
	assert_int_equal(probes, 2);
	for (int i = 0; i < 3; i++)
		assert_true(fd_open(fds[i][0]) && fd_open(fds[i][1]));
	engine_flush(e);
	for (int i = 0; i < 3; i++)
		assert_false(fd_open(fds[i][0]) || fd_open(fds[i][1]));

	/* The next turn, at once: the range is still taken as cached. */
	batch_start(e, sv[0], a, fds[3]);
	assert_int_equal(probes, 2);
	engine_flush(e);
	assert_false(fd_open(fds[3][0]) || fd_open(fds[3][1]));

	/* Later than the moment: probed again. */
	usleep(150 * 1000);
	uv_update_time(&loop);
	batch_start(e, sv[0], a, fds[3]);
	assert_int_equal(probes, 3);
	engine_flush(e);
	assert_false(fd_open(fds[3][0]) || fd_open(fds[3][1]));

	/* One turn of the loop: its flush closes them. */
	batch_start(e, sv[0], b, fds[3]);
	assert_int_equal(batch_done, 6);
	assert_true(fd_open(fds[3][0]) && fd_open(fds[3][1]));
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_false(fd_open(fds[3][0]) || fd_open(fds[3][1]));

	engine_free(e);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(read(sv[1], buf, 4 * KiB), 4 * KiB);
		assert_int_equal(pattern_mismatch(buf, 4 * KiB, 0), 4 * KiB);
	}
	safe_close(a);
	safe_close(b);
	safe_close(sv[0]);
	safe_close(sv[1]);
}

/* ---- tests: a line of transfers to one destination ----------------------- */

static struct {
	struct engine *engine;
	struct engine_waiter waiter; /* deferred by each done callback, as a connection is */
	unsigned done, flushes;
	int fds[3][2];           /* each transfer's descriptors */
	bool open_at_done[3];    /* its descriptors were still open at its done callback */
	bool closed_at_flush[3]; /* and closed when the waiter ran */
} line;

static void
on_line_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	int i = (int)(intptr_t)userdata;

	(void)x;
	assert_int_equal(res->status, ST_OK);
	assert_int_equal(res->bytes_sent, 4 * KiB);
	line.open_at_done[i] = fcntl(line.fds[i][0], F_GETFD) >= 0;
	line.done++;
	engine_defer(line.engine, &line.waiter);
}

static void
on_line_flush(struct engine_waiter *w)
{
	(void)w;
	line.flushes++;
	for (int i = 1; i < 3; i++)
		line.closed_at_flush[i] =
		        fcntl(line.fds[i][0], F_GETFD) < 0 && fcntl(line.fds[i][1], F_GETFD) < 0;
}

/*
 * Three transfers to one socket whose buffer is full: the first waits for
 * room, the other two wait for it. When their turn comes they run in the
 * engine's chain: their done callbacks see their descriptors still held,
 * and a waiter deferred there (where the daemon sends the replies) runs at
 * the flush, once they are closed. The bytes arrive in order.
 */
static void
test_line_runs_as_a_batch(void **state)
{
	struct xfer_params p = params(0, 4 * KiB, true, false, 256 * KiB);
	uv_loop_t loop;
	int src = make_file(64 * KiB, O_RDONLY), sv[2];
	uint8_t buf[64 * KiB];
	size_t filler = 0, got = 0;
	ssize_t n;

	(void)state;
	memset(&line, 0, sizeof(line));
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(engine_new(&loop, &line.engine), 0);
	line.waiter.fn = on_line_flush;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_nonblock(sv[0], true);
	set_nonblock(sv[1], true);
	memset(buf, 0xee, sizeof(buf));
	while ((n = write(sv[0], buf, sizeof(buf))) > 0)
		filler += (size_t)n;
	assert_true(filler > 0);

	for (int i = 0; i < 3; i++) {
		struct fdinfo dinfo, sinfo;
		const char *msg;
		struct xfer *x;

		p.offset = (uint64_t)i * 4 * KiB;
		line.fds[i][0] = dup_cloexec(sv[0]);
		line.fds[i][1] = dup_cloexec(src);
		assert_int_equal(validate_dst(line.fds[i][0], &dinfo, &msg), 0);
		assert_int_equal(validate_src(line.fds[i][1], &sinfo, &msg), 0);
		assert_int_equal(xfer_new(line.engine, line.fds[i][0], &dinfo, line.fds[i][1],
		                          &sinfo, &p, on_line_done, (void *)(intptr_t)i, &x),
		                 0);
		xfer_run(x);
	}
	assert_int_equal(line.done, 0);
	/* Room again: the loop serves all three. */
	while (got < filler) {
		n = read(sv[1], buf, MIN(sizeof(buf), filler - got));
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(line.done, 3);
	assert_true(line.flushes >= 1);
	for (int i = 1; i < 3; i++) {
		assert_true(line.open_at_done[i]);
		assert_true(line.closed_at_flush[i]);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(read(sv[1], buf, 4 * KiB), 4 * KiB);
		assert_int_equal(pattern_mismatch(buf, 4 * KiB, (uint64_t)i * 4 * KiB), 4 * KiB);
	}
	engine_free(line.engine);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	safe_close(src);
	safe_close(sv[0]);
	safe_close(sv[1]);
}

/* Two transfers waiting in the engine's epoll set, woken in one batch: the
 * first one's done callback cancels the second (as a connection that fails
 * cancels its other transfers), which finishes and is freed there; the
 * batch must not call it after that (AddressSanitizer would see it). */
static struct {
	struct xfer *x[2];
	struct xfer_result res[2];
	int done[2];
} pair;

static void
on_pair_done(struct xfer *x, const struct xfer_result *res, void *userdata)
{
	int i = (int)(intptr_t)userdata;

	(void)x;
	pair.res[i] = *res;
	pair.done[i]++;
	if (i == 0 && pair.done[1] == 0)
		xfer_cancel(pair.x[1]);
}

static void
test_watch_batch_cancel(void **state)
{
	struct xfer_params p = params(0, 4 * KiB, true, true, 256 * KiB);
	uv_loop_t loop;
	struct engine *e;
	int src = make_file(64 * KiB, O_RDONLY), sv[2][2];
	uint8_t buf[64 * KiB];
	size_t filler[2] = {0, 0};
	ssize_t n;

	(void)state;
	memset(&pair, 0, sizeof(pair));
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(engine_new(&loop, &e), 0);
	memset(buf, 0xee, sizeof(buf));
	for (int i = 0; i < 2; i++) {
		struct fdinfo dinfo, sinfo;
		const char *msg;
		int d, s;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
		set_nonblock(sv[i][0], true);
		set_nonblock(sv[i][1], true);
		while ((n = write(sv[i][0], buf, sizeof(buf))) > 0)
			filler[i] += (size_t)n;
		assert_true(filler[i] > 0);
		d = dup_cloexec(sv[i][0]);
		s = dup_cloexec(src);
		assert_int_equal(validate_dst(d, &dinfo, &msg), 0);
		assert_int_equal(validate_src(s, &sinfo, &msg), 0);
		assert_int_equal(xfer_new(e, d, &dinfo, s, &sinfo, &p, on_pair_done,
		                          (void *)(intptr_t)i, &pair.x[i]),
		                 0);
		xfer_run(pair.x[i]);
	}
	/* Both wait for room. */
	assert_int_equal(pair.done[0] + pair.done[1], 0);
	for (int i = 0; i < 2; i++) {
		size_t got = 0;

		while (got < filler[i]) {
			n = read(sv[i][1], buf, MIN(sizeof(buf), filler[i] - got));
			assert_true(n > 0);
			got += (size_t)n;
		}
	}
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(pair.done[0], 1);
	assert_int_equal(pair.done[1], 1);
	assert_int_equal(pair.res[0].status, ST_OK);
	assert_int_equal(pair.res[0].bytes_sent, 4 * KiB);
	assert_int_equal(pair.res[1].status, ST_CANCELLED);
	assert_int_equal(pair.res[1].bytes_sent, 0);
	assert_int_equal(read(sv[0][1], buf, sizeof(buf)), 4 * KiB);
	assert_int_equal(pattern_mismatch(buf, 4 * KiB, 0), 4 * KiB);
	engine_free(e);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	safe_close(src);
	for (int i = 0; i < 2; i++) {
		safe_close(sv[i][0]);
		safe_close(sv[i][1]);
	}
}

/* A new transfer's first attempt may send a whole chunk until the turn's
 * first attempts have moved 8 MiB, then 256 KiB; the next turn starts
 * afresh. */
static void
test_first_budget(void **state)
{
	uv_loop_t loop;
	struct engine *e;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(engine_new(&loop, &e), 0);
	assert_int_equal(engine_first_budget(e, 2 * MiB), 2 * MiB);
	assert_int_equal(engine_first_budget(e, 64 * KiB), 64 * KiB);
	engine_first_moved(e, 6 * MiB);
	assert_int_equal(engine_first_budget(e, 2 * MiB), 2 * MiB);
	engine_first_moved(e, 2 * MiB);
	assert_int_equal(engine_first_budget(e, 2 * MiB), 256 * KiB);
	assert_int_equal(engine_first_budget(e, 64 * KiB), 64 * KiB);
	engine_flush(e);
	assert_int_equal(engine_first_budget(e, 2 * MiB), 2 * MiB);
	engine_free(e);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        fd_test(test_whole_file),
	        fd_test(test_offset_and_count),
	        fd_test(test_eof_before_count),
	        fd_test(test_offset_past_eof),
	        fd_test(test_empty_file),
	        fd_test(test_eagain_once),
	        fd_test(test_eagain_first),
	        fd_test(test_eintr_once),
	        fd_test(test_short_counts),
	        fd_test(test_reset_after),
	        fd_test(test_reset_at_once),
	        fd_test(test_io_error_after),
	        fd_test(test_eopnotsupp_after_bytes),
	        fd_test(test_fallback_to_copy),
	        fd_test(test_no_fallback),
	        fd_test(test_copy_faults),
	        fd_test(test_einval_after_bytes),
	        fd_test(test_truncated_mid_transfer),
	        fd_test(test_truncated_to_zero),
	        fd_test(test_chunking),
	        fd_test(test_peer_closes),
	        fd_test(test_worker_blocking_dst),
	        fd_test(test_worker_full_dst_waits_on_loop),
	        fd_test(test_file_dst),
	        fd_test(test_append_dst),
	        fd_test(test_pipe_source),
	        fd_test(test_pipe_source_short),
	        fd_test(test_socket_source),
	        fd_test(test_pipe_source_waits),
	        fd_test(test_unreadable_source),
	        fd_test(test_peer_half_closed_no_spin),
	        fd_test(test_socket_source_append_dst),
	        fd_test(test_cancel_loop),
	        fd_test(test_cancel_worker_blocked),
	        fd_test(test_cancel_worker_waiting_source),
	        fd_test(test_batch),
	        fd_test(test_line_runs_as_a_batch),
	        fd_test(test_watch_batch_cancel),
	        fd_test(test_first_budget),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
