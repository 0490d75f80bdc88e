/*
 * fdmsg - one record plus descriptors over an AF_UNIX SOCK_SEQPACKET socket.
 *
 * A record is one message; its descriptors travel in one SCM_RIGHTS control
 * message attached to it. Received descriptors are close-on-exec.
 */
#ifndef SFD_FDMSG_H
#define SFD_FDMSG_H

#include <stddef.h>
#include <sys/types.h>

/* Most descriptors one record may carry: a sendfile request has exactly two. */
#define FDMSG_MAX_FDS 2

/*
 * fdmsg_send() - send @len bytes of @buf and @nfds descriptors as one record.
 * Descriptors are borrowed. @flags are added to MSG_NOSIGNAL (MSG_DONTWAIT...).
 * Return: bytes sent (== @len for SEQPACKET) or a negative errno.
 */
ssize_t fdmsg_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds, int flags);

/*
 * fdmsg_recv() - receive one record of at most @cap bytes.
 * Descriptors received are owned by the caller from this point: they land in
 * @fds (room for FDMSG_MAX_FDS), their number in *ret_nfds.
 * On a truncated record (data or control: MSG_TRUNC/MSG_CTRUNC), on more than
 * FDMSG_MAX_FDS descriptors, or on a foreign control message, every received
 * descriptor is closed and -EMSGSIZE (data) or -EBADMSG (control) returned;
 * -EMFILE when the control data was cut because our own descriptor table is
 * full.
 * Return: the record's length (0 means the peer closed), or a negative errno
 * (-EAGAIN with MSG_DONTWAIT).
 */
ssize_t fdmsg_recv(int sock, void *buf, size_t cap, int *fds, size_t *ret_nfds, int flags);

/* One received record, for callers that answer bad records rather than drop them. */
struct fdmsg_record {
	void *buf;  /* in: where the data goes */
	size_t cap; /* in: its size */
	size_t len; /* out: bytes of data kept (at most cap) */
	int fds[FDMSG_MAX_FDS];
	size_t nfds;
	int error; /* out: 0; EMSGSIZE (data truncated), EBADMSG (bad control
	            * data) or EMFILE (our descriptor table was full, so the
	            * kernel could not give us the record's descriptors): the
	            * record's descriptors are already closed */
};

/*
 * fdmsg_recv_record() - like fdmsg_recv(), but a bad record still yields its
 * (possibly truncated) data, with rec->error set and no descriptors.
 * Return: 1 for a record, 0 when the peer closed (or sent an empty record),
 * or a negative errno.
 */
int fdmsg_recv_record(int sock, struct fdmsg_record *rec, int flags);

/*
 * fdmsg_judge() - what fdmsg_recv_record() does with a message recvmsg(2)
 * filled: @n bytes of data (already in rec->buf), @msg's control data and
 * flags. Takes every SCM_RIGHTS descriptor in @msg: those of a good record
 * land in rec->fds, all others are closed. @sock, the socket it came from, is
 * only used to ask whether our own descriptor table is full when the control
 * data was truncated (then rec->error is EMFILE, not EBADMSG); -1 never finds
 * it full. Pure apart from close(2) and that probe, so that a fuzzer can feed
 * it any control layout.
 * Return: 1 for a record (rec->error may be set), 0 for end of stream.
 */
struct msghdr;
int fdmsg_judge(int sock, struct msghdr *msg, size_t n, struct fdmsg_record *rec);

/* Most records one batch call moves. */
#define FDMSG_BATCH 32

/*
 * fdmsg_recv_records() - receive up to @n records (at most FDMSG_BATCH) with
 * one recvmmsg(2); each is judged as by fdmsg_recv_record(). A record with
 * len 0, no descriptors and no error marks the end of the stream.
 * Return: the number of records filled (>= 1), or a negative errno.
 */
int fdmsg_recv_records(int sock, struct fdmsg_record *recs, size_t n, int flags);

/*
 * fdmsg_send_batch() - send up to @n records (at most FDMSG_BATCH), one per
 * iovec, with one sendmmsg(2); no descriptors. @flags are added to
 * MSG_NOSIGNAL. Return: the number sent (>= 1), or a negative errno.
 */
struct iovec;
int fdmsg_send_batch(int sock, const struct iovec *records, size_t n, int flags);

/* fdmsg_close_all() - close @n descriptors of @fds and set them to -1. */
void fdmsg_close_all(int *fds, size_t n);

#endif
