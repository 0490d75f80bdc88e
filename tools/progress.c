/*
 * progress.c - the progress line of `sendfilectl send`: a thread that polls
 * the control plane and redraws one line on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "progress.h"
#include "size.h"

/* How often to ask: often enough to look alive, rarely enough to cost the
 * daemon nothing. The first line comes after one period, so a short
 * transfer draws none. */
#define PROGRESS_PERIOD_MS 500
/* A request that takes longer is given up until the next period; it also
 * bounds how long progress_stop() can wait. */
#define PROGRESS_REQUEST_MS 1000

struct progress {
	const struct sfctl_global *g;
	uint64_t offset, total;
	uint64_t transfer; /* the daemon's id, once found */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;  /* under lock */
	bool drawn; /* a line is on the screen; the thread's until joined */
	/* For the rate: the last sample, and a moving average. */
	uint64_t last_sent;
	int64_t last_ms;
	double rate; /* bytes per second; 0 until the first sample */
};

static int
columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* "1:02:03", "4:05" or "--:--" for an unknown time. */
static void
format_eta(double seconds, char *buf, size_t size)
{
	unsigned long s;

	if (!(seconds >= 0) || seconds > 359999) {
		snprintf(buf, size, "--:--");
		return;
	}
	s = (unsigned long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
}

static void
draw(struct progress *p, uint64_t sent)
{
	char done[SIZE_FORMAT_MAX], all[SIZE_FORMAT_MAX], rate[SIZE_FORMAT_MAX], eta[64];
	char line[320], bar[32];
	int64_t now = mono_ms();
	int n, width = columns();

	/* The rate over the last period, smoothed so that the time left does
	 * not jump about with each sample. */
	if (now > p->last_ms && sent >= p->last_sent) {
		double r = (double)(sent - p->last_sent) * 1000.0 / (double)(now - p->last_ms);

		p->rate = p->rate > 0 ? 0.7 * p->rate + 0.3 * r : r;
	}
	p->last_sent = sent;
	p->last_ms = now;
	size_format(sent, done);
	size_format((uint64_t)p->rate, rate);
	if (p->total) {
		unsigned pct = sent >= p->total ? 100 : (unsigned)(sent * 100.0 / p->total);
		unsigned fill = pct / 5;

		size_format(p->total, all);
		format_eta(p->rate > 0 ? (double)(p->total - MIN(sent, p->total)) / p->rate : -1,
		           eta, sizeof(eta));
		memset(bar, '#', fill);
		memset(bar + fill, '-', 20 - fill);
		bar[20] = '\0';
		n = snprintf(line, sizeof(line), "%3u%% [%s] %s of %s, %s/s, %s left", pct, bar,
		             done, all, rate, eta);
		/* Too wide for the terminal: the bar goes first. */
		if (n >= width)
			n = snprintf(line, sizeof(line), "%3u%% %s of %s, %s/s, %s left", pct, done,
			             all, rate, eta);
	} else {
		n = snprintf(line, sizeof(line), "%s sent, %s/s", done, rate);
	}
	/* A line that wraps could not be redrawn in place. */
	if (n >= width && width - 1 < (int)sizeof(line))
		line[width > 1 ? width - 1 : 0] = '\0';
	/* \r and erase to the end of the line: redrawn in place. */
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->drawn = true;
}

static void *
run(void *arg)
{
	struct progress *p = arg;
	struct timespec until;
	uint64_t sent;
	int r;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += PROGRESS_PERIOD_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
			;
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		r = sfctl_transfer_progress(p->g, PROGRESS_REQUEST_MS, p->offset, &p->transfer,
		                            &sent);
		pthread_mutex_lock(&p->lock);
		/* No control plane: nothing to show, now or later. */
		if (r == -ENOTCONN)
			break;
		if (r == 0 && !p->stop)
			draw(p, sent);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int
progress_start(const struct sfctl_global *g, uint64_t offset, uint64_t total, struct progress **ret)
{
	struct progress *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;
	int r;

	if (!p)
		return -ENOMEM;
	p->g = g;
	p->offset = offset;
	p->total = total;
	/* The first rate is over the time since the start. */
	p->last_ms = mono_ms();
	pthread_mutex_init(&p->lock, NULL);
	/* Periods measured on the monotonic clock: a clock change does not
	 * stall the line. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&p->thread, NULL, run, p);
	if (r != 0) {
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return -r;
	}
	*ret = p;
	return 0;
}

void
progress_stop(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
