// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "fsutil.h"
#include "log.h"
#include "netns_user.h"
#include "reserved_ports.h"

#define SYSCTL_RANGE	"/proc/sys/net/ipv4/ip_local_port_range"
#define SYSCTL_RESERVED "/proc/sys/net/ipv4/ip_local_reserved_ports"
#define STATE_FILE	"reserved_ports.json"
#define LIST_MAX	(64 * 1024)

static int parse_port(const char **p, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)**p))
		return -EINVAL;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno || v > 65535)
		return -EINVAL;
	*p = end;
	*out = (uint16_t)v;
	return 0;
}

int portset_parse(const char *text, struct portset *s)
{
	const char *p = text;

	memset(s, 0, sizeof(*s));
	while (isspace((unsigned char)*p))
		p++;
	while (*p) {
		uint16_t lo, hi;

		if (parse_port(&p, &lo))
			return -EINVAL;
		hi = lo;
		if (*p == '-') {
			p++;
			if (parse_port(&p, &hi) || hi < lo)
				return -EINVAL;
		}
		for (uint32_t x = lo; x <= hi; x++)
			portset_add(s, (uint16_t)x);
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			continue;
		}
		while (isspace((unsigned char)*p))
			p++;
		if (*p)
			return -EINVAL; /* only the end may follow a number and its spaces */
	}
	return 0;
}

int portset_format(const struct portset *s, char *buf, size_t len)
{
	size_t off = 0;

	if (!len)
		return -ENOSPC;
	buf[0] = '\0';
	for (uint32_t p = 0; p < 65536; p++) {
		uint32_t q = p;
		int n;

		if (!portset_has(s, (uint16_t)p))
			continue;
		while (q + 1 < 65536 && portset_has(s, (uint16_t)(q + 1)))
			q++;
		n = q == p ? snprintf(buf + off, len - off, "%s%u", off ? "," : "", p)
			   : snprintf(buf + off, len - off, "%s%u-%u", off ? "," : "", p, q);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
		off += (size_t)n;
		p = q;
	}
	return (int)off;
}

void reserved_ports_merge(const struct portset *cur, const struct portset *ours_prev,
			  const struct portset *want, struct portset *out_write,
			  struct portset *out_ours)
{
	for (size_t i = 0; i < PORTSET_BYTES; i++) {
		uint8_t admin = cur->bits[i] & (uint8_t)~ours_prev->bits[i];

		out_write->bits[i] = admin | want->bits[i];
		out_ours->bits[i] = want->bits[i] & (uint8_t)~admin;
	}
}

static int read_text(const char *path, char **text)
{
	size_t len;

	return file_read_all(path, LIST_MAX, text, &len);
}

static int read_range(uint16_t *lo, uint16_t *hi)
{
	char *text = NULL;
	unsigned int a, b;
	int err = read_text(SYSCTL_RANGE, &text);

	if (!err && (sscanf(text, "%u %u", &a, &b) != 2 || a > b || b > 65535))
		err = -EINVAL;
	if (!err) {
		*lo = (uint16_t)a;
		*hi = (uint16_t)b;
	}
	free(text);
	return err;
}

static int read_set(const char *path, struct portset *s)
{
	char *text = NULL;
	int err = read_text(path, &text);

	if (!err)
		err = portset_parse(text, s);
	free(text);
	return err;
}

static int write_set(const struct portset *s)
{
	static char buf[LIST_MAX];
	int fd, n = portset_format(s, buf, sizeof(buf) - 1), err = 0;

	if (n < 0)
		return n;
	buf[n++] = '\n';
	fd = open(SYSCTL_RESERVED, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n)
		err = -errno;
	close(fd);
	return err;
}

/* The record: {"ours": "40005,45000", "netns_cookie": N}; absent = nothing added yet. */
static int record_load(const char *state_dir, struct portset *ours, uint64_t *cookie)
{
	char path[4096];
	struct json_object *o, *v;
	int err = 0;

	memset(ours, 0, sizeof(*ours));
	*cookie = 0;
	snprintf(path, sizeof(path), "%s/" STATE_FILE, state_dir);
	if (access(path, F_OK))
		return 0;
	o = json_object_from_file(path);
	if (!o)
		return -EINVAL;
	if (!json_object_object_get_ex(o, "ours", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    portset_parse(json_object_get_string(v), ours))
		err = -EINVAL;
	if (json_object_object_get_ex(o, "netns_cookie", &v))
		*cookie = (uint64_t)json_object_get_int64(v);
	json_object_put(o);
	return err;
}

static int record_store(const char *state_dir, const struct portset *ours, uint64_t cookie)
{
	static char buf[LIST_MAX];
	struct json_object *o = json_object_new_object();
	const char *text;
	int err = portset_format(ours, buf, sizeof(buf));

	if (err < 0) {
		json_object_put(o);
		return err;
	}
	json_object_object_add(o, "ours", json_object_new_string(buf));
	json_object_object_add(o, "netns_cookie", json_object_new_uint64(cookie));
	text = json_object_to_json_string(o);
	err = file_write_atomic(state_dir, STATE_FILE, text, strlen(text), 0600);
	json_object_put(o);
	return err;
}

static void want_from_claims(const struct reg_claim *claims, size_t n, uint16_t lo, uint16_t hi,
			     struct portset *want)
{
	memset(want, 0, sizeof(*want));
	for (size_t i = 0; i < n; i++)
		if (claims[i].port >= lo && claims[i].port <= hi)
			portset_add(want, claims[i].port);
}

static int apply_fail(struct reserved_ports_info *info, const struct portset *want, int err,
		      const char *what)
{
	info->applied = false;
	info->unprotected = *want;
	snprintf(info->error, sizeof(info->error), "%s: %s", what, strerror(-err));
	p_warn("reservations inside the ephemeral port range are not protected from autobind: %s",
	       info->error);
	return err;
}

int reserved_ports_apply(const char *state_dir, const struct reg_claim *claims, size_t n,
			 struct reserved_ports_info *info)
{
	static struct portset cur, prev, want, wr, ours;
	uint64_t cookie = 0, rec_cookie;
	int err;

	memset(info, 0, sizeof(*info));
	err = read_range(&info->range_lo, &info->range_hi);
	if (err)
		return apply_fail(info, &want, err, "read " SYSCTL_RANGE);
	want_from_claims(claims, n, info->range_lo, info->range_hi, &want);
	err = read_set(SYSCTL_RESERVED, &cur);
	if (err)
		return apply_fail(info, &want, err, "read " SYSCTL_RESERVED);
	if (record_load(state_dir, &prev, &rec_cookie))
		p_warn("%s/%s is unreadable: treating every listed port as the admin's", state_dir,
		       STATE_FILE);
	netns_cookie_self(&cookie);
	if (rec_cookie && rec_cookie != cookie)
		memset(&prev, 0, sizeof(prev)); /* another namespace's list: nothing of ours here */
	reserved_ports_merge(&cur, &prev, &want, &wr, &ours);
	if (memcmp(&wr, &cur, sizeof(wr)) && (err = write_set(&wr)))
		return apply_fail(info, &want, err, "write " SYSCTL_RESERVED);
	err = record_store(state_dir, &ours, cookie);
	if (err)
		p_warn("failed to record %s/%s: %s (teardown may not restore the admin's list)",
		       state_dir, STATE_FILE, strerror(-err));
	info->applied = true;
	info->protected_ports = want;
	return 0;
}

int reserved_ports_restore(const char *state_dir)
{
	static struct portset cur, prev, none, wr, ours;
	uint64_t cookie = 0, rec_cookie;
	char path[4096];
	int err;

	err = record_load(state_dir, &prev, &rec_cookie);
	if (err)
		return err;
	netns_cookie_self(&cookie);
	if (rec_cookie && rec_cookie != cookie)
		return -EXDEV;
	err = read_set(SYSCTL_RESERVED, &cur);
	if (err)
		return err;
	reserved_ports_merge(&cur, &prev, &none, &wr, &ours);
	if (memcmp(&wr, &cur, sizeof(wr)) && (err = write_set(&wr)))
		return err;
	snprintf(path, sizeof(path), "%s/" STATE_FILE, state_dir);
	unlink(path);
	return 0;
}

struct json_object *reserved_ports_json(const struct reserved_ports_info *info)
{
	static char buf[LIST_MAX];
	struct json_object *o = json_object_new_object();

	snprintf(buf, sizeof(buf), "%u-%u", info->range_lo, info->range_hi);
	json_object_object_add(o, "ephemeral_range", json_object_new_string(buf));
	portset_format(&info->protected_ports, buf, sizeof(buf));
	json_object_object_add(o, "protected", json_object_new_string(buf));
	portset_format(&info->unprotected, buf, sizeof(buf));
	json_object_object_add(o, "unprotected", json_object_new_string(buf));
	json_object_object_add(o, "error",
			       info->applied ? NULL : json_object_new_string(info->error));
	return o;
}
