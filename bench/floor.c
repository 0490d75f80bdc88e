#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdmsg.h"
#include "floor.h"
#include "wire.h"

/* One sendfile request, with the same checks the daemon makes on its fast
 * path: the destination's flags and type, the source's type and size. */
static void
serve_sendfile(const struct wire_request *req, const int fds[2], struct wire_response *resp)
{
	int type = 0;
	socklen_t len = sizeof(type);
	struct stat st;
	off_t off = (off_t)req->offset;
	uint64_t want, done = 0;

	if (fcntl(fds[0], F_GETFL) < 0 ||
	    getsockopt(fds[0], SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    fstat(fds[1], &st) < 0 || !S_ISREG(st.st_mode)) {
		resp->status = 2; /* INVALID_ARGUMENT */
		return;
	}
	want = req->has_count ? req->count : (st.st_size > off ? (uint64_t)(st.st_size - off) : 0);
	while (done < want) {
		ssize_t n = sendfile(fds[0], fds[1], &off, want - done);

		if (n > 0) {
			done += (uint64_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fds[0], .events = POLLOUT};

			poll(&pfd, 1, -1);
		} else if (n == 0 || errno != EINTR) {
			break;
		}
	}
	(void)lseek(fds[1], off, SEEK_SET);
	resp->bytes_sent = done;
	resp->final_offset = (uint64_t)off;
	resp->method = 1; /* METHOD_SENDFILE */
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Close a batch's descriptors as the daemon does: one close_range() per
 * run of adjacent numbers. */
static void
close_batch(int *fds, size_t n)
{
	qsort(fds, n, sizeof(*fds), cmp_int);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && fds[j] == fds[j - 1] + 1; j++)
			;
		(void)close_range((unsigned)fds[i], (unsigned)fds[j - 1], 0);
	}
}

static void
serve(int sock)
{
	static char in[FDMSG_BATCH][WIRE_MAX_RECORD], out[FDMSG_BATCH][512];

	for (;;) {
		struct fdmsg_record recs[FDMSG_BATCH];
		struct iovec iov[FDMSG_BATCH];
		int fds[FDMSG_BATCH * FDMSG_MAX_FDS];
		size_t nfds = 0, nout = 0;
		bool end = false;
		int n;

		for (int i = 0; i < FDMSG_BATCH; i++)
			recs[i] = (struct fdmsg_record){.buf = in[i], .cap = sizeof(in[i])};
		n = fdmsg_recv_records(sock, recs, FDMSG_BATCH, 0);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct wire_request req;
			struct wire_response resp = {0};
			ssize_t len;

			if (recs[i].len == 0 && recs[i].nfds == 0 && recs[i].error == 0) {
				end = true;
				break;
			}
			memcpy(&fds[nfds], recs[i].fds, recs[i].nfds * sizeof(int));
			nfds += recs[i].nfds;
			if (recs[i].error || wire_request_decode(in[i], recs[i].len, &req) < 0)
				continue;
			resp.id = req.id;
			if (req.op == WIRE_OP_SENDFILE && recs[i].nfds == 2)
				serve_sendfile(&req, recs[i].fds, &resp);
			else if (req.op != WIRE_OP_PING)
				resp.status = 7; /* PROTOCOL */
			len = wire_response_encode(&resp, out[nout], sizeof(out[nout]));
			if (len > 0) {
				iov[nout] = (struct iovec){.iov_base = out[nout],
				                           .iov_len = (size_t)len};
				nout++;
			}
		}
		/* Descriptors go before the replies, as in the daemon. */
		close_batch(fds, nfds);
		if (nout > 0 && fdmsg_send_batch(sock, iov, nout, 0) < 0)
			return;
		if (end)
			return;
	}
}

pid_t
floor_start(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l;
	pid_t pid, parent;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	(void)unlink(path);
	l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 16) < 0) {
		int r = -errno;

		close(l);
		return r;
	}
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		close(l);
		return r;
	}
	if (pid > 0) {
		close(l);
		return pid;
	}
	/* Go with the benchmark, however it ends. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			continue;
		serve(c);
		close(c);
	}
}

void
floor_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
}
