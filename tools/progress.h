/*
 * progress - `sendfilectl send`'s progress line on a terminal.
 *
 * The transfer itself is one blocking call into libsendfiled; a thread of
 * this module asks the control plane meanwhile how far the daemon has got
 * (`list`'s bytes sent) and redraws one line on stderr: bytes, percentage
 * when the size is known, rate and time left. Without a control plane it
 * draws nothing: there is nothing to tell.
 */
#ifndef SFD_SFCTL_PROGRESS_H
#define SFD_SFCTL_PROGRESS_H

#include <stdint.h>

#include "sendfilectl.h"

struct progress;

/*
 * progress_start() - start drawing the progress of the transfer this process
 * is about to start at @offset, of @total bytes (0: unknown).
 * @g is borrowed until progress_stop(). Draws on stderr, which the caller
 * leaves alone until then.
 * Return: 0 and *ret, or a negative errno (nothing is drawn).
 */
int progress_start(const struct sfctl_global *g, uint64_t offset, uint64_t total,
                   struct progress **ret);

/*
 * progress_stop() - stop drawing, erase the line, free. Waits for a control
 * request in progress (a second at most). NULL is a no-op.
 */
void progress_stop(struct progress *p);

#endif
