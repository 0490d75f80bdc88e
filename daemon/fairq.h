/*
 * fairq - the order in which jobs get the shared worker threads: a two-level
 * round robin, per uid, then per connection ("flow") within a uid, then
 * first in, first out within a connection.
 *
 * Why: libuv's thread pool serves its queue first come, first served, and a
 * job that holds a thread may hold it for a whole time slice (a destination
 * that does not read). One client with many such jobs queued ahead would
 * delay everybody else's by (jobs ahead / threads) x the slice. So jobs wait
 * here, and at most @slots of them (the number of threads) are handed to the
 * pool at once: whichever job is taken next comes from the next uid in turn.
 *
 * The bound (what test-fairq.c checks): with U uids that have jobs waiting,
 * a job queued by a uid that had none waiting is taken within U takes; a job
 * queued on a connection that had none waiting, by a uid with F such
 * connections, within U x F takes. How many jobs any one of them has queued
 * does not matter.
 *
 * Owns the per-uid and per-connection bookkeeping (allocated while they
 * have jobs waiting); the jobs are the caller's, embedded in its objects.
 * Thread-safe (a mutex): with several loops one queue serves them all, so
 * the bound holds across loops; a job taken by one loop may belong to
 * another, which its owner then hands over (xfer-worker.c). fairq_queued()
 * reads the job only: ask it on the job's own loop.
 */
#ifndef SFD_FAIRQ_H
#define SFD_FAIRQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

struct fairq;
struct fairq_flow;

/* Embedded in the caller's job; zero-initialised means "not queued". */
struct fairq_job {
	struct list_head link;
	struct fairq_flow *flow; /* while queued */
};

/* fairq_new() - a queue that lets @slots jobs (>= 1) run at once.
 * Return: the queue, or NULL when out of memory. */
struct fairq *fairq_new(unsigned slots);

/* fairq_set_slots() - how many jobs may run at once from now on (>= 1); jobs
 * running beyond a lowered count finish their turn. */
void fairq_set_slots(struct fairq *q, unsigned slots);

/* fairq_free() - every job must have been taken or removed. NULL is a no-op. */
void fairq_free(struct fairq *q);

/*
 * fairq_push() - queue @j at the back of its connection's line (@flow: any
 * key unique among live connections). @j must not be queued already.
 * Return: 0, or -ENOMEM (then @j is not queued).
 */
int fairq_push(struct fairq *q, struct fairq_job *j, uint32_t uid, uint64_t flow);

/*
 * fairq_pop() - when a slot is free, the next job in turn: it now holds a
 * slot, until fairq_release().
 * Return: the job, or NULL (no job waiting, or every slot taken).
 */
struct fairq_job *fairq_pop(struct fairq *q);

/* fairq_release() - a job taken with fairq_pop() has returned its slot. */
void fairq_release(struct fairq *q);

/* fairq_remove() - take @j out of the queue, if it is queued (cancelled).
 * Return: whether it was. */
bool fairq_remove(struct fairq *q, struct fairq_job *j);

/* fairq_queued() - is @j waiting in a queue? */
bool fairq_queued(const struct fairq_job *j);

/* fairq_waiting() - how many jobs wait; fairq_running() - slots taken. */
size_t fairq_waiting(const struct fairq *q);
unsigned fairq_running(const struct fairq *q);

#endif
