/*
 * sockpath - where the daemon's sockets live by default.
 */
#ifndef SFD_SOCKPATH_H
#define SFD_SOCKPATH_H

#include <stddef.h>
#include <sys/un.h>

/* The room for a socket's path, terminating NUL included (sun_path). */
#define SOCKPATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/*
 * sockpath_default() - $SENDFILED_SOCKET, else
 * $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock, else /run/sendfiled/sendfiled.sock.
 * Return: length written to @buf, or -ENAMETOOLONG.
 */
int sockpath_default(char *buf, size_t size);

/*
 * sockpath_client_default() - where a client looks: $SENDFILED_SOCKET, else
 * $XDG_RUNTIME_DIR/sendfiled/sendfiled.sock if that exists (a per-user
 * daemon), else /run/sendfiled/sendfiled.sock (the system's).
 * Return: length written to @buf, or -ENAMETOOLONG.
 */
int sockpath_client_default(char *buf, size_t size);

/*
 * sockpath_sibling() - @name in the directory of @path ("control.sock" beside
 * the data socket). Return: length, or -ENAMETOOLONG.
 */
int sockpath_sibling(const char *path, const char *name, char *buf, size_t size);

/* The data socket's default name, and what its name usually ends in. */
#define SOCKPATH_DEFAULT_NAME "sendfiled.sock"
#define SOCKPATH_SUFFIX ".sock"

/* The names of the control-plane sockets beside the data socket. */
#define SOCKPATH_CONTROL "control.sock"
#define SOCKPATH_EVENTS "events.sock"

/*
 * sockpath_endpoint() - where a control-plane socket is, the one place this
 * rule lives: @given when set (non-NULL and not ""), else derived from the
 * data socket @data_path, in its directory, so that two daemons whose data
 * sockets share a directory never share a control plane: NAME.sock (or NAME)
 * gives NAME.@name ("/run/x/a.sock" -> "/run/x/a.control.sock"), except the
 * default name, sendfiled.sock, which gives @name itself
 * ("/run/sendfiled/control.sock").
 * Return: length written to @buf; -ENAMETOOLONG; -EDESTADDRREQ when nothing
 * is given and the data socket has no path to put it beside.
 */
int sockpath_endpoint(const char *given, const char *data_path, const char *name, char *buf,
                      size_t size);

#endif
