#include <errno.h>
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
static struct {
	struct dstline **buckets;
	size_t size; /* a power of two, or 0 */
	size_t count;
} table;

static size_t
bucket_of(dev_t dev, ino_t ino, size_t size)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29) & (size - 1);
}

static struct dstline **
slot(dev_t dev, ino_t ino)
{
	struct dstline **p;

	if (table.size == 0)
		return NULL;
	for (p = &table.buckets[bucket_of(dev, ino, table.size)]; *p; p = &(*p)->hnext)
		if ((*p)->dev == dev && (*p)->ino == ino)
			return p;
	return p;
}

static int
grow(void)
{
	size_t size = table.size ? table.size * 2 : 64;
	struct dstline **b = calloc(size, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < table.size; i++) {
		struct dstline *l, *next;

		for (l = table.buckets[i]; l; l = next) {
			size_t k = bucket_of(l->dev, l->ino, size);

			next = l->hnext;
			l->hnext = b[k];
			b[k] = l;
		}
	}
	free(table.buckets);
	table.buckets = b;
	table.size = size;
	return 0;
}

bool
dstline_any(void)
{
	return table.count > 0;
}

bool
dstline_wait(struct dstline_item *it)
{
	struct dstline **p = slot(it->dev, it->ino);
	struct dstline *l = p ? *p : NULL;

	if (!l)
		return false;
	it->line = l;
	it->next = NULL;
	if (l->last)
		l->last->next = it;
	else
		l->first = it;
	l->last = it;
	return true;
}

int
dstline_own(struct dstline_item *it)
{
	struct dstline **p, *l;

	if (it->line)
		return 0;
	if (table.count >= table.size && grow() < 0 && table.size == 0)
		return -ENOMEM;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	p = slot(it->dev, it->ino);
	l->dev = it->dev;
	l->ino = it->ino;
	l->owner = it;
	l->hnext = *p; /* NULL: the caller checked that no line exists */
	*p = l;
	table.count++;
	it->line = l;
	return 0;
}

struct dstline_item *
dstline_leave(struct dstline_item *it)
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
	*slot(l->dev, l->ino) = l->hnext;
	table.count--;
	free(l);
	return NULL;
}
