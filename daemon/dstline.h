/*
 * dstline - one transfer at a time per destination. Two transfers to the
 * same socket (or pipe, or file) must not interleave their bytes, so the
 * second waits in a line behind the first, in the order the daemon started
 * them, and runs when the one ahead of it ends.
 *
 * A destination is known by its inode (st_dev, st_ino): every descriptor of
 * one socket or pipe shares it, and it cannot be reused while a transfer
 * holds a descriptor of it. Only transfers that outlive their first attempt
 * own a line, so the common case (a transfer that completes at once while no
 * other one is waiting) costs nothing: see dstline_any().
 *
 * A table belongs to one loop's engine (engine.h), or, with several loops,
 * is shared by all their engines (dstline_table_new_shared()): then every
 * transfer takes its line before its first attempt (another loop could start
 * one to the same destination meanwhile), and the one whose turn comes on
 * another loop is woken there (dstline_item.wake). Thread-safe (a mutex).
 */
#ifndef SFD_DSTLINE_H
#define SFD_DSTLINE_H

#include <stdbool.h>
#include <sys/types.h>

struct dstline;
struct dstline_table;

/* dstline_table_new() - an empty table. Return: it, or NULL (out of memory). */
struct dstline_table *dstline_table_new(void);
/* dstline_table_new_shared() - a table for several loops (see above). */
struct dstline_table *dstline_table_new_shared(void);
/* dstline_table_free() - NULL is a no-op. Every line must be gone. */
void dstline_table_free(struct dstline_table *t);

/* Embedded in what waits; the caller fills dev and ino. */
struct dstline_item {
	dev_t dev;
	ino_t ino;
	struct dstline *line;      /* the line it owns or waits in; NULL if none */
	struct dstline_item *next; /* the next one waiting in the same line */
	/* Shared tables: whose it is (its loop's engine), and what tells that
	 * loop its turn has come, called from another loop's thread with the
	 * table locked (it must only post, never block). */
	const void *owner;
	void (*wake)(struct dstline_item *it);
};

/* dstline_any() - is any destination busy? When not, a new transfer need
 * not even ask which destination it has. */
bool dstline_any(const struct dstline_table *t);

/*
 * dstline_wait() - if @it's destination is busy, put @it at the end of its
 * line and return true: the caller must not start it until dstline_leave()
 * returns it (or, from another loop, @it->wake is called). Return false when
 * the destination is free (nothing changes; in a shared table, @it owns the
 * line from now on).
 */
bool dstline_wait(struct dstline_table *t, struct dstline_item *it);

/*
 * dstline_own() - make @it the owner of its destination's line, which must
 * not exist (dstline_wait() said so, with nothing started in between). A
 * no-op when @it owns a line already.
 * Return: 0, or -ENOMEM (then @it owns nothing: the caller goes on unordered
 * rather than fail a transfer it has started).
 */
int dstline_own(struct dstline_table *t, struct dstline_item *it);

/*
 * dstline_leave() - take @it out of its line: an owner that is done, or a
 * waiting item that is cancelled. A no-op for an item in no line.
 * Return: the item that now owns the line and must be started (the first
 * one that waited behind an owner that left), or NULL (none, or one of
 * another owner, which has been woken).
 */
struct dstline_item *dstline_leave(struct dstline_table *t, struct dstline_item *it);

#endif
