/*
 * loops.c - the event loops' threads and the tasks between them (see
 * loops.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loops.h"
#include "macro.h"

struct one_loop {
	struct loops *owner;
	unsigned index;
	uv_loop_t own; /* loops 1..n-1: ours */
	uv_loop_t *loop;
	/* The tasks posted to this loop: guarded by mtx, taken by on_inbox()
	 * on the loop's thread. */
	pthread_mutex_t mtx;
	struct list_head inbox;
	uv_async_t async;
	bool async_init;
	bool quit; /* loops_free(): close the async handle, let uv_run() end */
	pthread_t thread;
	bool thread_started;
};

struct loops {
	unsigned n;
	struct one_loop *l;
};

static void
on_inbox(uv_async_t *h)
{
	struct one_loop *ol = h->data;
	struct list_head todo;
	bool quit;

	pthread_mutex_lock(&ol->mtx);
	/* Move the whole inbox to @todo (an empty one stays empty). */
	if (list_empty(&ol->inbox)) {
		list_init(&todo);
	} else {
		todo = ol->inbox;
		todo.next->prev = todo.prev->next = &todo;
		list_init(&ol->inbox);
	}
	quit = ol->quit;
	/* Each stays queued until it runs: a task may be posted again only
	 * once it has been taken, and runs once. */
	while (!list_empty(&todo)) {
		struct loops_task *t = list_entry(todo.next, struct loops_task, link);

		list_del(&t->link);
		t->queued = false;
		pthread_mutex_unlock(&ol->mtx);
		t->fn(t);
		pthread_mutex_lock(&ol->mtx);
		/* That task freed the loops (loop 0, the daemon stopping):
		 * what is left was for what it freed. */
		if (!ol->async_init)
			break;
	}
	pthread_mutex_unlock(&ol->mtx);
	if (quit && ol->async_init) {
		ol->async_init = false;
		uv_close((uv_handle_t *)&ol->async, NULL);
	}
}

static void *
run(void *arg)
{
	struct one_loop *ol = arg;
	char name[16];

	/* Shown by top -H and in /proc/PID/task/TID/comm. */
	snprintf(name, sizeof(name), "sfd-loop%u", ol->index);
	(void)pthread_setname_np(pthread_self(), name);
	uv_run(ol->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int
init_inbox(struct one_loop *ol)
{
	int r;

	pthread_mutex_init(&ol->mtx, NULL);
	list_init(&ol->inbox);
	r = uv_async_init(ol->loop, &ol->async, on_inbox);
	if (r < 0)
		return r;
	ol->async.data = ol;
	ol->async_init = true;
	return 0;
}

int
loops_new(uv_loop_t *first, unsigned n, struct loops **ret)
{
	struct loops *l;
	int r = 0;

	if (n < 1 || n > LOOPS_MAX)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->l = calloc(n, sizeof(*l->l));
	if (!l->l) {
		free(l);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct one_loop *ol = &l->l[i];

		ol->owner = l;
		ol->index = i;
		if (i == 0) {
			ol->loop = first;
		} else {
			r = uv_loop_init(&ol->own);
			if (r < 0)
				break;
			ol->loop = &ol->own;
		}
		l->n = i + 1;
		/* One loop: nobody posts to it, and it keeps no handle more
		 * than it always had. */
		if (n > 1) {
			r = init_inbox(ol);
			if (r < 0)
				break;
			/* Loop 0's wake-up handle must not keep it alive; the
			 * others' do, until loops_free(). */
			if (i == 0)
				uv_unref((uv_handle_t *)&ol->async);
		}
	}
	if (r < 0) {
		loops_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

int
loops_start(struct loops *l)
{
	for (unsigned i = 1; i < l->n; i++) {
		struct one_loop *ol = &l->l[i];
		int r = pthread_create(&ol->thread, NULL, run, ol);

		if (r != 0) {
			log_err("cannot start the thread of loop %u: %s", i, strerror(r));
			return -r;
		}
		ol->thread_started = true;
	}
	return 0;
}

unsigned
loops_count(const struct loops *l)
{
	return l->n;
}

uv_loop_t *
loops_loop(const struct loops *l, unsigned i)
{
	return l->l[i].loop;
}

void
loops_post(struct loops *l, unsigned i, struct loops_task *t)
{
	struct one_loop *ol = &l->l[i];
	bool first;

	pthread_mutex_lock(&ol->mtx);
	if (t->queued) {
		pthread_mutex_unlock(&ol->mtx);
		return;
	}
	first = list_empty(&ol->inbox);
	t->queued = true;
	list_add_tail(&ol->inbox, &t->link);
	/* One wake-up per batch: on_inbox() takes the whole list. Sent under
	 * the lock, so that loops_free() cannot close the handle between. */
	if (first && ol->async_init)
		uv_async_send(&ol->async);
	pthread_mutex_unlock(&ol->mtx);
}

struct call {
	struct loops_task task;
	void (*fn)(void *arg);
	void *arg;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool done;
};

static void
on_call(struct loops_task *t)
{
	struct call *c = container_of(t, struct call, task);

	c->fn(c->arg);
	pthread_mutex_lock(&c->mtx);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mtx);
}

void
loops_call(struct loops *l, unsigned i, void (*fn)(void *arg), void *arg)
{
	struct call c = {.task.fn = on_call, .fn = fn, .arg = arg};

	if (i == 0 || !l->l[i].thread_started) {
		fn(arg);
		return;
	}
	pthread_mutex_init(&c.mtx, NULL);
	pthread_cond_init(&c.cv, NULL);
	loops_post(l, i, &c.task);
	pthread_mutex_lock(&c.mtx);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mtx);
	pthread_mutex_unlock(&c.mtx);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mtx);
}

static void
free_memory(struct loops *l)
{
	if (l->n > 1)
		pthread_mutex_destroy(&l->l[0].mtx);
	free(l->l);
	free(l);
}

static void
on_first_closed(uv_handle_t *h)
{
	struct one_loop *ol = h->data;

	free_memory(ol->owner);
}

static void
on_quit(struct loops_task *t)
{
	(void)t;
}

void
loops_free(struct loops *l)
{
	if (!l)
		return;
	for (unsigned i = 1; i < l->n; i++) {
		struct one_loop *ol = &l->l[i];
		struct loops_task quit = {.fn = on_quit};

		if (!ol->loop)
			continue; /* never set up (loops_new() failed) */
		if (ol->thread_started) {
			pthread_mutex_lock(&ol->mtx);
			ol->quit = true;
			pthread_mutex_unlock(&ol->mtx);
			/* Wakes it: on_inbox() then closes the handle, and
			 * uv_run() returns once the loop's last handle has
			 * closed. */
			loops_post(l, i, &quit);
			pthread_join(ol->thread, NULL);
			ol->thread_started = false;
		} else if (ol->async_init) {
			ol->async_init = false;
			uv_close((uv_handle_t *)&ol->async, NULL);
		}
		/* Closes what had not run yet (a loop never started). */
		uv_run(ol->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(ol->loop) < 0)
			log_err("loop %u: handles left open at exit", i);
		if (l->n > 1)
			pthread_mutex_destroy(&ol->mtx);
	}
	if (l->n > 1 && l->l[0].async_init) {
		/* Whatever was still posted to loop 0 is dropped: the one who
		 * frees the loops frees what those tasks were for. The memory
		 * goes when the handle has closed; nobody posts any more (every
		 * other loop has stopped). */
		pthread_mutex_lock(&l->l[0].mtx);
		list_init(&l->l[0].inbox);
		pthread_mutex_unlock(&l->l[0].mtx);
		l->l[0].async_init = false;
		uv_close((uv_handle_t *)&l->l[0].async, on_first_closed);
		return;
	}
	free_memory(l);
}
