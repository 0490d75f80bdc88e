/*
 * engine.c - the transfer engine of one loop: the turn's batch, the flush,
 * the chain, the destination lines (see engine.h).
 */
#include <errno.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dstline.h"
#include "engine.h"
#include "fairq.h"
#include "macro.h"
#include "validate.h"

/* Descriptors waiting for the flush; past this many, they are closed at once
 * (still before any reply, which only the flush sends). */
#define GRAVE_MAX 128
/* File ranges the page cache held a moment ago, and how long that moment
 * lasts: a page read in the last HOT_MS milliseconds is the last an
 * eviction would take, and a file served over and over is asked once per
 * HOT_MS rather than once per request. */
#define HOT_MAX 64
#define HOT_MS 100
/* Waiters may defer more work while they run (a closing connection cancels
 * its transfers): the flush goes round this many times at most, and leaves
 * the rest for the next turn, which then comes at once. */
#define FLUSH_ROUNDS 8
/* What the first attempts of new transfers may move in one turn at a whole
 * chunk each (engine_first_budget()): as much as a batch of 32 did at
 * FIRST_SMALL each; past it, FIRST_SMALL. */
#define FIRST_SMALL ((size_t)256 * 1024)
#define FIRST_TURN_MAX (32 * FIRST_SMALL)
/* Buckets of the sources in flight, by inode. */
#define SRC_BUCKETS 64

struct hot_range {
	dev_t dev;
	ino_t ino;
	uint64_t start, end;
	uint64_t seen_ms; /* loop time of the probe */
};

/* One open file description that transfers of this loop send from now. */
struct engine_src {
	struct list_head link; /* in its bucket */
	dev_t dev;
	ino_t ino;
	struct list_head members; /* struct engine_src_member */
};

/* The sources in flight of one loop, or of all loops (engine_srcs_new()). */
struct engine_srcs {
	/* Guards the buckets and the members' links; taken by
	 * engine_src_lock() around a leave and the position it sets, so that
	 * no transfer of another loop joins in between. */
	pthread_mutex_t mtx;
	struct list_head buckets[SRC_BUCKETS];
};

struct engine {
	uv_loop_t *loop;
	uv_check_t check; /* the flush, once per turn */
	uv_idle_t nudge;  /* active while something waits: the loop must not sleep */
	bool nudging;
	int handles; /* open handles: free once both have closed */

	size_t n_grave;
	int grave[GRAVE_MAX];
	uint64_t first_moved; /* this turn, by first attempts */
	unsigned n_hot, next_hot;
	struct hot_range hot[HOT_MAX];
	struct list_head waiters;

	struct dstline_table *lines;
	struct engine_srcs *srcs;
	struct fairq *workq;
	bool own_tables; /* lines, srcs and workq are this engine's alone */

	/* Other loops' wake-ups (engine_wake()), when there are other loops:
	 * a list guarded by its mutex, and the async handle that brings the
	 * loop round to take them. */
	pthread_mutex_t inbox_mtx;
	struct list_head inbox;
	uv_async_t inbox_async;
	bool has_inbox;

	/* The parked (engine_park()): an epoll set of our own, watched by the
	 * loop, because uv_poll_t would set O_NONBLOCK on the descriptor. */
	int park_fd;
	uv_poll_t park_poll;
	bool park_init;
	unsigned n_parked;
	/* The events on_park() is going through, for engine_unpark(). */
	struct epoll_event *park_batch;
	int park_batch_n;

	/* The chain (see engine_chain_begin()). */
	bool chain_running;
	struct xfer *chain_next;
};

static void
on_check(uv_check_t *h)
{
	engine_flush(h->data);
}

static void
on_nudge(uv_idle_t *h)
{
	/* Nothing to do: an active idle handle only keeps the loop from
	 * sleeping in epoll_wait() until the flush has run. */
	(void)h;
}

/* Something now waits for the flush: keep the loop turning until it runs.
 * Work queued from a timer callback would otherwise wait for the next I/O. */
static void
nudge(struct engine *e)
{
	if (e->nudging)
		return;
	e->nudging = true;
	uv_idle_start(&e->nudge, on_nudge);
}

static int park_init(struct engine *e);

struct engine_srcs *
engine_srcs_new(void)
{
	struct engine_srcs *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mtx, NULL);
	for (size_t i = 0; i < SRC_BUCKETS; i++)
		list_init(&s->buckets[i]);
	return s;
}

void
engine_srcs_free(struct engine_srcs *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

static void
free_tables(struct engine *e)
{
	if (!e->own_tables)
		return;
	dstline_table_free(e->lines);
	engine_srcs_free(e->srcs);
	fairq_free(e->workq);
}

/* Another loop woke something of ours: run it now, on our thread. */
static void
on_inbox(uv_async_t *h)
{
	struct engine *e = h->data;
	struct list_head todo;

	pthread_mutex_lock(&e->inbox_mtx);
	if (list_empty(&e->inbox)) {
		pthread_mutex_unlock(&e->inbox_mtx);
		return;
	}
	todo = e->inbox;
	todo.next->prev = todo.prev->next = &todo;
	list_init(&e->inbox);
	/* Each stays queued until it runs: one that runs first may take
	 * another's owner away, whose engine_unwake() then unlinks it here. */
	for (;;) {
		struct engine_waiter *w;

		if (list_empty(&todo))
			break;
		w = list_entry(todo.next, struct engine_waiter, link);
		list_del(&w->link);
		w->queued = false;
		pthread_mutex_unlock(&e->inbox_mtx);
		w->fn(w);
		pthread_mutex_lock(&e->inbox_mtx);
	}
	pthread_mutex_unlock(&e->inbox_mtx);
}

int
engine_new_shared(uv_loop_t *loop, const struct engine_shared *shared, struct engine **ret)
{
	struct engine *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	if (shared) {
		e->lines = shared->lines;
		e->srcs = shared->srcs;
		e->workq = shared->workq;
	} else {
		e->own_tables = true;
		e->lines = dstline_table_new();
		e->srcs = engine_srcs_new();
		/* libuv's own default thread count, until told
		 * (engine_set_workers()). */
		e->workq = fairq_new(ENGINE_WORKERS_DEFAULT);
	}
	if (!e->lines || !e->srcs || !e->workq) {
		free_tables(e);
		free(e);
		return -ENOMEM;
	}
	e->loop = loop;
	e->park_fd = -1;
	list_init(&e->waiters);
	list_init(&e->inbox);
	r = uv_check_init(loop, &e->check);
	if (r == 0)
		r = uv_idle_init(loop, &e->nudge);
	if (r < 0) {
		/* uv_check_init() cannot fail on Linux; nothing to close. */
		free_tables(e);
		free(e);
		return r;
	}
	e->check.data = e->nudge.data = e;
	e->handles = 2;
	if (shared) {
		r = uv_async_init(loop, &e->inbox_async, on_inbox);
		if (r < 0) {
			engine_free(e);
			return r;
		}
		pthread_mutex_init(&e->inbox_mtx, NULL);
		e->inbox_async.data = e;
		/* Like the flush: it keeps nobody's loop alive. */
		uv_unref((uv_handle_t *)&e->inbox_async);
		e->has_inbox = true;
	}
	uv_check_start(&e->check, on_check);
	uv_unref((uv_handle_t *)&e->check);
	/* Now rather than at the first use: the daemon's descriptors stay the
	 * same set while it serves. Failing, it is tried again then. */
	(void)park_init(e);
	*ret = e;
	return 0;
}

static void
on_closed(uv_handle_t *h)
{
	struct engine *e = h->data;

	if (--e->handles > 0)
		return;
	e->park_fd = safe_close(e->park_fd);
	free_tables(e);
	if (e->has_inbox)
		pthread_mutex_destroy(&e->inbox_mtx);
	free(e);
}

int
engine_new(uv_loop_t *loop, struct engine **ret)
{
	return engine_new_shared(loop, NULL, ret);
}

void
engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_flush(e);
	uv_close((uv_handle_t *)&e->check, on_closed);
	uv_close((uv_handle_t *)&e->nudge, on_closed);
	if (e->has_inbox) {
		e->handles++;
		uv_close((uv_handle_t *)&e->inbox_async, on_closed);
	}
	if (e->park_init) {
		e->handles++;
		uv_close((uv_handle_t *)&e->park_poll, on_closed);
	}
}

uv_loop_t *
engine_loop(const struct engine *e)
{
	return e->loop;
}

struct dstline_table *
engine_lines(struct engine *e)
{
	return e->lines;
}

#define PARK_EVENTS_MAX 64

static void
on_park(uv_poll_t *h, int status, int events)
{
	struct engine *e = h->data;
	struct epoll_event evs[PARK_EVENTS_MAX];
	int n;

	(void)status;
	(void)events;
	n = epoll_wait(e->park_fd, evs, PARK_EVENTS_MAX, 0);
	if (n <= 0)
		return;
	/* A call may unpark others of this batch (a transfer that fails and
	 * takes its connection down): engine_unpark() clears their entries,
	 * which are skipped. */
	e->park_batch = evs;
	e->park_batch_n = n;
	for (int i = 0; i < n; i++) {
		struct engine_parked *p = evs[i].data.ptr;

		if (!p)
			continue;
		/* Parked: taken out before the call, which may park it again,
		 * or finish and close its descriptor. */
		if (!p->watch)
			engine_unpark(e, p);
		p->fn(p);
	}
	e->park_batch = NULL;
	e->park_batch_n = 0;
}

static int
park_init(struct engine *e)
{
	int r;

	if (e->park_init)
		return 0;
	e->park_fd = epoll_create1(EPOLL_CLOEXEC);
	if (e->park_fd < 0)
		return -errno;
	/* Sets O_NONBLOCK on our own epoll descriptor only. */
	r = uv_poll_init(e->loop, &e->park_poll, e->park_fd);
	if (r < 0) {
		e->park_fd = safe_close(e->park_fd);
		return r;
	}
	e->park_poll.data = e;
	/* Watched for good, so that the first descriptor parked, and the
	 * last unparked, cost no epoll_ctl() on the loop's own set; it keeps
	 * the loop alive only while something is parked. */
	r = uv_poll_start(&e->park_poll, UV_READABLE, on_park);
	/* It fails only for events other than readable and writable. */
	(void)r;
	uv_unref((uv_handle_t *)&e->park_poll);
	e->park_init = true;
	return 0;
}

static int
arm(struct engine *e, struct engine_parked *p, int fd, uint32_t events, bool watch)
{
	struct epoll_event ev = {.events = events, .data.ptr = p};
	int r = park_init(e);

	if (r < 0)
		return r;
	/* epoll_ctl() changes nothing of the client's open file description. */
	if (epoll_ctl(e->park_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	if (e->n_parked++ == 0)
		uv_ref((uv_handle_t *)&e->park_poll);
	p->fd = fd;
	p->events = events;
	p->watch = watch;
	p->parked = true;
	return 0;
}

int
engine_park(struct engine *e, struct engine_parked *p, int fd)
{
	return arm(e, p, fd, EPOLLOUT, false);
}

int
engine_watch(struct engine *e, struct engine_parked *p, int fd, uint32_t events)
{
	if (p->parked && p->watch && p->fd == fd && p->events == events)
		return 0;
	engine_unpark(e, p);
	return arm(e, p, fd, events, true);
}

void
engine_unpark(struct engine *e, struct engine_parked *p)
{
	if (!p->parked)
		return;
	/* Before its descriptor is closed: the client may hold the same open
	 * file description, which would keep it in the set under a number we
	 * could reuse. */
	(void)epoll_ctl(e->park_fd, EPOLL_CTL_DEL, p->fd, NULL);
	p->parked = false;
	for (int i = 0; i < e->park_batch_n; i++)
		if (e->park_batch[i].data.ptr == p)
			e->park_batch[i].data.ptr = NULL;
	if (--e->n_parked == 0)
		uv_unref((uv_handle_t *)&e->park_poll);
}

struct fairq *
engine_workq(struct engine *e)
{
	return e->workq;
}

void
engine_set_workers(struct engine *e, unsigned n)
{
	fairq_set_slots(e->workq, n);
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static void
close_grave(struct engine *e)
{
	size_t i = 0;

	qsort(e->grave, e->n_grave, sizeof(int), cmp_int);
	while (i < e->n_grave) {
		size_t j = i;

		while (j + 1 < e->n_grave && e->grave[j + 1] == e->grave[j] + 1)
			j++;
		if (j == i || close_range(e->grave[i], e->grave[j], 0) < 0)
			for (size_t k = i; k <= j; k++)
				(void)close(e->grave[k]);
		i = j + 1;
	}
	e->n_grave = 0;
}

void
engine_flush(struct engine *e)
{
	e->first_moved = 0;
	if (!e->nudging)
		return; /* nothing was buried or deferred this turn */
	for (int round = 0; round < FLUSH_ROUNDS; round++) {
		struct list_head todo;

		/* Descriptors first: every reply sent below finds the daemon
		 * holding none of its request's. */
		close_grave(e);
		if (list_empty(&e->waiters))
			break;
		/* Waiters deferred while these run wait for the next round. */
		todo = e->waiters;
		todo.next->prev = todo.prev->next = &todo;
		list_init(&e->waiters);
		while (!list_empty(&todo)) {
			struct engine_waiter *w = list_entry(todo.next, struct engine_waiter, link);

			list_del(&w->link);
			w->queued = false;
			w->fn(w);
		}
	}
	close_grave(e);
	if (list_empty(&e->waiters) && e->nudging) {
		e->nudging = false;
		uv_idle_stop(&e->nudge);
	}
}

void
engine_defer(struct engine *e, struct engine_waiter *w)
{
	if (w->queued)
		return;
	w->queued = true;
	list_add_tail(&e->waiters, &w->link);
	nudge(e);
}

void
engine_wake(struct engine *e, struct engine_waiter *w)
{
	bool first;

	pthread_mutex_lock(&e->inbox_mtx);
	if (w->queued) {
		pthread_mutex_unlock(&e->inbox_mtx);
		return;
	}
	first = list_empty(&e->inbox);
	w->queued = true;
	list_add_tail(&e->inbox, &w->link);
	pthread_mutex_unlock(&e->inbox_mtx);
	/* One wake-up per batch: the loop takes the whole inbox at once. */
	if (first)
		uv_async_send(&e->inbox_async);
}

void
engine_unwake(struct engine *e, struct engine_waiter *w)
{
	if (!e->has_inbox)
		return;
	pthread_mutex_lock(&e->inbox_mtx);
	if (w->queued) {
		list_del(&w->link);
		w->queued = false;
	}
	pthread_mutex_unlock(&e->inbox_mtx);
}

bool
engine_has_peers(const struct engine *e)
{
	return e->has_inbox;
}

void
engine_undefer(struct engine_waiter *w)
{
	if (!w->queued)
		return;
	list_del(&w->link);
	w->queued = false;
}

int
engine_bury(struct engine *e, int fd)
{
	if (fd < 0)
		return -1;
	if (e->n_grave == GRAVE_MAX)
		close_grave(e);
	e->grave[e->n_grave++] = fd;
	nudge(e);
	return -1;
}

static bool
fresh(const struct engine *e, const struct hot_range *h)
{
	return uv_now(e->loop) - h->seen_ms <= HOT_MS;
}

size_t
engine_first_budget(const struct engine *e, size_t chunk)
{
	return e->first_moved < FIRST_TURN_MAX ? chunk : MIN(chunk, FIRST_SMALL);
}

void
engine_first_moved(struct engine *e, size_t n)
{
	e->first_moved += n;
}

bool
engine_hot(const struct engine *e, const struct fdinfo *f, uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < e->n_hot; i++) {
		const struct hot_range *h = &e->hot[i];

		if (h->ino == f->ino && h->dev == f->dev && start >= h->start && end <= h->end &&
		    fresh(e, h))
			return true;
	}
	return false;
}

void
engine_hot_add(struct engine *e, const struct fdinfo *f, uint64_t start, uint64_t end)
{
	struct hot_range *slot = NULL;

	/* The same range again (a file served over and over): refreshed in
	 * place, so that one busy file does not push out the others. */
	for (unsigned i = 0; i < e->n_hot && !slot; i++) {
		struct hot_range *h = &e->hot[i];

		if (h->ino == f->ino && h->dev == f->dev && h->start == start && h->end == end)
			slot = h;
	}
	if (!slot) {
		slot = &e->hot[e->next_hot];
		e->next_hot = (e->next_hot + 1) % HOT_MAX;
		if (e->n_hot < HOT_MAX)
			e->n_hot++;
	}
	*slot = (struct hot_range){f->dev, f->ino, start, end, uv_now(e->loop)};
}

void
engine_chain_begin(struct engine *e)
{
	e->chain_running = true;
	e->chain_next = NULL;
}

bool
engine_chain_offer(struct engine *e, struct xfer *next)
{
	if (!e->chain_running || e->chain_next)
		return false;
	e->chain_next = next;
	return true;
}

struct xfer *
engine_chain_end(struct engine *e)
{
	struct xfer *next = e->chain_next;

	e->chain_running = false;
	e->chain_next = NULL;
	return next;
}

void
engine_chain_forget(struct engine *e, struct xfer *x)
{
	if (e->chain_next == x)
		e->chain_next = NULL;
}

/* Do @a and @b name one open file description? Unknown (kcmp refused by a
 * seccomp filter, or a kernel without it) counts as yes: private offsets
 * are always correct, only less telling after a crash. */
static bool
same_description(int a, int b)
{
	/* glibc no longer caches getpid(), and the daemon never forks. */
	static pid_t pid;

	if (!pid)
		pid = getpid();

	/* 0: the same; 1, 2 or 3: different; -1: cannot tell. */
	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b) <= 0;
}

void
engine_src_lock(struct engine *e)
{
	pthread_mutex_lock(&e->srcs->mtx);
}

void
engine_src_unlock(struct engine *e)
{
	pthread_mutex_unlock(&e->srcs->mtx);
}

static int
join_locked(struct engine *e, struct engine_src_member *m, int fd, const struct fdinfo *f)
{
	struct list_head *bucket = &e->srcs->buckets[(size_t)f->ino % SRC_BUCKETS], *pos, *tmp;
	struct engine_src *s;

	list_for_each_safe(pos, tmp, bucket)
	{
		struct engine_src_member *other;

		s = list_entry(pos, struct engine_src, link);
		if (s->dev != f->dev || s->ino != f->ino)
			continue;
		/* Members of one source share its description: asking one
		 * of them is enough. */
		other = list_entry(s->members.next, struct engine_src_member, link);
		if (!same_description(fd, other->fd))
			continue;
		m->src = s;
		m->fd = fd;
		list_add_tail(&s->members, &m->link);
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dev = f->dev;
	s->ino = f->ino;
	list_init(&s->members);
	list_add_tail(bucket, &s->link);
	m->src = s;
	m->fd = fd;
	list_add_tail(&s->members, &m->link);
	return 1;
}

int
engine_src_join(struct engine *e, struct engine_src_member *m, int fd, const struct fdinfo *f)
{
	int r;

	engine_src_lock(e);
	r = join_locked(e, m, fd, f);
	engine_src_unlock(e);
	return r;
}

bool
engine_src_leave(struct engine *e, struct engine_src_member *m)
{
	struct engine_src *s = m->src;

	(void)e;
	list_del(&m->link);
	m->src = NULL;
	if (!list_empty(&s->members))
		return false;
	list_del(&s->link);
	free(s);
	return true;
}
