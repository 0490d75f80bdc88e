/*
 * hello-sendfiled.c - a third-party program built against an installed
 * libsendfiled with `pkg-config --cflags --libs sendfiled`: it sends a small
 * file through the daemon at argv[1] to one end of a socket pair and checks
 * the bytes, the reply and the file position.
 * Exit status: 0 on success, 1 on any mismatch.
 */
#define _GNU_SOURCE /* mkostemp() */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sendfiled.h>

#define DATA_SIZE 65536

static int
fail(const char *what, int err)
{
	fprintf(stderr, "hello-sendfiled: %s: %s\n", what, strerror(err));
	return 1;
}

int
main(int argc, char **argv)
{
	static char data[DATA_SIZE], got[DATA_SIZE];
	char path[] = "/tmp/hello-sendfiled-XXXXXX";
	struct sfd_client *c;
	struct sfd_result res;
	size_t have = 0;
	int sv[2], file, r;

	if (argc != 2) {
		fprintf(stderr, "usage: hello-sendfiled SOCKET\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + 3);
	file = mkostemp(path, O_CLOEXEC);
	if (file < 0)
		return fail("mkostemp", errno);
	unlink(path);
	if (write(file, data, sizeof(data)) != (ssize_t)sizeof(data))
		return fail("write", errno);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail("socketpair", errno);

	r = sfd_client_open(argv[1], &c);
	if (r < 0)
		return fail("sfd_client_open", -r);
	/* Offset 100, to the end of the file. */
	r = sfd_client_sendfile(c, sv[0], file, 100, 0, 0, 10000, &res);
	if (r < 0)
		return fail("sfd_client_sendfile", -r);
	if (res.status != SFD_STATUS_OK || res.bytes_sent != DATA_SIZE - 100 ||
	    res.final_offset != DATA_SIZE) {
		fprintf(stderr, "hello-sendfiled: %s (%s), %llu bytes, final offset %llu\n",
		        sfd_status_str(res.status), res.message, (unsigned long long)res.bytes_sent,
		        (unsigned long long)res.final_offset);
		return 1;
	}
	while (have < DATA_SIZE - 100) {
		ssize_t n = read(sv[1], got + have, sizeof(got) - have);

		if (n <= 0)
			return fail("read", n < 0 ? errno : EPIPE);
		have += (size_t)n;
	}
	if (memcmp(got, data + 100, DATA_SIZE - 100) != 0) {
		fprintf(stderr, "hello-sendfiled: the bytes received differ\n");
		return 1;
	}
	if (lseek(file, 0, SEEK_CUR) != DATA_SIZE) {
		fprintf(stderr, "hello-sendfiled: file position %lld, expected %d\n",
		        (long long)lseek(file, 0, SEEK_CUR), DATA_SIZE);
		return 1;
	}
	sfd_client_free(c);
	close(sv[0]);
	close(sv[1]);
	close(file);
	printf("sent %llu bytes with %s through %s\n", (unsigned long long)res.bytes_sent,
	       sfd_method_str(res.method), argv[1]);
	return 0;
}
