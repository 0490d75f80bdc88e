/*
 * fairq.c - the two-level round robin in front of the worker pool (see
 * fairq.h).
 *
 * A uid is in the ring of users, and a connection in its uid's ring of
 * flows, only while it has jobs waiting: taking a job moves its flow to the
 * back of its uid's ring and its uid to the back of the users' ring, or
 * frees them when that was their last job. A uid seen again later starts at
 * the back, like any newcomer, so going quiet gains nothing.
 *
 * Lookups scan the rings: they hold only uids and connections with jobs
 * waiting, and both are capped (allowed users; connections; jobs in flight
 * per connection), so a hash table would buy little.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "fairq.h"
#include "macro.h"

struct fairq_user {
	struct list_head link; /* in fairq.users */
	uint32_t uid;
	struct list_head flows;
};

struct fairq_flow {
	struct list_head link; /* in fairq_user.flows */
	struct fairq_user *user;
	uint64_t key;
	struct list_head jobs;
};

struct fairq {
	/* Guards everything below: with several loops, one queue serves them
	 * all (libuv has one thread pool per process), and any loop's thread
	 * may push, pop, remove or release. Held for list operations only. */
	pthread_mutex_t mtx;
	struct list_head users;
	unsigned slots, running;
	size_t waiting;
};

struct fairq *
fairq_new(unsigned slots)
{
	struct fairq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	pthread_mutex_init(&q->mtx, NULL);
	list_init(&q->users);
	q->slots = slots > 0 ? slots : 1;
	return q;
}

void
fairq_free(struct fairq *q)
{
	if (!q)
		return;
	/* Normally empty; free what a careless owner left anyway. */
	while (!list_empty(&q->users)) {
		struct fairq_user *u = list_entry(q->users.next, struct fairq_user, link);

		while (!list_empty(&u->flows)) {
			struct list_head *f = u->flows.next;

			list_del(f);
			free(list_entry(f, struct fairq_flow, link));
		}
		list_del(&u->link);
		free(u);
	}
	pthread_mutex_destroy(&q->mtx);
	free(q);
}

static struct fairq_user *
find_user(struct fairq *q, uint32_t uid)
{
	for (struct list_head *p = q->users.next; p != &q->users; p = p->next) {
		struct fairq_user *u = list_entry(p, struct fairq_user, link);

		if (u->uid == uid)
			return u;
	}
	return NULL;
}

static struct fairq_flow *
find_flow(struct fairq_user *u, uint64_t key)
{
	for (struct list_head *p = u->flows.next; p != &u->flows; p = p->next) {
		struct fairq_flow *f = list_entry(p, struct fairq_flow, link);

		if (f->key == key)
			return f;
	}
	return NULL;
}

static int
push_locked(struct fairq *q, struct fairq_job *j, uint32_t uid, uint64_t flow)
{
	struct fairq_user *u = find_user(q, uid), *new_u = NULL;
	struct fairq_flow *f = u ? find_flow(u, flow) : NULL;

	if (!u) {
		u = new_u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		u->uid = uid;
		list_init(&u->flows);
		list_add_tail(&q->users, &u->link);
	}
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f) {
			if (new_u) {
				list_del(&new_u->link);
				free(new_u);
			}
			return -ENOMEM;
		}
		f->user = u;
		f->key = flow;
		list_init(&f->jobs);
		list_add_tail(&u->flows, &f->link);
	}
	list_add_tail(&f->jobs, &j->link);
	j->flow = f;
	q->waiting++;
	return 0;
}

/* Unlink @j from its flow; free the flow and its user when they are empty. */
static void
unlink_job(struct fairq *q, struct fairq_job *j)
{
	struct fairq_flow *f = j->flow;
	struct fairq_user *u = f->user;

	list_del(&j->link);
	j->flow = NULL;
	q->waiting--;
	if (list_empty(&f->jobs)) {
		list_del(&f->link);
		free(f);
	}
	if (list_empty(&u->flows)) {
		list_del(&u->link);
		free(u);
	}
}

int
fairq_push(struct fairq *q, struct fairq_job *j, uint32_t uid, uint64_t flow)
{
	int r;

	pthread_mutex_lock(&q->mtx);
	r = push_locked(q, j, uid, flow);
	pthread_mutex_unlock(&q->mtx);
	return r;
}

void
fairq_set_slots(struct fairq *q, unsigned slots)
{
	pthread_mutex_lock(&q->mtx);
	q->slots = slots > 0 ? slots : 1;
	pthread_mutex_unlock(&q->mtx);
}

static struct fairq_job *
pop_locked(struct fairq *q)
{
	struct fairq_user *u;
	struct fairq_flow *f;
	struct fairq_job *j;

	if (q->running >= q->slots || list_empty(&q->users))
		return NULL;
	u = list_entry(q->users.next, struct fairq_user, link);
	f = list_entry(u->flows.next, struct fairq_flow, link);
	j = list_entry(f->jobs.next, struct fairq_job, link);
	/* Both go to the back of their rings before the job leaves: whatever
	 * of them remains waits for everyone else's turn. */
	list_del(&f->link);
	list_add_tail(&u->flows, &f->link);
	list_del(&u->link);
	list_add_tail(&q->users, &u->link);
	unlink_job(q, j);
	q->running++;
	return j;
}

struct fairq_job *
fairq_pop(struct fairq *q)
{
	struct fairq_job *j;

	pthread_mutex_lock(&q->mtx);
	j = pop_locked(q);
	pthread_mutex_unlock(&q->mtx);
	return j;
}

void
fairq_release(struct fairq *q)
{
	pthread_mutex_lock(&q->mtx);
	if (q->running > 0)
		q->running--;
	pthread_mutex_unlock(&q->mtx);
}

bool
fairq_queued(const struct fairq_job *j)
{
	return j->flow != NULL;
}

bool
fairq_remove(struct fairq *q, struct fairq_job *j)
{
	bool queued;

	pthread_mutex_lock(&q->mtx);
	queued = fairq_queued(j);
	if (queued)
		unlink_job(q, j);
	pthread_mutex_unlock(&q->mtx);
	return queued;
}

size_t
fairq_waiting(const struct fairq *q)
{
	size_t n;

	pthread_mutex_lock((pthread_mutex_t *)&q->mtx);
	n = q->waiting;
	pthread_mutex_unlock((pthread_mutex_t *)&q->mtx);
	return n;
}

unsigned
fairq_running(const struct fairq *q)
{
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&q->mtx);
	n = q->running;
	pthread_mutex_unlock((pthread_mutex_t *)&q->mtx);
	return n;
}
