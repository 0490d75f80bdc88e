/*
 * fuzz-fdmsg.c - libFuzzer target for fdmsg_judge(), what the daemon and the
 * client library do with a message recvmsg(2) filled: any control layout a
 * peer (or a kernel quirk) could produce, with real descriptors in it.
 *
 * The input describes a message: its data length and flags (MSG_TRUNC,
 * MSG_CTRUNC), then a chain of control messages (SCM_RIGHTS with 0..N
 * descriptors, SCM_CREDENTIALS, unknown types and levels) whose cmsg_len may
 * be exact, short, long or absurd, in a buffer that may be cut short. Every
 * descriptor slot holds a real descriptor (a dup of /dev/null), so that
 * closing is tested as well as parsing.
 *
 * Checked against a model: the outcome (end of stream, a record, EMSGSIZE or
 * EBADMSG) and its length; a good record hands over exactly the descriptors
 * the kernel would have given, in order; every other descriptor the message
 * carried is closed; descriptors outside what the message carried are left
 * alone; and the process has as many descriptors open after each input as
 * before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdmsg.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for about a hundred descriptors: far past what fdmsg keeps or drops. */
#define CTL_MAX 512
#define DATA_CAP 64

struct input {
	const uint8_t *p;
	size_t left;
};

static uint8_t
take(struct input *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

static int
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool
is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Every descriptor placed in the control buffer, and whether the message
 * hands it over (lies inside a control message fdmsg must take). */
struct placed {
	int fd[CTL_MAX / sizeof(int)];
	size_t off[CTL_MAX / sizeof(int)];
	bool given[CTL_MAX / sizeof(int)];
	size_t n;
};

/* The descriptor every placed one is a dup of: opened once, kept. */
static int devnull = -1;

static void
place_fds(uint8_t *ctl, size_t from, size_t to, struct placed *pl)
{
	for (size_t off = from; off + sizeof(int) <= to; off += sizeof(int)) {
		int fd = fcntl(devnull, F_DUPFD_CLOEXEC, 0);

		if (fd < 0)
			abort();
		memcpy(ctl + off, &fd, sizeof(int));
		pl->fd[pl->n] = fd;
		pl->off[pl->n] = off;
		pl->given[pl->n] = false;
		pl->n++;
	}
}

/* Lay out the chain of control messages the input describes in @ctl. Return:
 * the bytes used. */
static size_t
build_control(struct input *in, uint8_t *ctl, struct placed *pl)
{
	size_t pos = 0;

	while (in->left >= 3 && pos + sizeof(struct cmsghdr) <= CTL_MAX) {
		uint8_t kind = take(in), slots = take(in), mode = take(in);
		struct cmsghdr cm;
		size_t natural, len, end;
		bool rights = false;

		switch (kind % 6) {
		case 0:
		case 1:
		case 2:
			cm.cmsg_level = SOL_SOCKET;
			cm.cmsg_type = SCM_RIGHTS;
			natural = CMSG_LEN(sizeof(int) * (slots % 24));
			rights = true;
			break;
		case 3:
			cm.cmsg_level = SOL_SOCKET;
			cm.cmsg_type = SCM_CREDENTIALS;
			natural = CMSG_LEN(sizeof(struct ucred));
			break;
		case 4:
			cm.cmsg_level = SOL_SOCKET;
			cm.cmsg_type = slots;
			natural = CMSG_LEN(slots % 32);
			rights = cm.cmsg_type == SCM_RIGHTS;
			break;
		default:
			/* Descriptors at the wrong level are not SCM_RIGHTS. */
			cm.cmsg_level = SOL_SOCKET + 1 + slots % 64;
			cm.cmsg_type = SCM_RIGHTS;
			natural = CMSG_LEN(sizeof(int) * (slots % 8));
			rights = true;
			break;
		}
		if (mode < 128)
			len = natural;
		else if (mode < 192)
			len = natural > (mode & 63u) ? natural - (mode & 63u) : 0;
		else if (mode < 255)
			len = natural + (mode & 63u);
		else
			len = SIZE_MAX / 2;
		cm.cmsg_len = len;
		memcpy(ctl + pos, &cm, sizeof(cm));
		/* The data: descriptors for SCM_RIGHTS (at any level), zeros
		 * else, as far as the message claims to reach. */
		end = len > CTL_MAX - pos ? CTL_MAX : pos + len;
		if (rights && end > pos + CMSG_LEN(0))
			place_fds(ctl, pos + CMSG_LEN(0), end, pl);
		if (len < sizeof(struct cmsghdr) || len > CTL_MAX - pos)
			return end > pos + sizeof(cm) ? end : pos + sizeof(cm);
		pos += CMSG_ALIGN(len);
		if (pos > CTL_MAX)
			return CTL_MAX;
	}
	return pos;
}

/* What fdmsg_judge() must make of @msg: walk it with the same macros and
 * mark the descriptors it must take. Return: true when every control
 * message is a well-formed SCM_RIGHTS. */
static bool
model(struct msghdr *msg, struct placed *pl, size_t *ret_ngiven)
{
	const uint8_t *base = msg->msg_control;
	const uint8_t *limit;
	size_t ngiven = 0;
	bool good = true;

	*ret_ngiven = 0;
	if (!base)
		return true;
	limit = base + msg->msg_controllen;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		const uint8_t *data = CMSG_DATA(cm);
		size_t room = (size_t)(limit - data), len;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			good = false;
			continue;
		}
		if (cm->cmsg_len < CMSG_LEN(0)) {
			good = false;
			continue;
		}
		len = cm->cmsg_len - CMSG_LEN(0);
		if (len > room) {
			good = false;
			len = room;
		}
		for (size_t i = 0; i < pl->n; i++) {
			size_t off = pl->off[i] - (size_t)(data - base);

			if (pl->off[i] >= (size_t)(data - base) && off + sizeof(int) <= len) {
				pl->given[i] = true;
				ngiven++;
			}
		}
	}
	*ret_ngiven = ngiven;
	return good;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {.p = data, .left = size};
	union {
		uint8_t buf[CTL_MAX];
		struct cmsghdr align;
	} ctl;
	uint8_t recbuf[DATA_CAP];
	struct fdmsg_record rec = {.buf = recbuf, .cap = DATA_CAP};
	struct msghdr msg = {0};
	struct placed pl = {.n = 0};
	uint8_t head, cut;
	size_t n, used, ngiven, k = 0;
	void *exact = NULL;
	int before, r;
	bool good;

	if (devnull < 0)
		devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		abort();
	before = count_open_fds();
	head = take(&in);
	n = take(&in) % (DATA_CAP + 16);
	cut = take(&in);
	if (head & 1)
		msg.msg_flags |= MSG_TRUNC;
	if (head & 2)
		msg.msg_flags |= MSG_CTRUNC;
	memset(&ctl, 0, sizeof(ctl));
	used = build_control(&in, ctl.buf, &pl);
	/* Cut the buffer short, as MSG_CTRUNC does, mid-header or mid-data. */
	if (cut >= 192)
		used -= MIN(used, (size_t)(cut & 63u));
	if (used > 0) {
		/* Exactly the bytes claimed, so that ASan sees an overread. */
		exact = malloc(used);
		if (!exact)
			abort();
		memcpy(exact, ctl.buf, used);
		msg.msg_control = exact;
		msg.msg_controllen = used;
	}
	/* Descriptors past the cut never reached the message: the model
	 * leaves them to the harness. */
	good = model(&msg, &pl, &ngiven);

	/* No socket: the table is never taken for full, so a truncation is
	 * always a bad record (EBADMSG), as the model says. */
	r = fdmsg_judge(-1, &msg, n, &rec);

	if (r == 0) {
		if (n != 0 || ngiven != 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
			abort();
		if (rec.len != 0 || rec.nfds != 0 || rec.error != 0)
			abort();
	} else if (r == 1) {
		if (n == 0 && ngiven == 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
			abort();
		if (rec.len != MIN(n, (size_t)DATA_CAP))
			abort();
		if (msg.msg_flags & MSG_TRUNC) {
			if (rec.error != EMSGSIZE || rec.nfds != 0)
				abort();
		} else if ((msg.msg_flags & MSG_CTRUNC) || !good || ngiven > FDMSG_MAX_FDS) {
			if (rec.error != EBADMSG || rec.nfds != 0)
				abort();
		} else {
			if (rec.error != 0 || rec.nfds != ngiven)
				abort();
			/* Handed over in the order they came, each still open. */
			for (size_t i = 0; i < pl.n; i++) {
				if (!pl.given[i])
					continue;
				if (k >= rec.nfds || rec.fds[k] != pl.fd[i] || !is_open(pl.fd[i]))
					abort();
				close(rec.fds[k++]);
			}
		}
	} else {
		abort();
	}
	/* What the message carried is closed now; nothing else was touched. */
	for (size_t i = 0; i < pl.n; i++) {
		if (pl.given[i]) {
			if (is_open(pl.fd[i]))
				abort();
		} else {
			if (!is_open(pl.fd[i]))
				abort();
			close(pl.fd[i]);
		}
	}
	free(exact);
	if (count_open_fds() != before)
		abort();
	return 0;
}
