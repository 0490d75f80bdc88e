/*
 * fuzz-conf.c - libFuzzer target for the configuration file parser: any
 * text goes through conf_parse(), as conf_load() reads a file (here from
 * memory, with fmemopen()).
 *
 * Beyond "no crash, no leak": the count returned is the number of errors
 * reported, each with the file's name and a line; and what parsed survives
 * conf_print() and a second parse with no error and the same settings (the
 * printed configuration is documented to be a valid file itself).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_error(void *userdata, const char *msg)
{
	unsigned *n = userdata;

	if (strncmp(msg, "fuzz.conf:", 10) != 0 || !msg[10])
		abort();
	(*n)++;
}

static void
on_error_reparse(void *userdata, const char *msg)
{
	(void)userdata;
	fprintf(stderr, "printed configuration does not parse: %s\n", msg);
	abort();
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
same_server_config(const struct server_config *a, const struct server_config *b)
{
	return strcmp(a->socket_path, b->socket_path) == 0 && a->socket_mode == b->socket_mode &&
	       a->max_connections == b->max_connections &&
	       a->max_in_flight_per_conn == b->max_in_flight_per_conn &&
	       a->max_in_flight_per_uid == b->max_in_flight_per_uid &&
	       a->chunk_size == b->chunk_size && a->drain_timeout_ms == b->drain_timeout_ms &&
	       a->n_allow_uids == b->n_allow_uids &&
	       memcmp(a->allow_uids, b->allow_uids, a->n_allow_uids * sizeof(uid_t)) == 0 &&
	       a->n_allow_gids == b->n_allow_gids &&
	       memcmp(a->allow_gids, b->allow_gids, a->n_allow_gids * sizeof(gid_t)) == 0;
}

/* The settings (not where they came from) of @a and @b are the same. The
 * printed file names the control sockets that were left beside the data
 * socket: compare where they end up, as the daemon does. */
static void
check_same(const struct conf *a, const struct conf *b)
{
	struct ctl_config ca, cb;
	int ra, rb;

	ra = conf_ctl_config(a, a->srv.socket_path, &ca);
	rb = conf_ctl_config(b, b->srv.socket_path, &cb);
	if (ra != rb)
		abort();
	if (ra == 0 && (strcmp(ca.control_path, cb.control_path) != 0 ||
	                strcmp(ca.events_path, cb.events_path) != 0 || ca.mode != cb.mode ||
	                ca.has_group != cb.has_group || (ca.has_group && ca.group != cb.group) ||
	                ca.probe_interval_ms != cb.probe_interval_ms))
		abort();
	if (!same_server_config(&a->srv, &b->srv) || conf_control_mode(a) != conf_control_mode(b) ||
	    a->workers != b->workers || a->log_level != b->log_level)
		abort();
}

static void
check_round_trip(const struct conf *cfg)
{
	struct conf again;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	if (!f)
		abort();
	conf_print(cfg, f);
	if (fclose(f) != 0)
		abort();
	f = fmemopen(text, len, "r");
	if (!f)
		abort();
	conf_defaults(&again);
	if (conf_parse(&again, f, "printed", on_error_reparse, NULL) != 0)
		abort();
	fclose(f);
	free(text);
	check_same(cfg, &again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf cfg;
	unsigned reported = 0;
	int before, r;
	FILE *f;

	/* fmemopen() wants at least one byte; an empty file parses as no
	 * settings at all. */
	if (size == 0)
		return 0;
	before = count_open_fds();
	f = fmemopen((void *)data, size, "r");
	if (!f)
		abort();
	conf_defaults(&cfg);
	r = conf_parse(&cfg, f, "fuzz.conf", on_error, &reported);
	fclose(f);
	if (r < 0 || (unsigned)r != reported)
		abort();
	check_round_trip(&cfg);
	if (count_open_fds() != before)
		abort();
	return 0;
}
