/* Small-request driver for syscall counting: N requests of 4 KiB.
 * own: each request opens its own description; shared: 64 in flight from one fd. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sendfiled.h"

static unsigned done;
static void
on_done(struct sfd_client *c, uint64_t id, const struct sfd_result *r, void *u)
{
	(void)c;
	(void)id;
	(void)u;
	if (r->status || r->bytes_sent != 4096) {
		fprintf(stderr, "bad %d\n", r->status);
		exit(1);
	}
	done++;
}

int
main(int argc, char **argv)
{
	const char *sock = argv[1], *file = argv[2];
	int shared = strcmp(argv[3], "shared") == 0, n = atoi(argv[4]);
	struct sfd_client *c;
	char buf[8192];
	if (sfd_client_open(sock, &c) < 0)
		return 1;
	if (!shared) {
		for (int i = 0; i < n; i++) {
			int sp[2], src = open(file, O_RDONLY | O_CLOEXEC);
			struct sfd_result r;
			socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp);
			if (sfd_client_sendfile(c, sp[0], src, 0, 4096, 0, -1, &r) < 0 ||
			    r.bytes_sent != 4096)
				return 2;
			if (read(sp[1], buf, sizeof(buf)) != 4096)
				return 3;
			close(sp[0]);
			close(sp[1]);
			close(src);
		}
	} else {
		int src = open(file, O_RDONLY | O_CLOEXEC);
		for (int b = 0; b < n / 64; b++) {
			int sp[64][2];
			uint64_t id;
			done = 0;
			for (int i = 0; i < 64; i++) {
				socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
				           sp[i]);
				if (sfd_client_submit(c, sp[i][0], src, (uint64_t)i * 4096, 4096, 0,
				                      NULL, &id) < 0)
					return 4;
			}
			while (done < 64) {
				struct pollfd p = {.fd = sfd_client_get_fd(c), .events = POLLIN};
				poll(&p, 1, -1);
				if (sfd_client_dispatch(c, on_done) < 0)
					return 5;
			}
			for (int i = 0; i < 64; i++) {
				if (read(sp[i][1], buf, sizeof(buf)) != 4096)
					return 6;
				close(sp[i][0]);
				close(sp[i][1]);
			}
		}
		close(src);
	}
	sfd_client_free(c);
	return 0;
}
