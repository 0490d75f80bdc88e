/*
 * list.h - intrusive doubly linked list (as in wayland and the kernel).
 */
#ifndef SFD_LIST_H
#define SFD_LIST_H

#include <stddef.h>

#include "macro.h"

struct list_head {
	struct list_head *prev, *next;
};

static inline void
list_init(struct list_head *h)
{
	h->prev = h->next = h;
}

static inline void
list_add_tail(struct list_head *h, struct list_head *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static inline void
list_del(struct list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static inline int
list_empty(const struct list_head *h)
{
	return h->next == h;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
/* Safe against removal of the current entry. */
#define list_for_each_safe(pos, tmp, head)                                                         \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

#endif
