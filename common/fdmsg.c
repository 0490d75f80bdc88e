/*
 * fdmsg.c - record + SCM_RIGHTS helpers shared by the daemon and the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdmsg.h"
#include "macro.h"

ssize_t
fdmsg_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FDMSG_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds > FDMSG_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n;
}

void
fdmsg_close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fds[i] = safe_close(fds[i]);
}

/* Room for more descriptors than we accept, so that an over-full SCM_RIGHTS
 * is seen (and closed) rather than silently truncated by the kernel. */
#define CTL_FDS (FDMSG_MAX_FDS + 14)
union ctlbuf {
	char buf[CMSG_SPACE(sizeof(int) * CTL_FDS)];
	struct cmsghdr align;
};

/*
 * Is our own descriptor table full? The kernel also truncates the control
 * data (MSG_CTRUNC) when it cannot install a passed descriptor, and then the
 * record was not wrong: the receiver was out of room. A probe with
 * F_DUPFD_CLOEXEC tells, and it must run before the descriptors that did
 * arrive are closed, since they may have taken the last free slots.
 */
static bool
table_full(int sock)
{
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

int
fdmsg_judge(int sock, struct msghdr *msg, size_t n, struct fdmsg_record *rec)
{
	int got[CTL_FDS];
	size_t ngot = 0;
	bool bad = false;

	rec->len = 0;
	rec->nfds = 0;
	rec->error = 0;
	/* Take every descriptor the kernel gave us before judging the record,
	 * so that none can leak on a bad one. */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			/* CMSG_NXTHDR() checks the length of every header
			 * but the first: a first one shorter than its header
			 * or longer than the buffer is bad, and only what
			 * lies inside both is taken. */
			size_t room = (size_t)((char *)msg->msg_control + msg->msg_controllen -
			                       (char *)CMSG_DATA(cm));
			size_t len = cm->cmsg_len >= CMSG_LEN(0) ? cm->cmsg_len - CMSG_LEN(0) : 0;
			size_t k;

			if (cm->cmsg_len < CMSG_LEN(0) || len > room) {
				bad = true;
				len = MIN(len, room);
			}
			k = len / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (ngot < ARRAY_SIZE(got))
					got[ngot++] = fd;
				else
					safe_close(fd);
			}
		} else {
			bad = true;
		}
	}
	if (n == 0 && ngot == 0 && !(msg->msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return 0;

	rec->len = MIN(n, rec->cap);
	if (msg->msg_flags & MSG_TRUNC) {
		fdmsg_close_all(got, ngot);
		rec->error = EMSGSIZE;
	} else if ((msg->msg_flags & MSG_CTRUNC) && !bad && ngot <= FDMSG_MAX_FDS &&
	           table_full(sock)) {
		fdmsg_close_all(got, ngot);
		rec->error = EMFILE;
	} else if ((msg->msg_flags & MSG_CTRUNC) || bad || ngot > FDMSG_MAX_FDS) {
		fdmsg_close_all(got, ngot);
		rec->error = EBADMSG;
	} else {
		memcpy(rec->fds, got, ngot * sizeof(int));
		rec->nfds = ngot;
	}
	return 1;
}

int
fdmsg_recv_record(int sock, struct fdmsg_record *rec, int flags)
{
	union ctlbuf ctl;
	struct iovec iov = {.iov_base = rec->buf, .iov_len = rec->cap};
	struct msghdr msg = {
	        .msg_iov = &iov,
	        .msg_iovlen = 1,
	        .msg_control = ctl.buf,
	        .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	do
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return fdmsg_judge(sock, &msg, (size_t)n, rec);
}

int
fdmsg_recv_records(int sock, struct fdmsg_record *recs, size_t n, int flags)
{
	struct mmsghdr mm[FDMSG_BATCH];
	struct iovec iov[FDMSG_BATCH];
	union ctlbuf ctl[FDMSG_BATCH];
	int got;

	if (n > FDMSG_BATCH)
		n = FDMSG_BATCH;
	for (size_t i = 0; i < n; i++) {
		iov[i] = (struct iovec){.iov_base = recs[i].buf, .iov_len = recs[i].cap};
		mm[i] = (struct mmsghdr){.msg_hdr = {
		                                 .msg_iov = &iov[i],
		                                 .msg_iovlen = 1,
		                                 .msg_control = ctl[i].buf,
		                                 .msg_controllen = sizeof(ctl[i].buf),
		                         }};
	}
	do
		got = recvmmsg(sock, mm, (unsigned)n, flags | MSG_CMSG_CLOEXEC | MSG_WAITFORONE,
		               NULL);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	for (int i = 0; i < got; i++) {
		if (fdmsg_judge(sock, &mm[i].msg_hdr, mm[i].msg_len, &recs[i]) == 0) {
			/* End of stream: what came before it still counts; the
			 * caller sees an empty record and stops. Records the
			 * kernel already gave us after it are judged only to
			 * close what they carry. */
			recs[i].len = 0;
			recs[i].nfds = 0;
			recs[i].error = 0;
			for (int j = i + 1; j < got; j++) {
				struct fdmsg_record scratch = {.buf = recs[j].buf,
				                               .cap = recs[j].cap};

				if (fdmsg_judge(sock, &mm[j].msg_hdr, mm[j].msg_len, &scratch) > 0)
					fdmsg_close_all(scratch.fds, scratch.nfds);
			}
			return i + 1;
		}
	}
	return got;
}

int
fdmsg_send_batch(int sock, const struct iovec *records, size_t n, int flags)
{
	struct mmsghdr mm[FDMSG_BATCH];
	int sent;

	if (n > FDMSG_BATCH)
		n = FDMSG_BATCH;
	for (size_t i = 0; i < n; i++)
		mm[i] = (struct mmsghdr){
		        .msg_hdr = {.msg_iov = (struct iovec *)&records[i], .msg_iovlen = 1}};
	do
		sent = sendmmsg(sock, mm, (unsigned)n, flags | MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	return sent;
}

ssize_t
fdmsg_recv(int sock, void *buf, size_t cap, int *fds, size_t *ret_nfds, int flags)
{
	struct fdmsg_record rec = {.buf = buf, .cap = cap};
	int r = fdmsg_recv_record(sock, &rec, flags);

	if (r <= 0)
		return r;
	if (rec.error)
		return -rec.error;
	if (rec.len == 0) {
		/* An empty record cannot be told from EOF by the return value:
		 * do not hand out descriptors with it. */
		fdmsg_close_all(rec.fds, rec.nfds);
		return 0;
	}
	memcpy(fds, rec.fds, rec.nfds * sizeof(int));
	*ret_nfds = rec.nfds;
	return (ssize_t)rec.len;
}
