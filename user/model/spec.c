// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#define PORT_SLOTS (65536 * 2)

static const char *const spec_keys[] = { "name",	"ports",  "resources", "databases",
					 "credentials", "health", "cgroup",    NULL };

static void parse_name(struct json_object *v, const char *file, struct service_spec *s,
		       struct verr *e)
{
	char buf[96];

	if (!jv_expect(v, json_type_string, file, "name", e))
		return;
	if (!service_name_valid(json_object_get_string(v))) {
		verr_add(e, file, "name",
			 "invalid service name %s (expected [a-z0-9][a-z0-9-]{0,62})",
			 jv_repr(v, buf, sizeof(buf)));
		return;
	}
	strcpy(s->name, json_object_get_string(v));
}

/*
 * "cgroup": "system.slice/web.service". Relative to cgroup_root, components of
 * [A-Za-z0-9_.@:-] (systemd unit and scope names), no "." or ".." component, not below
 * Caelum's own "caelum/".
 */
static void parse_cgroup(struct json_object *v, const char *file, struct service_spec *s,
			 struct verr *e)
{
	const char *p, *c;
	char buf[160];

	if (!jv_expect(v, json_type_string, file, "cgroup", e))
		return;
	p = json_object_get_string(v);
	jv_repr(v, buf, sizeof(buf));
	if (!*p || strlen(p) >= SPEC_CGROUP_MAX) {
		verr_add(e, file, "cgroup", "%s must be 1-%d characters", buf, SPEC_CGROUP_MAX - 1);
		return;
	}
	for (c = p; *c; c++) {
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@:-/",
			    *c)) {
			verr_add(e, file, "cgroup", "%s: character '%c' is not allowed", buf, *c);
			return;
		}
	}
	if (*p == '/' || p[strlen(p) - 1] == '/' || strstr(p, "//") || !strcmp(p, ".") ||
	    !strncmp(p, "./", 2) || !strncmp(p, "../", 3) || strstr(p, "/./") ||
	    strstr(p, "/../") || !strcmp(p, "..") ||
	    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")) ||
	    (strlen(p) >= 2 && !strcmp(p + strlen(p) - 2, "/."))) {
		verr_add(e, file, "cgroup",
			 "%s is not a path relative to cgroup_root (no leading or trailing '/', no "
			 "empty, '.' or '..' component)",
			 buf);
		return;
	}
	if (!strcmp(p, "caelum") || !strncmp(p, "caelum/", 7)) {
		verr_add(e, file, "cgroup", "%s is below Caelum's own \"caelum/\"", buf);
		return;
	}
	strcpy(s->cgroup, p);
}

/* One "ports" item: "8100", "8100/udp", "9000-9010/tcp" or the integer 8100. */
static int parse_port_item(struct json_object *v, const char *file, const char *path,
			   struct port_range *r, struct verr *e)
{
	char why[128], num[16];
	const char *text;
	json_type t = json_object_get_type(v);

	if (t == json_type_int) {
		snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
		text = num;
	} else if (t == json_type_string) {
		text = json_object_get_string(v);
	} else {
		verr_add(e, file, path, "expected string like \"8100/tcp\", got %s",
			 jv_type_name(t));
		return -EINVAL;
	}
	if (port_range_parse(text, IPPROTO_TCP, true, r, why, sizeof(why))) {
		verr_add(e, file, path, "%s", why);
		return -EINVAL;
	}
	return 0;
}

static void parse_ports(struct json_object *arr, const char *file, struct service_spec *s,
			struct verr *e)
{
	size_t n;

	if (!jv_expect(arr, json_type_array, file, "ports", e))
		return;
	n = json_object_array_length(arr);
	if (n > SPEC_MAX_PORT_ITEMS) {
		verr_add(e, file, "ports", "%zu items, at most %d (use ranges)", n,
			 SPEC_MAX_PORT_ITEMS);
		return;
	}
	s->ports = calloc(n ? n : 1, sizeof(*s->ports));
	if (!s->ports) {
		verr_add(e, file, "ports", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char p[JV_PATH_MAX];

		jv_path_idx(p, "ports", i);
		if (!parse_port_item(json_object_array_get_idx(arr, i), file, p,
				     &s->ports[s->n_ports], e))
			s->n_ports++;
	}
}

int spec_from_json(struct json_object *obj, const char *file, struct service_spec *s,
		   struct verr *e)
{
	size_t n0 = e->n + e->dropped;
	struct json_object *v;

	memset(s, 0, sizeof(*s));
	if (!jv_expect(obj, json_type_object, file, NULL, e))
		return -EINVAL;
	jv_check_keys(obj, file, NULL, spec_keys, e);
	if (json_object_object_get_ex(obj, "name", &v))
		parse_name(v, file, s, e);
	else
		verr_add(e, file, "name", "missing required key");
	if (json_object_object_get_ex(obj, "ports", &v))
		parse_ports(v, file, s, e);
	if (json_object_object_get_ex(obj, "resources", &v))
		resources_parse(v, file, &s->res, e);
	if (json_object_object_get_ex(obj, "databases", &v))
		spec_parse_databases(v, file, s, e);
	if (json_object_object_get_ex(obj, "credentials", &v))
		spec_parse_credentials(v, file, s, e);
	if (json_object_object_get_ex(obj, "health", &v))
		spec_parse_health(v, file, s, e);
	if (json_object_object_get_ex(obj, "cgroup", &v))
		parse_cgroup(v, file, s, e);
	if (e->n + e->dropped == n0) {
		/* Within one spec the file being parsed is the one to name. */
		s->source = (char *)file;
		spec_check_conflicts(s, 1, e);
		s->source = NULL;
	}
	if (e->n + e->dropped != n0) {
		spec_free(s);
		return -EINVAL;
	}
	return 0;
}

int spec_load_file(const char *path, struct service_spec *s, struct verr *e)
{
	const char *base = strrchr(path, '/');
	struct json_object *obj;
	size_t blen;
	int err;

	memset(s, 0, sizeof(*s));
	err = jv_parse_file(path, &obj, e);
	if (err)
		return err;
	err = spec_from_json(obj, path, s, e);
	json_object_put(obj);
	if (err)
		return err;
	base = base ? base + 1 : path;
	blen = strlen(base);
	if (blen < 5 || strcmp(base + blen - 5, ".json") || strncmp(base, s->name, blen - 5) ||
	    strlen(s->name) != blen - 5) {
		verr_add(e, path, "name", "\"%s\" does not match the file name (expected %s.json)",
			 s->name, s->name);
		spec_free(s);
		return -EINVAL;
	}
	s->source = strdup(path);
	if (!s->source) {
		spec_free(s);
		return -ENOMEM;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted "*.json" names of dir; hidden files and editor leftovers are ignored. */
static int list_json(const char *dir, char ***names, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char **tmp;

		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			tmp = realloc(*names, cap * sizeof(*tmp));
			if (!tmp)
				break;
			*names = tmp;
		}
		(*names)[(*n)++] = strdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return 0;
}

int spec_load_dir(const char *dir, struct service_spec **out, size_t *n, struct verr *e)
{
	size_t n0 = e->n + e->dropped, count = 0;
	char **names;
	int err;

	*out = NULL;
	*n = 0;
	err = list_json(dir, &names, &count);
	if (err) {
		verr_add(e, dir, NULL, "cannot read services_dir: %s", strerror(-err));
		return err;
	}
	*out = calloc(count ? count : 1, sizeof(**out));
	for (size_t i = 0; i < count; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i] ? names[i] : "");
		if (*out && names[i] && !spec_load_file(path, &(*out)[*n], e))
			(*n)++;
		free(names[i]);
	}
	free(names);
	if (!*out)
		return -ENOMEM;
	if (e->n + e->dropped == n0)
		spec_check_conflicts(*out, *n, e);
	if (e->n + e->dropped != n0) {
		specs_free(*out, *n);
		*out = NULL;
		*n = 0;
		return -EINVAL;
	}
	return 0;
}

struct claim {
	int spec; /* index + 1; 0 = free */
	int item;
};

static size_t slot(uint16_t port, uint8_t proto)
{
	return (size_t)port * 2 + (proto == IPPROTO_UDP);
}

static void report_conflict(const struct service_spec *specs, size_t si, size_t ii,
			    const struct claim *c, uint16_t port, uint8_t proto, struct verr *e)
{
	const struct service_spec *s = &specs[si], *o = &specs[c->spec - 1];
	const char *file = s->source ? s->source : s->name;
	char p[JV_PATH_MAX];

	jv_path_idx(p, "ports", ii);
	if (o == s)
		verr_add(e, file, p, "%u/%s is already listed in ports[%d]", port,
			 proto_name(proto), c->item);
	else
		verr_add(e, file, p, "%u/%s conflicts with service '%s' (%s: ports[%d])", port,
			 proto_name(proto), o->name, o->source ? o->source : o->name, c->item);
}

/* Path order component by component ('/' before any other byte): a cgroup's descendants
 * come right after it. */
static int cg_cmp(const void *a, const void *b, void *arg)
{
	const struct service_spec *specs = arg;
	const unsigned char *x = (const unsigned char *)specs[*(const size_t *)a].cgroup;
	const unsigned char *y = (const unsigned char *)specs[*(const size_t *)b].cgroup;

	size_t i = *(const size_t *)a, j = *(const size_t *)b;

	for (; *x && *x == *y; x++, y++)
		;
	if (*x != *y)
		return (*x == '/' ? 1 : *x + 1) - (*y == '/' ? 1 : *y + 1);
	return (i > j) - (i < j); /* the same cgroup: the first spec is the one named */
}

static bool cg_within(const char *outer, const char *inner)
{
	size_t n = strlen(outer);

	return !strncmp(outer, inner, n) && (inner[n] == '/' || !inner[n]);
}

/*
 * "cgroup": one service per cgroup subtree. Two services naming one cgroup, or one inside
 * the other's, would each have the other's processes (the kernel keeps one owner per
 * cgroup: the other's own binds would be refused). Each pair named once, both files.
 */
static void check_cgroups(const struct service_spec *specs, size_t n, struct verr *e)
{
	size_t *idx = malloc(n * sizeof(*idx)), k = 0, *stack, top = 0;

	stack = malloc(n * sizeof(*stack));
	for (size_t i = 0; idx && stack && i < n; i++)
		if (specs[i].cgroup[0])
			idx[k++] = i;
	if (idx && stack)
		qsort_r(idx, k, sizeof(*idx), cg_cmp, (void *)specs);
	for (size_t i = 0; idx && stack && i < k; i++) {
		const struct service_spec *s = &specs[idx[i]], *o;

		while (top && !cg_within(specs[stack[top - 1]].cgroup, s->cgroup))
			top--;
		if (top) {
			o = &specs[stack[top - 1]];
			verr_add(e, s->source ? s->source : s->name, "cgroup",
				 "\"%s\" %s service '%s' (%s: cgroup \"%s\"): one service per "
				 "cgroup subtree",
				 s->cgroup,
				 strcmp(s->cgroup, o->cgroup) ? "is inside that of" : "is also",
				 o->name, o->source ? o->source : o->name, o->cgroup);
			continue; /* the outer one stays the one to compare against */
		}
		stack[top++] = idx[i];
	}
	free(idx);
	free(stack);
}

int spec_check_conflicts(const struct service_spec *specs, size_t n, struct verr *e)
{
	struct claim *claims = calloc(PORT_SLOTS, sizeof(*claims));
	size_t n0 = e->n + e->dropped;

	if (!claims)
		return -ENOMEM;
	check_cgroups(specs, n, e);
	for (size_t si = 0; si < n; si++) {
		for (size_t ii = 0; ii < specs[si].n_ports; ii++) {
			const struct port_range *r = &specs[si].ports[ii];
			bool reported = false;

			for (uint32_t p = r->lo; p <= r->hi; p++) {
				struct claim *c = &claims[slot((uint16_t)p, r->proto)];

				if (c->spec && !reported) {
					report_conflict(specs, si, ii, c, (uint16_t)p, r->proto, e);
					reported = true; /* one message per item, not per port */
				} else if (!c->spec) {
					c->spec = (int)si + 1;
					c->item = (int)ii;
				}
			}
		}
	}
	free(claims);
	return e->n + e->dropped == n0 ? 0 : -EINVAL;
}

struct json_object *spec_to_json(const struct service_spec *s)
{
	struct json_object *obj = json_object_new_object();
	struct json_object *ports = json_object_new_array();

	json_object_object_add(obj, "name", json_object_new_string(s->name));
	for (size_t i = 0; i < s->n_ports; i++) {
		char buf[32];

		port_range_fmt(&s->ports[i], buf, sizeof(buf));
		json_object_array_add(ports, json_object_new_string(buf));
	}
	json_object_object_add(obj, "ports", ports);
	if (spec_has_resources(s))
		json_object_object_add(obj, "resources", resources_to_json(&s->res));
	if (s->cgroup[0])
		json_object_object_add(obj, "cgroup", json_object_new_string(s->cgroup));
	spec_ext_to_json(s, obj);
	return obj;
}

void spec_free(struct service_spec *s)
{
	spec_ext_free(s);
	resources_free(&s->res);
	free(s->ports);
	free(s->source);
	s->ports = NULL;
	s->source = NULL;
	s->n_ports = 0;
}

void specs_free(struct service_spec *specs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		spec_free(&specs[i]);
	free(specs);
}

int spec_copy(struct service_spec *dst, const struct service_spec *src)
{
	int err;

	*dst = *src;
	dst->ports = calloc(src->n_ports ? src->n_ports : 1, sizeof(*dst->ports));
	dst->source = src->source ? strdup(src->source) : NULL;
	/* Both replace dst's shallow pointers before either may fail: spec_free is safe. */
	err = resources_copy(&dst->res, &src->res);
	err = spec_ext_copy(dst, src) ? -ENOMEM : err;
	if (err || !dst->ports || (src->source && !dst->source)) {
		spec_free(dst);
		return -ENOMEM;
	}
	if (src->n_ports)
		memcpy(dst->ports, src->ports, src->n_ports * sizeof(*dst->ports));
	return 0;
}

bool spec_has_resources(const struct service_spec *s)
{
	return resources_any(&s->res);
}

size_t spec_port_count(const struct service_spec *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_ports; i++)
		n += (size_t)s->ports[i].hi - s->ports[i].lo + 1;
	return n;
}
