#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "dstline.h"

struct dstline {
	dev_t dev;
	ino_t ino;
	struct dstline_item *owner;
	struct dstline_item *first, *last; /* waiting, in order */
	struct dstline *hnext;             /* hash chain */
};

/* Open hash with chaining; grows with the number of busy destinations,
 * which the limits on requests in flight bound. */
struct dstline_table {
	/* Guards the buckets, the lines and the items in them. Shared by
	 * several loops, a line's owner and its waiters may live on different
	 * threads; one loop's table takes it uncontended. */
	pthread_mutex_t mtx;
	bool shared;
	struct dstline **buckets;
	size_t size; /* a power of two, or 0 */
	size_t count;
};

static struct dstline_table *
table_new(bool shared)
{
	struct dstline_table *t = calloc(1, sizeof(struct dstline_table));

	if (!t)
		return NULL;
	pthread_mutex_init(&t->mtx, NULL);
	t->shared = shared;
	return t;
}

struct dstline_table *
dstline_table_new(void)
{
	return table_new(false);
}

struct dstline_table *
dstline_table_new_shared(void)
{
	return table_new(true);
}

void
dstline_table_free(struct dstline_table *t)
{
	if (!t)
		return;
	/* Lines exist only while transfers do: none are left by now. */
	pthread_mutex_destroy(&t->mtx);
	free(t->buckets);
	free(t);
}

static size_t
bucket_of(dev_t dev, ino_t ino, size_t size)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29) & (size - 1);
}

static struct dstline **
slot(struct dstline_table *t, dev_t dev, ino_t ino)
{
	struct dstline **p;

	if (t->size == 0)
		return NULL;
	for (p = &t->buckets[bucket_of(dev, ino, t->size)]; *p; p = &(*p)->hnext)
		if ((*p)->dev == dev && (*p)->ino == ino)
			return p;
	return p;
}

static int
grow(struct dstline_table *t)
{
	size_t size = t->size ? t->size * 2 : 64;
	struct dstline **b = calloc(size, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->size; i++) {
		struct dstline *l, *next;

		for (l = t->buckets[i]; l; l = next) {
			size_t k = bucket_of(l->dev, l->ino, size);

			next = l->hnext;
			l->hnext = b[k];
			b[k] = l;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->size = size;
	return 0;
}

bool
dstline_any(const struct dstline_table *t)
{
	/* Shared: another loop may be starting a transfer to the same
	 * destination right now, so every transfer takes its line first. */
	return t->shared || __atomic_load_n(&t->count, __ATOMIC_RELAXED) > 0;
}

static int own_locked(struct dstline_table *t, struct dstline_item *it);

bool
dstline_wait(struct dstline_table *t, struct dstline_item *it)
{
	struct dstline **p;
	struct dstline *l;

	pthread_mutex_lock(&t->mtx);
	p = slot(t, it->dev, it->ino);
	l = p ? *p : NULL;
	if (!l) {
		/* Free: shared, it is ours from now on (failing, unordered). */
		if (t->shared)
			(void)own_locked(t, it);
		pthread_mutex_unlock(&t->mtx);
		return false;
	}
	it->line = l;
	it->next = NULL;
	if (l->last)
		l->last->next = it;
	else
		l->first = it;
	l->last = it;
	pthread_mutex_unlock(&t->mtx);
	return true;
}

int
dstline_own(struct dstline_table *t, struct dstline_item *it)
{
	int r;

	pthread_mutex_lock(&t->mtx);
	r = own_locked(t, it);
	pthread_mutex_unlock(&t->mtx);
	return r;
}

static int
own_locked(struct dstline_table *t, struct dstline_item *it)
{
	struct dstline **p, *l;

	if (it->line)
		return 0;
	if (t->count >= t->size && grow(t) < 0 && t->size == 0)
		return -ENOMEM;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	p = slot(t, it->dev, it->ino);
	l->dev = it->dev;
	l->ino = it->ino;
	l->owner = it;
	l->hnext = *p; /* NULL: the caller checked that no line exists */
	*p = l;
	__atomic_store_n(&t->count, t->count + 1, __ATOMIC_RELAXED);
	it->line = l;
	return 0;
}

static struct dstline_item *leave_locked(struct dstline_table *t, struct dstline_item *it);

struct dstline_item *
dstline_leave(struct dstline_table *t, struct dstline_item *it)
{
	struct dstline_item *next;

	pthread_mutex_lock(&t->mtx);
	next = leave_locked(t, it);
	/* The next one lives on another loop: wake it there, under the lock,
	 * so that its own loop cannot free it in between (its
	 * dstline_leave() waits for the lock). */
	if (next && next->owner != it->owner && next->wake) {
		next->wake(next);
		next = NULL;
	}
	pthread_mutex_unlock(&t->mtx);
	return next;
}

static struct dstline_item *
leave_locked(struct dstline_table *t, struct dstline_item *it)
{
	struct dstline *l = it->line;
	struct dstline_item *next;

	if (!l)
		return NULL;
	it->line = NULL;
	if (l->owner != it) {
		/* Cancelled while waiting: unlink it. */
		struct dstline_item *prev = NULL;

		for (struct dstline_item *w = l->first; w != it; w = w->next)
			prev = w;
		if (prev)
			prev->next = it->next;
		else
			l->first = it->next;
		if (l->last == it)
			l->last = prev;
		it->next = NULL;
		return NULL;
	}
	next = l->first;
	if (next) {
		l->first = next->next;
		if (!l->first)
			l->last = NULL;
		next->next = NULL;
		l->owner = next;
		return next;
	}
	*slot(t, l->dev, l->ino) = l->hnext;
	__atomic_store_n(&t->count, t->count - 1, __ATOMIC_RELAXED);
	free(l);
	return NULL;
}
