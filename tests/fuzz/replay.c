/*
 * replay.c - run a libFuzzer target over its corpus without libFuzzer, so
 * that every build (any compiler, sanitizers or valgrind if configured)
 * checks the seeds and every crasher ever added to the corpus.
 *
 * Usage: replay-<target> FILE|DIR...  Each file, and each regular file in a
 * directory (sorted by name), is passed to LLVMFuzzerTestOneInput() once. A
 * crash or abort in the target fails the test; so does an empty corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed one file. Its bytes are copied to a buffer of exactly their size so
 * that an overread by the target lands outside it (for ASan, valgrind). */
static int
replay_file(int dirfd, const char *name, const char *shown)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s\n", shown, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n <= 0) {
			fprintf(stderr, "%s: short read\n", shown);
			free(buf);
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	close(fd);
	/* Name the input first: if the target crashes, the log says which. */
	fprintf(stderr, "%s (%zu bytes)\n", shown, off);
	LLVMFuzzerTestOneInput(buf, off);
	free(buf);
	return 0;
}

static int
not_hidden(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

static int
replay_dir(const char *path, unsigned *count)
{
	struct dirent **names;
	int n, dfd, r = 0;

	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	n = scandir(path, &names, not_hidden, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		close(dfd);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;
		char shown[4096];

		snprintf(shown, sizeof(shown), "%s/%s", path, names[i]->d_name);
		if (r == 0 && fstatat(dfd, names[i]->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
			r = replay_file(dfd, names[i]->d_name, shown);
			if (r == 0)
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	close(dfd);
	return r;
}

int
main(int argc, char **argv)
{
	unsigned count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			r = replay_dir(argv[i], &count);
		} else {
			r = replay_file(AT_FDCWD, argv[i], argv[i]);
			if (r == 0)
				count++;
		}
		if (r < 0)
			return 1;
	}
	printf("replayed %u inputs\n", count);
	return count > 0 ? 0 : 1;
}
