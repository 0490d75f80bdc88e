/*
 * soak-client - one client process of the fault soak (bench/soak/soak.py).
 *
 *   soak-client SOCKET SECONDS SEED [MAX_IN_FLIGHT]
 *
 * For SECONDS, keeps up to MAX_IN_FLIGHT (default 16) random requests in
 * flight on one libsendfiled connection (the asynchronous API), each to a
 * receiver of its own in this process (a socket pair, or TCP loopback) that
 * behaves in one of these ways:
 *
 *   normal    reads everything, and checks every byte;
 *   reset     reads some bytes, then closes (TCP: with a reset);
 *   stall     reads nothing for a while, then cancels the request (or not),
 *             then reads the rest;
 *   truncate  the source is a fresh file truncated while it is being sent;
 *   invalid   the source is not open for reading: the daemon must refuse it.
 *
 * Sources are opened for each request (their own open file description),
 * positioned at the request's offset, so that afterwards the position tells
 * what the daemon did with it. Destinations are blocking or not at random.
 *
 * Every request must end with exactly one reply whose figures agree with what
 * the receiver got and with the file position, within DEADLINE_MS. When the
 * daemon dies (the connection resets), the requests in flight get no reply:
 * their receivers are read to the end, and the file position is compared with
 * the bytes received, counted apart (death_pos_ok / death_pos_stale). Requests
 * that could not be submitted because the daemon was down are submitted
 * again on a new connection.
 *
 * Output, on stdout: a progress line every 250 ms and a final line, each one
 * JSON object ("progress" or "final"), with the counters below; the final one
 * also has the process's descriptor count at start and at the end.
 * Exit status: 0 when nothing failed, 1 otherwise, 2 for a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sendfiled.h"

#define MAX_SLOTS 64
#define DEADLINE_MS 30000
#define TRUNC_SIZE (512 * 1024)
#define N_FILES 7
#define RECV_BUF (256 * 1024)

enum kind { K_NORMAL, K_RESET, K_STALL, K_TRUNCATE, K_INVALID, N_KINDS };
static const char *const kind_names[N_KINDS] = {"normal", "reset", "stall", "truncate", "invalid"};

enum state {
	S_FREE,
	S_IN_FLIGHT, /* submitted, no reply yet */
	S_DRAINING,  /* the outcome is known (reply, or the daemon died); the
	              * receiver is being read to its end */
};

struct slot {
	enum state state;
	enum kind kind;
	uint64_t id;
	int src, rcv;
	bool tcp, died, replied, rcv_closed, cancel_sent, truncated;
	int file; /* index into files[], or -1 for a truncation file */
	uint64_t offset, count, expect, received;
	uint64_t reset_after;
	uint64_t trunc_to;          /* the truncation file's size once truncated */
	int64_t t_submit, t_action; /* stall end or truncation time */
	struct sfd_result res;
};

static const uint64_t file_sizes[N_FILES] = {0, 1, 1000, 4096, 65536, 300000, 1 << 20};
/* Relative frequencies of the sizes above. */
static const unsigned file_weights[N_FILES] = {2, 3, 20, 40, 20, 10, 5};
static char file_paths[N_FILES][256];
static char tmpdir[200];

static struct slot slots[MAX_SLOTS];
static unsigned max_slots = 16;
static struct sfd_client *client;
static const char *sock_path;
static int tcp_listener = -1;
static uint64_t rng_state;

static struct {
	uint64_t submitted, replied, finished, status[10], kinds[N_KINDS];
	uint64_t bytes_received, cancels_sent, verify_failed, position_failed, lost;
	uint64_t died_in_flight, death_pos_ok, death_pos_ok_sent, death_pos_stale;
	uint64_t death_unverifiable;
	uint64_t submit_retried, reconnects, unknown_replies, unreadable_ok_at_eof;
} n;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static uint64_t
rnd_below(uint64_t n_values)
{
	return n_values ? rnd() % n_values : 0;
}

/* The byte every test file has at @off. */
static unsigned char
pattern(uint64_t off)
{
	return (unsigned char)((off * 131u) ^ (off >> 9) ^ 0x5a);
}

static void
fill_pattern(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(off + i);
}

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
complain(const char *fmt, ...)
{
	static unsigned said;
	va_list ap;

	if (said++ >= 20)
		return;
	fprintf(stderr, "soak-client[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static unsigned
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned k = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			k++;
	closedir(d);
	return k - 1; /* the directory's own descriptor */
}

static int
write_file(int fd, uint64_t size)
{
	static unsigned char buf[65536];

	for (uint64_t off = 0; off < size;) {
		size_t len = size - off < sizeof(buf) ? size - off : sizeof(buf);

		fill_pattern(buf, off, len);
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			return -errno;
		off += len;
	}
	return 0;
}

static void
make_files(void)
{
	for (int i = 0; i < N_FILES; i++) {
		int fd;

		snprintf(file_paths[i], sizeof(file_paths[i]), "%s/f%d", tmpdir, i);
		fd = open(file_paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write_file(fd, file_sizes[i]) < 0) {
			perror("soak-client: test file");
			exit(1);
		}
		close(fd);
	}
}

static int
pick_file(void)
{
	unsigned total = 0, r;

	for (int i = 0; i < N_FILES; i++)
		total += file_weights[i];
	r = (unsigned)rnd_below(total);
	for (int i = 0; i < N_FILES; i++) {
		if (r < file_weights[i])
			return i;
		r -= file_weights[i];
	}
	return N_FILES - 1;
}

/* A connected pair: *ret_w for the daemon, *ret_r for our receiver. */
static int
make_pair(bool tcp, int *ret_w, int *ret_r)
{
	int sv[2];

	if (!tcp) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
	} else {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);

		if (getsockname(tcp_listener, (struct sockaddr *)&sa, &len) < 0)
			return -errno;
		sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sv[0] < 0)
			return -errno;
		if (connect(sv[0], (struct sockaddr *)&sa, len) < 0) {
			int r = -errno;

			close(sv[0]);
			return r;
		}
		sv[1] = accept4(tcp_listener, NULL, NULL, SOCK_CLOEXEC);
		if (sv[1] < 0) {
			int r = -errno;

			close(sv[0]);
			return r;
		}
	}
	*ret_w = sv[0];
	*ret_r = sv[1];
	return 0;
}

static void
close_receiver(struct slot *s, bool reset)
{
	if (s->rcv < 0)
		return;
	if (reset && s->tcp) {
		struct linger l = {.l_onoff = 1, .l_linger = 0};

		setsockopt(s->rcv, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	close(s->rcv);
	s->rcv = -1;
	s->rcv_closed = true;
}

static void
free_slot(struct slot *s)
{
	close_receiver(s, false);
	if (s->src >= 0)
		close(s->src);
	s->src = -1;
	s->state = S_FREE;
}

/* The request's end: check everything that can be checked. */
static void
finish(struct slot *s)
{
	off_t pos = lseek(s->src, 0, SEEK_CUR);
	const struct sfd_result *r = &s->res;
	bool ok = true;

	n.finished++;
	n.bytes_received += s->received;
	if (s->died) {
		/* No reply: the daemon died with the request in flight. Only
		 * a receiver read to its end knows what left. */
		if (s->kind == K_RESET) {
			n.death_unverifiable++;
		} else if ((uint64_t)pos == s->offset + s->received) {
			n.death_pos_ok++;
			if (s->received > 0)
				n.death_pos_ok_sent++;
		} else {
			n.death_pos_stale++;
		}
		free_slot(s);
		return;
	}
	if (r->final_offset != s->offset + r->bytes_sent) {
		complain("id %" PRIu64 ": final_offset %" PRIu64 " for offset %" PRIu64
		         " + %" PRIu64,
		         s->id, r->final_offset, s->offset, r->bytes_sent);
		ok = false;
	}
	/* Positioned at the offset before submitting: untouched (nothing
	 * sent) and offset + bytes_sent are then the same number. */
	if (pos < 0 || (uint64_t)pos != s->offset + r->bytes_sent) {
		complain("id %" PRIu64 " (%s): file position %lld, expected %" PRIu64, s->id,
		         kind_names[s->kind], (long long)pos, s->offset + r->bytes_sent);
		n.position_failed++;
	}
	switch (s->kind) {
	case K_NORMAL:
		ok = ok && r->status == SFD_STATUS_OK && r->bytes_sent == s->expect &&
		     s->received == r->bytes_sent;
		break;
	case K_STALL:
		ok = ok && (r->status == SFD_STATUS_OK || r->status == SFD_STATUS_CANCELLED) &&
		     s->received == r->bytes_sent &&
		     (r->status != SFD_STATUS_OK || r->bytes_sent == s->expect);
		break;
	case K_TRUNCATE:
		ok = ok && r->status == SFD_STATUS_OK && s->received == r->bytes_sent &&
		     r->bytes_sent <= s->expect;
		break;
	case K_RESET:
		ok = ok && (r->status == SFD_STATUS_OK || r->status == SFD_STATUS_PEER_CLOSED) &&
		     s->received <= r->bytes_sent;
		break;
	case K_INVALID:
		/* Known deviation, counted apart: with the offset at or past
		 * the end of a non-empty file and no count, the daemon answers
		 * OK (nothing to send) without looking at the source's access
		 * mode. */
		if (r->status == SFD_STATUS_OK && r->bytes_sent == 0 && s->count == 0 &&
		    s->offset >= file_sizes[s->file]) {
			n.unreadable_ok_at_eof++;
			break;
		}
		ok = ok && r->status == SFD_STATUS_INVALID_ARGUMENT && r->error == EBADF &&
		     r->bytes_sent == 0 && s->received == 0;
		break;
	default:
		break;
	}
	if (!ok) {
		complain("id %" PRIu64 " (%s%s): %s (%s) sent %" PRIu64 ", received %" PRIu64
		         ", expected %" PRIu64,
		         s->id, kind_names[s->kind], s->tcp ? ", tcp" : "",
		         sfd_status_str(r->status), r->message, r->bytes_sent, s->received,
		         s->expect);
		n.verify_failed++;
	}
	free_slot(s);
}

static void
on_completion(struct sfd_client *c, uint64_t id, const struct sfd_result *res, void *userdata)
{
	struct slot *s = userdata;

	(void)c;
	if (!s || s->state != S_IN_FLIGHT || s->id != id) {
		n.unknown_replies++;
		return;
	}
	n.replied++;
	if (res->status >= 0 && res->status < 10)
		n.status[res->status]++;
	s->res = *res;
	s->replied = true;
	s->state = S_DRAINING;
	if (s->rcv_closed)
		finish(s);
}

/* The daemon is gone: the requests in flight will get no reply. */
static void
lose_connection(void)
{
	for (unsigned i = 0; i < max_slots; i++) {
		struct slot *s = &slots[i];

		if (s->state != S_IN_FLIGHT)
			continue;
		n.died_in_flight++;
		s->died = true;
		s->state = S_DRAINING;
		if (s->rcv_closed)
			finish(s);
	}
	sfd_client_free(client);
	client = NULL;
}

static int
reconnect(int64_t until)
{
	while (now_ms() < until) {
		if (sfd_client_open(sock_path, &client) == 0) {
			(void)sfd_client_get_fd(client);
			n.reconnects++;
			return 0;
		}
		usleep(20000);
	}
	return -ETIMEDOUT;
}

static int
open_truncation_file(void)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/t-XXXXXX", tmpdir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (write_file(fd, TRUNC_SIZE) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static void
submit_one(struct slot *s)
{
	unsigned roll = (unsigned)rnd_below(100);
	uint64_t size;
	int w = -1, r;

	memset(s, 0, sizeof(*s));
	s->src = s->rcv = -1;
	s->file = -1;
	s->kind = roll < 70   ? K_NORMAL
	          : roll < 80 ? K_RESET
	          : roll < 90 ? K_STALL
	          : roll < 97 ? K_TRUNCATE
	                      : K_INVALID;
	s->tcp = rnd_below(10) == 0;
	if (s->kind == K_TRUNCATE) {
		s->src = open_truncation_file();
		size = TRUNC_SIZE;
		s->offset = rnd_below(4096);
		s->count = 0;
	} else {
		s->file = s->kind == K_STALL || s->kind == K_RESET ? 5 + (int)rnd_below(2)
		                                                   : pick_file();
		size = file_sizes[s->file];
		s->src = open(file_paths[s->file],
		              (s->kind == K_INVALID ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
		/* Offsets mostly inside the file, sometimes at or past its end;
		 * counts to the end, inside, or past it. */
		s->offset = rnd_below(4) == 0 ? rnd_below(size + 2) : 0;
		switch (rnd_below(3)) {
		case 0:
			s->count = 0;
			break;
		case 1:
			s->count = 1 + rnd_below(size + 1);
			break;
		default:
			s->count = size + 1 + rnd_below(1000);
			break;
		}
	}
	if (s->src < 0) {
		complain("cannot open a source: %s", strerror(s->src == -1 ? errno : -s->src));
		exit(1);
	}
	if (s->kind == K_INVALID)
		s->expect = 0;
	else if (s->offset >= size)
		s->expect = 0;
	else
		s->expect = s->count && s->count < size - s->offset ? s->count : size - s->offset;
	lseek(s->src, (off_t)s->offset, SEEK_SET);
	r = make_pair(s->tcp, &w, &s->rcv);
	if (r < 0) {
		complain("cannot make a destination: %s", strerror(-r));
		exit(1);
	}
	if (rnd_below(2))
		fcntl(w, F_SETFL, fcntl(w, F_GETFL) | O_NONBLOCK);
	s->t_submit = now_ms();
	if (s->kind == K_STALL)
		s->t_action = s->t_submit + 20 + (int64_t)rnd_below(280);
	else if (s->kind == K_TRUNCATE)
		s->t_action = s->t_submit + 5 + (int64_t)rnd_below(45);
	if (s->kind == K_RESET)
		s->reset_after = rnd_below(s->expect + 1);

	for (;;) {
		if (!client && reconnect(s->t_submit + DEADLINE_MS) < 0) {
			complain("cannot reach the daemon at %s", sock_path);
			n.lost++;
			close(w);
			free_slot(s);
			return;
		}
		r = sfd_client_submit(client, w, s->src, s->offset, s->count, 0, s, &s->id);
		if (r == 0)
			break;
		if (r != -EPIPE && r != -ECONNRESET) {
			complain("sfd_client_submit: %s", strerror(-r));
			exit(1);
		}
		/* Nothing was sent: the daemon is down. Submit again on a new
		 * connection (the listening socket outlives the daemon). */
		n.submit_retried++;
		lose_connection();
	}
	/* The daemon has its own duplicate: ours would keep the receiver
	 * from seeing the end. */
	close(w);
	s->state = S_IN_FLIGHT;
	n.submitted++;
	n.kinds[s->kind]++;
}

/* Read what is there; on the end or an error, the receiver is done. */
static void
read_receiver(struct slot *s)
{
	static unsigned char buf[RECV_BUF], want[RECV_BUF];

	for (;;) {
		size_t room = sizeof(buf);
		ssize_t k;

		if (s->kind == K_RESET && s->reset_after - s->received < room)
			room = s->reset_after - s->received;
		if (room == 0) {
			close_receiver(s, true);
			break;
		}
		k = recv(s->rcv, buf, room, MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0) {
			close_receiver(s, false);
			break;
		}
		/* Zero-copy sends pages, not a snapshot: bytes already in the
		 * socket when the file is truncated may change (the kernel
		 * zeroes the tail of the page at the new end). Only bytes below
		 * the new size are certain. */
		size_t check = (size_t)k;
		uint64_t at = s->offset + s->received;

		if (s->truncated)
			check = at >= s->trunc_to          ? 0
			        : s->trunc_to - at < check ? (size_t)(s->trunc_to - at)
			                                   : check;
		fill_pattern(want, at, check);
		if (memcmp(buf, want, check) != 0) {
			complain("id %" PRIu64 " (%s): wrong bytes at offset %" PRIu64, s->id,
			         kind_names[s->kind], s->offset + s->received);
			n.verify_failed++;
		}
		s->received += (uint64_t)k;
	}
	if (s->state == S_DRAINING)
		finish(s);
}

static void
act(struct slot *s, int64_t t)
{
	if (!s->t_action || t < s->t_action)
		return;
	s->t_action = 0;
	if (s->kind == K_TRUNCATE && !s->truncated) {
		s->truncated = true;
		s->trunc_to = rnd_below(TRUNC_SIZE);
		if (ftruncate(s->src, (off_t)s->trunc_to) < 0)
			complain("ftruncate: %s", strerror(errno));
	} else if (s->kind == K_STALL && s->state == S_IN_FLIGHT && client && rnd_below(2)) {
		if (sfd_client_cancel(client, s->id) == 0)
			n.cancels_sent++;
	}
}

static void
report(const char *what, unsigned fd_start, unsigned fd_end)
{
	printf("{\"%s\":true,\"pid\":%d,\"submitted\":%" PRIu64 ",\"replied\":%" PRIu64
	       ",\"finished\":%" PRIu64,
	       what, (int)getpid(), n.submitted, n.replied, n.finished);
	printf(",\"status\":[");
	for (int i = 0; i < 10; i++)
		printf("%s%" PRIu64, i ? "," : "", n.status[i]);
	printf("],\"kinds\":{");
	for (int i = 0; i < N_KINDS; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", kind_names[i], n.kinds[i]);
	printf("},\"bytes_received\":%" PRIu64 ",\"cancels_sent\":%" PRIu64
	       ",\"verify_failed\":%" PRIu64 ",\"position_failed\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"died_in_flight\":%" PRIu64 ",\"death_pos_ok\":%" PRIu64
	       ",\"death_pos_ok_sent\":%" PRIu64 ",\"death_pos_stale\":%" PRIu64
	       ",\"death_unverifiable\":%" PRIu64 ",\"submit_retried\":%" PRIu64
	       ",\"reconnects\":%" PRIu64 ",\"unknown_replies\":%" PRIu64
	       ",\"unreadable_ok_at_eof\":%" PRIu64,
	       n.bytes_received, n.cancels_sent, n.verify_failed, n.position_failed, n.lost,
	       n.died_in_flight, n.death_pos_ok, n.death_pos_ok_sent, n.death_pos_stale,
	       n.death_unverifiable, n.submit_retried, n.reconnects, n.unknown_replies,
	       n.unreadable_ok_at_eof);
	if (strcmp(what, "final") == 0)
		printf(",\"fd_start\":%u,\"fd_end\":%u", fd_start, fd_end);
	printf("}\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct pollfd pfd[MAX_SLOTS + 1];
	int64_t t, end, next_report;
	unsigned fd_start, fd_end, busy;
	const char *base;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: soak-client SOCKET SECONDS SEED [MAX_IN_FLIGHT]\n");
		return 2;
	}
	sock_path = argv[1];
	rng_state = strtoull(argv[3], NULL, 10) * 0x9e3779b97f4a7c15ull + 1;
	if (argc == 5)
		max_slots = (unsigned)atoi(argv[4]);
	if (max_slots < 1 || max_slots > MAX_SLOTS) {
		fprintf(stderr, "soak-client: MAX_IN_FLIGHT must be 1 to %d\n", MAX_SLOTS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	fd_start = count_fds();

	base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/soak-client-%d", base ? base : "/tmp", (int)getpid());
	if (mkdir(tmpdir, 0700) < 0) {
		perror("soak-client: mkdir");
		return 1;
	}
	make_files();
	tcp_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (tcp_listener < 0 || bind(tcp_listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(tcp_listener, 64) < 0) {
		perror("soak-client: TCP listener");
		return 1;
	}
	for (unsigned i = 0; i < MAX_SLOTS; i++)
		slots[i].src = slots[i].rcv = -1;

	t = now_ms();
	end = t + (int64_t)(atof(argv[2]) * 1000);
	next_report = t + 250;
	for (;;) {
		int64_t wake = t + 250;
		nfds_t k = 0;
		int r;

		busy = 0;
		for (unsigned i = 0; i < max_slots; i++) {
			struct slot *s = &slots[i];

			if (s->state == S_FREE && t < end) {
				submit_one(s);
				t = now_ms();
			}
			if (s->state == S_FREE)
				continue;
			busy++;
			act(s, t);
			if (s->state == S_IN_FLIGHT && t - s->t_submit > DEADLINE_MS) {
				/* No reply in time: that is the failure this
				 * soak looks for. Forget the request. */
				complain("id %" PRIu64 " (%s): no reply after %d ms", s->id,
				         kind_names[s->kind], DEADLINE_MS);
				n.lost++;
				n.finished++;
				free_slot(s);
				continue;
			}
			if (s->state == S_DRAINING && t - s->t_submit > 2 * DEADLINE_MS) {
				/* The outcome is known but the daemon still
				 * holds the destination open. */
				complain("id %" PRIu64 " (%s): the receiver never saw the end",
				         s->id, kind_names[s->kind]);
				n.verify_failed++;
				n.finished++;
				free_slot(s);
				continue;
			}
			if (s->t_action && s->t_action < wake)
				wake = s->t_action;
			if (s->t_submit + DEADLINE_MS < wake)
				wake = s->t_submit + DEADLINE_MS;
			/* A stalled or not yet truncated receiver is not read. */
			if (s->rcv >= 0 && !s->t_action) {
				pfd[k].fd = s->rcv;
				pfd[k].events = POLLIN;
				k++;
			}
		}
		if (t >= end && busy == 0)
			break;
		if (client) {
			pfd[k].fd = sfd_client_get_fd(client);
			pfd[k].events = POLLIN;
			k++;
		}
		r = poll(pfd, k, wake > t ? (int)(wake - t) : 0);
		if (r < 0 && errno != EINTR) {
			perror("soak-client: poll");
			return 1;
		}
		for (unsigned i = 0; i < max_slots; i++) {
			struct slot *s = &slots[i];

			if (s->state != S_FREE && s->rcv >= 0 && !s->t_action)
				read_receiver(s);
		}
		if (client) {
			r = sfd_client_dispatch(client, on_completion);
			if (r < 0) {
				/* The daemon died: with requests in flight, their
				 * outcome is unknown (the positions tell). */
				if (r != -SFD_EOUTCOME_UNKNOWN && r != -ECONNRESET && r != -EPIPE)
					complain("sfd_client_dispatch: %s", strerror(-r));
				lose_connection();
			}
		}
		t = now_ms();
		if (t >= next_report) {
			report("progress", 0, 0);
			next_report = t + 250;
		}
	}
	sfd_client_free(client);
	close(tcp_listener);
	for (int i = 0; i < N_FILES; i++)
		unlink(file_paths[i]);
	rmdir(tmpdir);
	fd_end = count_fds();
	report("final", fd_start, fd_end);
	return n.verify_failed || n.position_failed || n.lost || n.unknown_replies ||
	                       fd_end != fd_start
	               ? 1
	               : 0;
}
