#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sockpath.h"

static int
fmt(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

int
sockpath_default(char *buf, size_t size)
{
	const char *s = getenv("SENDFILED_SOCKET");

	if (s && *s)
		return fmt(buf, size, s, "");
	s = getenv("XDG_RUNTIME_DIR");
	if (s && *s)
		return fmt(buf, size, s, "/sendfiled/" SOCKPATH_DEFAULT_NAME);
	return fmt(buf, size, "/run/sendfiled/", SOCKPATH_DEFAULT_NAME);
}

int
sockpath_sibling(const char *path, const char *name, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) : 1;
	int n;

	if (!slash)
		path = ".";
	n = snprintf(buf, size, "%.*s/%s", dirlen, path, name);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

int
sockpath_client_default(char *buf, size_t size)
{
	const char *s = getenv("SENDFILED_SOCKET");
	int n;

	if (s && *s)
		return fmt(buf, size, s, "");
	s = getenv("XDG_RUNTIME_DIR");
	if (s && *s) {
		n = fmt(buf, size, s, "/sendfiled/sendfiled.sock");
		/* A per-user daemon if there is one, else the system's. */
		if (n >= 0 && access(buf, F_OK) == 0)
			return n;
	}
	return fmt(buf, size, "/run/sendfiled", "/sendfiled.sock");
}

int
sockpath_endpoint(const char *given, const char *data_path, const char *name, char *buf,
                  size_t size)
{
	const char *slash, *base;
	size_t stem;
	int n;

	if (given && *given) {
		n = snprintf(buf, size, "%s", given);
		return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
	}
	if (!data_path || !*data_path)
		return -EDESTADDRREQ;
	slash = strrchr(data_path, '/');
	base = slash ? slash + 1 : data_path;
	/* The default name keeps the names the control plane always had, so
	 * existing units, scripts and habits still find it; a directory holds
	 * one sendfiled.sock, so these cannot be shared either. */
	if (!*base || strcmp(base, SOCKPATH_DEFAULT_NAME) == 0)
		return sockpath_sibling(data_path, name, buf, size);
	stem = strlen(base);
	if (stem > strlen(SOCKPATH_SUFFIX) &&
	    strcmp(base + stem - strlen(SOCKPATH_SUFFIX), SOCKPATH_SUFFIX) == 0)
		stem -= strlen(SOCKPATH_SUFFIX);
	n = snprintf(buf, size, "%.*s%.*s.%s", (int)(base - data_path), data_path, (int)stem, base,
	             name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}
