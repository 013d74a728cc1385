// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "capacity.h"

#define CPUS_MAX_MILLI (1000000LL * 1000) /* a million CPUs: anything above is a typo */
#define MEMORY_MAX_MB  (1LL << 40)
#define TASKS_MAX      4194304 /* PID_MAX_LIMIT */
#define HOLDERS_SHOWN  5
#define MBIT_MAX_KBIT  (10000000LL * 1000) /* 10 Tbit/s: anything above is a typo */

bool gpu_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (!len || len > GPU_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (i && (c == '-' || c == '_'))))
			return false;
	}
	return true;
}

void capacity_defaults(struct capacity *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus_milli = CAP_AUTO;
	c->memory_mb = CAP_AUTO;
	c->egress_kbit = CAP_AUTO;
	c->ingress_kbit = CAP_AUTO;
	c->cpu_window_s = 10;
	c->cpu_grace_s = 30;
}

void milli_fmt(int64_t milli, char *buf, size_t len)
{
	uint64_t m = milli < 0 ? -(uint64_t)milli : (uint64_t)milli;
	unsigned int frac = (unsigned int)(m % 1000), digits = 3;

	if (!frac) {
		snprintf(buf, len, "%s%llu", milli < 0 ? "-" : "", (unsigned long long)(m / 1000));
		return;
	}
	for (; frac % 10 == 0; frac /= 10) /* "0.25", not "0.250" */
		digits--;
	snprintf(buf, len, "%s%llu.%0*u", milli < 0 ? "-" : "", (unsigned long long)(m / 1000),
		 (int)digits, frac);
}

/* A CPU amount: integer or fraction, at most milli precision, within [min, max]. */
static bool get_cpus(struct json_object *v, const char *file, const char *path, int64_t min,
		     int64_t *out, struct verr *e)
{
	json_type t = json_object_get_type(v);
	double x;

	if (t != json_type_int && t != json_type_double) {
		verr_add(e, file, path, "expected number, got %s", jv_type_name(t));
		return false;
	}
	x = json_object_get_double(v);
	if (!isfinite(x) || x * 1000 < (double)min || x * 1000 > (double)CPUS_MAX_MILLI) {
		verr_add(e, file, path, "%s CPUs out of range %s-1000000",
			 json_object_to_json_string(v), min ? "0.001" : "0");
		return false;
	}
	if (fabs(x * 1000 - round(x * 1000)) > 1e-6) {
		verr_add(e, file, path, "%s: at most 3 decimals (milli-CPUs)",
			 json_object_to_json_string(v));
		return false;
	}
	*out = (int64_t)llround(x * 1000);
	return true;
}

/* A bandwidth in Mbit/s (10^6 bit/s): a positive number, at most 3 decimals (kbit/s). */
static bool get_mbit(struct json_object *v, const char *file, const char *path, int64_t *out_kbit,
		     struct verr *e)
{
	json_type t = json_object_get_type(v);
	double x;

	if (t != json_type_int && t != json_type_double) {
		verr_add(e, file, path, "expected a number of Mbit/s, got %s", jv_type_name(t));
		return false;
	}
	x = json_object_get_double(v);
	if (!isfinite(x) || x * 1000 < 1 || x * 1000 > (double)MBIT_MAX_KBIT) {
		verr_add(e, file, path, "%s Mbit/s out of range 0.001-10000000",
			 json_object_to_json_string(v));
		return false;
	}
	if (fabs(x * 1000 - round(x * 1000)) > 1e-6) {
		verr_add(e, file, path, "%s: at most 3 decimals (kbit/s)",
			 json_object_to_json_string(v));
		return false;
	}
	*out_kbit = (int64_t)llround(x * 1000);
	return true;
}

/* "auto" or a value parsed by fn. */
static bool is_auto(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	       !strcmp(json_object_get_string(v), "auto");
}

static void parse_gpu_devices(struct json_object *arr, const char *file, const char *path,
			      struct gpu_cfg *g, struct verr *e)
{
	char of[GPU_ID_MAX + 16] = ""; /* " of GPU \"gpu0\"": which GPU, when its id is valid */
	size_t n;

	if (g->id[0])
		snprintf(of, sizeof(of), " of GPU \"%s\"", g->id);
	if (!jv_expect(arr, json_type_array, file, path, e))
		return;
	n = json_object_array_length(arr);
	if (!n || n > GPU_MAX_DEVICES) {
		verr_add(e, file, path, "%zu devices%s, expected 1-%d", n, of, GPU_MAX_DEVICES);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);
		char p[JV_PATH_MAX];
		const char *s;

		jv_path_idx(p, path, i);
		if (!jv_expect(d, json_type_string, file, p, e))
			continue;
		s = json_object_get_string(d);
		if (s[0] != '/' || strlen(s) > GPU_PATH_MAX) {
			verr_add(e, file, p,
				 "\"%.300s\"%s is not an absolute device path of at most %d bytes",
				 s, of, GPU_PATH_MAX);
			continue;
		}
		strcpy(g->dev[g->n_dev++].path, s);
	}
}

static void parse_gpu(struct json_object *o, const char *file, const char *path, struct capacity *c,
		      struct verr *e)
{
	static const char *const keys[] = { "id", "devices", NULL };
	struct gpu_cfg *g = &c->gpus[c->n_gpus];
	struct json_object *v;
	char p[JV_PATH_MAX];

	if (!jv_expect(o, json_type_object, file, path, e))
		return;
	jv_check_keys(o, file, path, keys, e);
	jv_path_key(p, path, "id");
	if (!json_object_object_get_ex(o, "id", &v)) {
		verr_add(e, file, p, "missing required key");
	} else if (jv_expect(v, json_type_string, file, p, e)) {
		if (!gpu_id_valid(json_object_get_string(v)))
			verr_add(e, file, p,
				 "invalid GPU id \"%s\" (expected [a-z0-9][a-z0-9_-]{0,30})",
				 json_object_get_string(v));
		else
			strcpy(g->id, json_object_get_string(v));
	}
	jv_path_key(p, path, "devices");
	if (!json_object_object_get_ex(o, "devices", &v))
		verr_add(e, file, p, "missing required key");
	else
		parse_gpu_devices(v, file, p, g, e);
	for (size_t i = 0; g->id[0] && i < c->n_gpus; i++)
		if (!strcmp(c->gpus[i].id, g->id))
			verr_add(e, file, path, "GPU id \"%s\" is also gpus[%zu]", g->id, i);
	c->n_gpus++;
}

static void parse_gpus(struct json_object *arr, const char *file, struct capacity *c,
		       struct verr *e)
{
	size_t n;

	if (!jv_expect(arr, json_type_array, file, "capacity.gpus", e))
		return;
	n = json_object_array_length(arr);
	if (n > CAP_MAX_GPUS) {
		verr_add(e, file, "capacity.gpus", "%zu GPUs, at most %d", n, CAP_MAX_GPUS);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char p[JV_PATH_MAX];

		jv_path_idx(p, "capacity.gpus", i);
		parse_gpu(json_object_array_get_idx(arr, i), file, p, c, e);
	}
}

static void parse_reserved(struct json_object *o, const char *file, struct capacity *c,
			   struct verr *e)
{
	static const char *const keys[] = { "cpus", "memory_mb", NULL };
	struct json_object *v;

	if (!jv_expect(o, json_type_object, file, "capacity.reserved", e))
		return;
	jv_check_keys(o, file, "capacity.reserved", keys, e);
	if (json_object_object_get_ex(o, "cpus", &v))
		get_cpus(v, file, "capacity.reserved.cpus", 0, &c->reserved_cpus_milli, e);
	if (json_object_object_get_ex(o, "memory_mb", &v))
		jv_get_int(v, 0, MEMORY_MAX_MB, file, "capacity.reserved.memory_mb",
			   &c->reserved_memory_mb, e);
}

void capacity_parse(struct json_object *obj, const char *file, struct capacity *c, struct verr *e)
{
	static const char *const keys[] = { "cpus",	   "memory_mb",	   "gpus",
					    "reserved",	   "cpu_window_s", "cpu_grace_s",
					    "egress_mbit", "ingress_mbit", NULL };
	struct json_object *v;

	capacity_defaults(c);
	if (!jv_expect(obj, json_type_object, file, "capacity", e))
		return;
	jv_check_keys(obj, file, "capacity", keys, e);
	if (json_object_object_get_ex(obj, "cpus", &v) && !is_auto(v))
		get_cpus(v, file, "capacity.cpus", 1, &c->cpus_milli, e);
	if (json_object_object_get_ex(obj, "memory_mb", &v) && !is_auto(v))
		jv_get_int(v, 1, MEMORY_MAX_MB, file, "capacity.memory_mb", &c->memory_mb, e);
	if (json_object_object_get_ex(obj, "gpus", &v))
		parse_gpus(v, file, c, e);
	if (json_object_object_get_ex(obj, "reserved", &v))
		parse_reserved(v, file, c, e);
	if (json_object_object_get_ex(obj, "cpu_window_s", &v))
		jv_get_int(v, 1, 300, file, "capacity.cpu_window_s", &c->cpu_window_s, e);
	if (json_object_object_get_ex(obj, "cpu_grace_s", &v))
		jv_get_int(v, 0, 3600, file, "capacity.cpu_grace_s", &c->cpu_grace_s, e);
	if (json_object_object_get_ex(obj, "egress_mbit", &v) && !is_auto(v))
		get_mbit(v, file, "capacity.egress_mbit", &c->egress_kbit, e);
	if (json_object_object_get_ex(obj, "ingress_mbit", &v) && !is_auto(v))
		get_mbit(v, file, "capacity.ingress_mbit", &c->ingress_kbit, e);
}

static int64_t memtotal_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

static bool iface_up(const char *dir, const char *name)
{
	char path[PATH_MAX], state[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/operstate", dir, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(state, sizeof(state), f))
		state[0] = '\0';
	fclose(f);
	return !strncmp(state, "up", 2);
}

int64_t capacity_link_speed_mbit(const char *sys_class_net)
{
	DIR *dir = opendir(sys_class_net);
	int64_t sum = -1;
	struct dirent *de;

	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		char path[PATH_MAX];
		long long speed = -1;
		FILE *f;

		if (de->d_name[0] == '.' || !iface_up(sys_class_net, de->d_name))
			continue;
		/* drivers/net: SPEED_UNKNOWN (-1) or an error when the speed is not known */
		snprintf(path, sizeof(path), "%s/%s/speed", sys_class_net, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%lld", &speed) == 1 && speed > 0)
			sum = (sum < 0 ? 0 : sum) + speed;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

static void resolve_bandwidth(struct capacity *c)
{
	int64_t mbit = -1;

	if (c->egress_kbit == CAP_AUTO || c->ingress_kbit == CAP_AUTO)
		mbit = capacity_link_speed_mbit("/sys/class/net");
	if (c->egress_kbit == CAP_AUTO) {
		c->egress_kbit = mbit > 0 ? mbit * 1000 : CAP_UNKNOWN;
		c->egress_detected = mbit > 0;
	}
	if (c->ingress_kbit == CAP_AUTO) {
		c->ingress_kbit = mbit > 0 ? mbit * 1000 : CAP_UNKNOWN;
		c->ingress_detected = mbit > 0;
	}
}

static void resolve_devices(struct capacity *c, const char *file, struct verr *e)
{
	for (size_t i = 0; i < c->n_gpus; i++) {
		for (size_t j = 0; j < c->gpus[i].n_dev; j++) {
			struct gpu_device *d = &c->gpus[i].dev[j];
			char p[JV_PATH_MAX];
			struct stat st;

			snprintf(p, sizeof(p), "capacity.gpus[%zu].devices[%zu]", i, j);
			if (stat(d->path, &st)) {
				verr_add(e, file, p, "\"%s\" of GPU \"%s\": %s", d->path,
					 c->gpus[i].id, strerror(errno));
				continue;
			}
			if (!S_ISCHR(st.st_mode)) {
				verr_add(e, file, p,
					 "\"%s\" of GPU \"%s\" is not a character device", d->path,
					 c->gpus[i].id);
				continue;
			}
			d->major = major(st.st_rdev);
			d->minor = minor(st.st_rdev);
		}
	}
}

int capacity_resolve(struct capacity *c, const char *file, struct verr *e)
{
	size_t n0 = e->n + e->dropped;
	char a[32], b[32];

	if (c->cpus_milli == CAP_AUTO) {
		c->cpus_milli = sysconf(_SC_NPROCESSORS_ONLN) * 1000LL;
		c->cpus_detected = true;
	}
	if (c->memory_mb == CAP_AUTO) {
		c->memory_mb = memtotal_mb();
		c->memory_detected = true;
		if (c->memory_mb < 0)
			verr_add(e, file, "capacity.memory_mb",
				 "cannot read MemTotal from /proc/meminfo");
	}
	if (c->reserved_cpus_milli >= c->cpus_milli) {
		milli_fmt(c->reserved_cpus_milli, a, sizeof(a));
		milli_fmt(c->cpus_milli, b, sizeof(b));
		verr_add(e, file, "capacity.reserved.cpus", "%s leaves nothing of %s CPUs", a, b);
	}
	if (c->memory_mb >= 0 && c->reserved_memory_mb >= c->memory_mb)
		verr_add(e, file, "capacity.reserved.memory_mb", "%lld leaves nothing of %lld MB",
			 (long long)c->reserved_memory_mb, (long long)c->memory_mb);
	resolve_bandwidth(c);
	resolve_devices(c, file, e);
	return e->n + e->dropped == n0 ? 0 : -EINVAL;
}

static void parse_res_gpus(struct json_object *v, const char *file, const char *path,
			   struct spec_resources *r, struct verr *e)
{
	size_t n;

	if (json_object_is_type(v, json_type_int)) {
		jv_get_int(v, 1, CAP_MAX_GPUS, file, path, &r->gpu_count, e);
		return;
	}
	if (!json_object_is_type(v, json_type_array)) {
		verr_add(e, file, path, "expected a count or a list of GPU ids, got %s",
			 jv_type_name(json_object_get_type(v)));
		return;
	}
	n = json_object_array_length(v);
	if (!n || n > CAP_MAX_GPUS) {
		verr_add(e, file, path, "%zu GPU ids, expected 1-%d", n, CAP_MAX_GPUS);
		return;
	}
	free(r->gpu_ids);
	r->n_gpu_ids = 0;
	r->gpu_ids = calloc(n, sizeof(*r->gpu_ids));
	if (!r->gpu_ids) {
		verr_add(e, file, path, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *id = json_object_array_get_idx(v, i);
		char p[JV_PATH_MAX];

		jv_path_idx(p, path, i);
		if (!jv_expect(id, json_type_string, file, p, e))
			continue;
		if (!gpu_id_valid(json_object_get_string(id))) {
			verr_add(e, file, p, "invalid GPU id \"%s\"", json_object_get_string(id));
			continue;
		}
		for (size_t j = 0; j < r->n_gpu_ids; j++)
			if (!strcmp(r->gpu_ids[j], json_object_get_string(id)))
				verr_add(e, file, p, "\"%s\" is listed twice", r->gpu_ids[j]);
		strcpy(r->gpu_ids[r->n_gpu_ids++], json_object_get_string(id));
	}
}

void resources_parse(struct json_object *obj, const char *file, struct spec_resources *r,
		     struct verr *e)
{
	static const char *const keys[] = { "cpus",	   "memory_mb",	   "tasks", "gpus",
					    "egress_mbit", "ingress_mbit", NULL };
	struct json_object *v;

	memset(r, 0, sizeof(*r));
	if (!jv_expect(obj, json_type_object, file, "resources", e))
		return;
	jv_check_keys(obj, file, "resources", keys, e);
	if (json_object_object_get_ex(obj, "cpus", &v))
		get_cpus(v, file, "resources.cpus", 1, &r->cpus_milli, e);
	if (json_object_object_get_ex(obj, "memory_mb", &v))
		jv_get_int(v, 1, MEMORY_MAX_MB, file, "resources.memory_mb", &r->memory_mb, e);
	if (json_object_object_get_ex(obj, "tasks", &v))
		jv_get_int(v, 1, TASKS_MAX, file, "resources.tasks", &r->tasks, e);
	if (json_object_object_get_ex(obj, "gpus", &v))
		parse_res_gpus(v, file, "resources.gpus", r, e);
	if (json_object_object_get_ex(obj, "egress_mbit", &v))
		get_mbit(v, file, "resources.egress_mbit", &r->egress_kbit, e);
	if (json_object_object_get_ex(obj, "ingress_mbit", &v))
		get_mbit(v, file, "resources.ingress_mbit", &r->ingress_kbit, e);
}

struct json_object *mbit_json(int64_t kbit)
{
	char s[32];

	milli_fmt(kbit, s, sizeof(s)); /* rendered as written: 20.5, not 20.500000000000004 */
	return kbit % 1000 ? json_object_new_double_s(kbit / 1000.0, s)
			   : json_object_new_int64(kbit / 1000);
}

struct json_object *resources_to_json(const struct spec_resources *r)
{
	struct json_object *o = json_object_new_object();

	if (r->cpus_milli) {
		char s[32];

		/* rendered as written ("2.345", not "2.3450000000000002") */
		milli_fmt(r->cpus_milli, s, sizeof(s));
		json_object_object_add(o, "cpus",
				       json_object_new_double_s(r->cpus_milli / 1000.0, s));
	}
	if (r->memory_mb)
		json_object_object_add(o, "memory_mb", json_object_new_int64(r->memory_mb));
	if (r->tasks)
		json_object_object_add(o, "tasks", json_object_new_int64(r->tasks));
	if (r->n_gpu_ids) {
		struct json_object *ids = json_object_new_array();

		for (size_t i = 0; i < r->n_gpu_ids; i++)
			json_object_array_add(ids, json_object_new_string(r->gpu_ids[i]));
		json_object_object_add(o, "gpus", ids);
	} else if (r->gpu_count) {
		json_object_object_add(o, "gpus", json_object_new_int64(r->gpu_count));
	}
	if (r->egress_kbit)
		json_object_object_add(o, "egress_mbit", mbit_json(r->egress_kbit));
	if (r->ingress_kbit)
		json_object_object_add(o, "ingress_mbit", mbit_json(r->ingress_kbit));
	return o;
}

int resources_copy(struct spec_resources *dst, const struct spec_resources *src)
{
	*dst = *src;
	if (!src->n_gpu_ids) {
		dst->gpu_ids = NULL;
		return 0;
	}
	dst->gpu_ids = malloc(src->n_gpu_ids * sizeof(*dst->gpu_ids));
	if (!dst->gpu_ids) {
		dst->n_gpu_ids = 0;
		return -ENOMEM;
	}
	memcpy(dst->gpu_ids, src->gpu_ids, src->n_gpu_ids * sizeof(*dst->gpu_ids));
	return 0;
}

void resources_free(struct spec_resources *r)
{
	free(r->gpu_ids);
	r->gpu_ids = NULL;
	r->n_gpu_ids = 0;
}

bool resources_equal(const struct spec_resources *a, const struct spec_resources *b)
{
	if (a->cpus_milli != b->cpus_milli || a->memory_mb != b->memory_mb ||
	    a->tasks != b->tasks || a->gpu_count != b->gpu_count || a->n_gpu_ids != b->n_gpu_ids ||
	    a->egress_kbit != b->egress_kbit || a->ingress_kbit != b->ingress_kbit)
		return false;
	return !a->n_gpu_ids || !memcmp(a->gpu_ids, b->gpu_ids, a->n_gpu_ids * sizeof(*a->gpu_ids));
}

bool resources_any(const struct spec_resources *r)
{
	return r->cpus_milli || r->memory_mb || r->tasks || r->gpu_count || r->n_gpu_ids ||
	       r->egress_kbit || r->ingress_kbit;
}

int64_t resources_gpus(const struct spec_resources *r)
{
	return r->n_gpu_ids ? (int64_t)r->n_gpu_ids : r->gpu_count;
}

/* ---- admission ---- */

enum dim { DIM_CPUS, DIM_MEMORY, DIM_GPUS, DIM_EGRESS, DIM_INGRESS, DIM_MAX };

static const char *const dim_name[DIM_MAX] = { "cpus", "memory_mb", "gpus", "egress_mbit",
					       "ingress_mbit" };

static int64_t ask(const struct spec_resources *r, enum dim d)
{
	if (!r)
		return 0;
	switch (d) {
	case DIM_CPUS:
		return r->cpus_milli;
	case DIM_MEMORY:
		return r->memory_mb;
	case DIM_EGRESS:
		return r->egress_kbit;
	case DIM_INGRESS:
		return r->ingress_kbit;
	default:
		return resources_gpus(r);
	}
}

static void amount_fmt(enum dim d, int64_t v, char *buf, size_t len)
{
	if (d == DIM_CPUS || d == DIM_EGRESS || d == DIM_INGRESS) /* milli-CPUs, kbit/s */
		milli_fmt(v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static int64_t allocatable(const struct capacity *c, enum dim d)
{
	switch (d) {
	case DIM_CPUS:
		return c->cpus_milli - c->reserved_cpus_milli;
	case DIM_MEMORY:
		return c->memory_mb - c->reserved_memory_mb;
	case DIM_EGRESS:
		return c->egress_kbit; /* CAP_UNKNOWN (< 0): nothing can be admitted */
	case DIM_INGRESS:
		return c->ingress_kbit;
	default:
		return (int64_t)c->n_gpus;
	}
}

struct holder {
	const char *name;
	int64_t amount;
};

static int holder_cmp(const void *a, const void *b)
{
	const struct holder *x = a, *y = b;

	if (x->amount != y->amount)
		return x->amount > y->amount ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* "cpus: requested 3, free 2 of 7 (alpha 4, beta 1)" */
static void refuse(const struct admit_svc *s, enum dim d, int64_t used, int64_t total,
		   struct holder *h, size_t nh, struct verr *e)
{
	char req[32 + CAP_MAX_GPUS * (GPU_ID_MAX + 2)], fr[32], tot[32], list[512] = "";
	size_t off = 0;

	qsort(h, nh, sizeof(*h), holder_cmp);
	for (size_t i = 0; i < nh && i < HOLDERS_SHOWN; i++) {
		char amt[32];

		amount_fmt(d, h[i].amount, amt, sizeof(amt));
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s %s", i ? ", " : " (",
					h[i].name, amt);
	}
	if (nh > HOLDERS_SHOWN)
		off += (size_t)snprintf(list + off, sizeof(list) - off, ", ...");
	if (nh)
		snprintf(list + off, sizeof(list) - off, ")");
	amount_fmt(d, ask(s->res, d), req, sizeof(req));
	/* GPUs asked for by id: which ones ("requested 2 (gpu0, gpu3)") */
	for (size_t i = 0; d == DIM_GPUS && i < s->res->n_gpu_ids; i++)
		snprintf(req + strlen(req), sizeof(req) - strlen(req), "%s%s%s", i ? ", " : " (",
			 s->res->gpu_ids[i], i + 1 == s->res->n_gpu_ids ? ")" : "");
	amount_fmt(d, total - used > 0 ? total - used : 0, fr, sizeof(fr));
	amount_fmt(d, total, tot, sizeof(tot));
	verr_add(e, s->name, NULL, "%s: requested %s, free %s of %s%s", dim_name[d], req, fr, tot,
		 list);
}

/* Does s fit next to what is admitted, in every dimension? Each dimension that does not is
 * reported. */
static bool fits(const struct admit_svc *s, const int64_t *used, const int64_t *total,
		 struct holder **h, const size_t *nh, struct verr *e)
{
	bool ok = true;

	for (int d = 0; d < DIM_MAX; d++) {
		int64_t a = ask(s->res, (enum dim)d);

		if (a && total[d] < 0) {
			char req[32];

			amount_fmt((enum dim)d, a, req, sizeof(req));
			verr_add(e, s->name, NULL,
				 "%s: requested %s, but the host's capacity is unknown (no "
				 "interface "
				 "reports its link speed): set capacity.%s in caelum.json",
				 dim_name[d], req, dim_name[d]);
			ok = false;
		} else if (a && used[d] + a > total[d]) {
			refuse(s, (enum dim)d, used[d], total[d], h[d], nh[d], e);
			ok = false;
		}
	}
	return ok;
}

int admission_check(const struct capacity *cap, const struct admit_svc *svcs, size_t n,
		    struct verr *e)
{
	struct holder *h[DIM_MAX] = { 0 };
	int64_t used[DIM_MAX] = { 0 }, total[DIM_MAX];
	size_t nh[DIM_MAX] = { 0 }, n0 = e->n + e->dropped;
	int err = 0;

	for (int d = 0; d < DIM_MAX; d++) {
		total[d] = allocatable(cap, (enum dim)d);
		h[d] = calloc(n + 1, sizeof(*h[d]));
		if (!h[d])
			err = -ENOMEM;
	}
	/* Unchanged services first: they hold what they have (even past a capacity that shrank
	 * since); then the changed ones, each admitted whole or refused whole (a refused one
	 * takes nothing, in no dimension, from the ones after it). */
	for (int pass = 0; pass < 2 && !err; pass++) {
		for (size_t i = 0; i < n; i++) {
			if (svcs[i].changed != (pass == 1))
				continue;
			if (pass == 1 && !fits(&svcs[i], used, total, h, nh, e))
				continue;
			for (int d = 0; d < DIM_MAX; d++) {
				int64_t a = ask(svcs[i].res, (enum dim)d);

				if (!a)
					continue;
				used[d] += a;
				h[d][nh[d]++] = (struct holder){ svcs[i].name, a };
			}
		}
	}
	for (int d = 0; d < DIM_MAX; d++)
		free(h[d]);
	if (err)
		return err;
	return e->n + e->dropped == n0 ? 0 : -ENOSPC;
}
