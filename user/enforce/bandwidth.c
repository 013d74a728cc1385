// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The bandwidth component (include/caelum/bandwidth.h): cm_bw holds one entry per service
 * that reserves bandwidth, cm_bw_count its per-CPU counts. sync() writes only entries that
 * differ, so a registry change elsewhere keeps every queue's state; tick() samples the
 * counts once a second for the measured rates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bandwidth_user.h"
#include "bandwidth.skel.h"
#include "bpfinfo.h"
#include "bpfpin.h"
#include "comp_bpf.h"
#include "capacity.h"
#include "config.h"
#include "log.h"
#include "registry.h"
#include "services.h"

/* What was counted for one service, summed over CPUs, at two sample times. */
struct bw_sample {
	uint64_t cgid;
	uint64_t t_ns, prev_t_ns; /* CLOCK_MONOTONIC of the last two samples; 0 = none */
	struct caelum_bw_dir_count now[CAELUM_BW_DIRS], prev[CAELUM_BW_DIRS];
};

struct bandwidth {
	struct comp_bpf bpf; /* first: the shared ops take the state (comp_bpf.h) */
	struct bandwidth_bpf *skel;
	int ncpu;
	struct bw_sample *s; /* one per entry of cm_bw, sorted by cgid */
	size_t n;
	uint64_t last_sample_ns;
	uint64_t sync_errors; /* entries that could not be written */
	size_t skipped;	      /* services that cannot be limited (followed cgroups off the level) */
};

static void bw_close(void *self)
{
	struct bandwidth *b = self;

	if (!b)
		return;
	comp_bpf_close(&b->bpf);
	bandwidth_bpf__destroy(b->skel);
	free(b->s);
	free(b);
}

static int bw_load(const struct comp_env *env, void **self)
{
	int ncpu = libbpf_num_possible_cpus();
	struct bandwidth *b;
	int err;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	err = COMP_BPF_NEW(env->bpf, bandwidth, &b);
	if (err)
		return err;
	b->ncpu = ncpu;
	comp_bpf_add(&b->bpf, b->skel->progs.cm_bw_egress, BPF_CGROUP_INET_EGRESS, false);
	comp_bpf_add(&b->bpf, b->skel->progs.cm_bw_ingress, BPF_CGROUP_INET_INGRESS, false);
	*self = b;
	return 0;
}

static int bw_attach(void *self, const struct comp_env *env)
{
	return comp_bpf_attach(&((struct bandwidth *)self)->bpf, env->bpf, 0);
}

bool bandwidth_entry(const struct spec_resources *r, struct caelum_bw *out)
{
	const int64_t kbit[CAELUM_BW_DIRS] = { r->egress_kbit, r->ingress_kbit };

	memset(out, 0, sizeof(*out));
	for (int d = 0; d < CAELUM_BW_DIRS; d++) {
		if (kbit[d] <= 0)
			continue;
		out->flags |= 1U << d;
		out->q[d] = (struct caelum_bw_queue){
			.rate_Bps = CAELUM_BW_KBIT_TO_BPS((uint64_t)kbit[d]),
			.burst_ns = CAELUM_BW_BURST_NS,
			.mark_ns = CAELUM_BW_MARK_NS,
			.drop_ns = CAELUM_BW_DROP_NS,
		};
	}
	return out->flags != 0;
}

/* Same limits (the queues' positions aside)? */
static bool entry_same(const struct caelum_bw *a, const struct caelum_bw *b)
{
	if (a->flags != b->flags)
		return false;
	for (int d = 0; d < CAELUM_BW_DIRS; d++)
		if (a->q[d].rate_Bps != b->q[d].rate_Bps || a->q[d].burst_ns != b->q[d].burst_ns ||
		    a->q[d].mark_ns != b->q[d].mark_ns || a->q[d].drop_ns != b->q[d].drop_ns)
			return false;
	return true;
}

static int sample_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct bw_sample *)a)->cgid, y = ((const struct bw_sample *)b)->cgid;

	return x < y ? -1 : x > y;
}

static struct bw_sample *sample_find(const struct bandwidth *b, uint64_t cgid)
{
	struct bw_sample key = { .cgid = cgid };

	return b->n ? bsearch(&key, b->s, b->n, sizeof(*b->s), sample_cmp) : NULL;
}

/* Write one service's entry if it differs (a queue keeps its state otherwise). */
static int entry_write(struct bandwidth *b, uint64_t cgid, const struct caelum_bw *want,
		       const char *name)
{
	int fd = bpf_map__fd(b->skel->maps.cm_bw), cfd = bpf_map__fd(b->skel->maps.cm_bw_count);
	struct caelum_bw have;
	size_t csz = sizeof(struct caelum_bw_count) * (size_t)b->ncpu;
	void *zero;
	int err = 0;

	if (bpf_map_lookup_elem(fd, &cgid, &have) || !entry_same(&have, want))
		if (bpf_map_update_elem(fd, &cgid, want, BPF_ANY))
			err = -errno;
	zero = calloc(1, csz);
	if (!err && !zero)
		err = -ENOMEM;
	/* counts survive a change of the limits; a new service starts at zero */
	if (!err && bpf_map_update_elem(cfd, &cgid, zero, BPF_NOEXIST) && errno != EEXIST)
		err = -errno;
	free(zero);
	if (err)
		p_err("failed to update cm_bw for service '%s': %s", name, strerror(-err));
	return err;
}

/* Entries whose cgroup is no longer a limited service, in both maps. */
static void entries_prune(struct bandwidth *b)
{
	int fds[2] = { bpf_map__fd(b->skel->maps.cm_bw), bpf_map__fd(b->skel->maps.cm_bw_count) };

	for (int m = 0; m < 2; m++) {
		uint64_t key, next, *prev = NULL;

		while (!bpf_map_get_next_key(fds[m], prev, &next)) {
			key = next;
			prev = &key;
			if (!sample_find(b, key)) {
				bpf_map_delete_elem(fds[m], &key);
				prev = NULL; /* restart: the deleted key cannot lead on */
			}
		}
	}
}

/* The samples of the new set of limited services, keeping those of services that stay. */
static void samples_adopt(struct bandwidth *b, struct bw_sample *v, size_t n)
{
	/* v has room for every service; keep what the limited ones need (most have none). */
	struct bw_sample *fit = realloc(v, (n + 1) * sizeof(*v));

	v = fit ? fit : v;
	if (n)
		qsort(v, n, sizeof(*v), sample_cmp);
	for (size_t i = 0; i < n; i++) {
		struct bw_sample *old = sample_find(b, v[i].cgid);

		if (old)
			v[i] = *old;
	}
	free(b->s);
	b->s = v;
	b->n = n;
}

static int bw_sync(void *self, const struct comp_env *env, const struct reg_state *st,
		   const struct reg_delta *delta)
{
	struct bandwidth *b = self;
	size_t n = 0, skipped = 0;
	struct bw_sample *v;
	int err = 0;

	if (delta && !delta->services) /* only services carry bandwidth */
		return 0;
	v = calloc(st->n_svcs + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_svcs; i++) {
		const struct reg_service *s = &st->svcs[i];
		struct svc_rt *rt = svcs_find(env->svcs, s->spec.name);
		struct caelum_bw want;
		int e;

		if (!bandwidth_entry(&s->spec.res, &want) || !rt || rt->cgid == CAELUM_CGID_NONE)
			continue;
		/* The programs look at the ancestor at the service level only. */
		if (rt->followed && rt->level != env->svcs->level) {
			skipped++;
			continue;
		}
		e = entry_write(b, rt->cgid, &want, s->spec.name);
		if (e) {
			err = err ? err : e;
			b->sync_errors++;
			continue;
		}
		v[n++].cgid = rt->cgid;
	}
	if (skipped != b->skipped && skipped)
		p_warn("bandwidth: %zu followed service(s) outside %s/* cannot be limited", skipped,
		       env->svcs->base);
	b->skipped = skipped;
	samples_adopt(b, v, n);
	entries_prune(b);
	return err;
}

/* cm_bw_count of cgid summed over the CPUs into out. */
static int counts_read(struct bandwidth *b, uint64_t cgid, struct caelum_bw_dir_count *out)
{
	struct caelum_bw_count *per = calloc((size_t)b->ncpu, sizeof(*per));
	int err = 0;

	memset(out, 0, sizeof(*out) * CAELUM_BW_DIRS);
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.cm_bw_count), &cgid, per)) {
		err = -errno;
		goto out;
	}
	for (int c = 0; c < b->ncpu; c++) {
		for (int d = 0; d < CAELUM_BW_DIRS; d++) {
			out[d].bytes += per[c].dir[d].bytes;
			out[d].packets += per[c].dir[d].packets;
			out[d].signalled += per[c].dir[d].signalled;
			out[d].dropped += per[c].dir[d].dropped;
			out[d].dropped_bytes += per[c].dir[d].dropped_bytes;
			out[d].over += per[c].dir[d].over;
		}
	}
out:
	free(per);
	return err;
}

int bandwidth_counts(void *self, uint64_t cgid, struct caelum_bw_dir_count out[CAELUM_BW_DIRS])
{
	return counts_read(self, cgid, out);
}

int bandwidth_canary_set(void *self, uint64_t cgid, int64_t egress_kbit)
{
	struct spec_resources r = { .egress_kbit = egress_kbit };
	struct bandwidth *b = self;
	struct caelum_bw want;
	void *zero;
	int err = 0;

	if (!bandwidth_entry(&r, &want))
		return -EINVAL;
	zero = calloc((size_t)b->ncpu, sizeof(struct caelum_bw_count));
	if (!zero)
		return -ENOMEM;
	/* counts first: the programs count from the first packet the entry limits */
	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.cm_bw_count), &cgid, zero, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(b->skel->maps.cm_bw), &cgid, &want, BPF_ANY))
		err = -errno;
	free(zero);
	return err;
}

void bandwidth_canary_clear(void *self, uint64_t cgid)
{
	struct bandwidth *b = self;

	if (sample_find(b, cgid)) /* a real service's entry: never ours to remove */
		return;
	bpf_map_delete_elem(bpf_map__fd(b->skel->maps.cm_bw), &cgid);
	bpf_map_delete_elem(bpf_map__fd(b->skel->maps.cm_bw_count), &cgid);
}

static void bw_tick(void *self, const struct comp_env *env, uint64_t now_ns)
{
	struct bandwidth *b = self;

	(void)env;
	if (now_ns - b->last_sample_ns < BANDWIDTH_SAMPLE_NS)
		return;
	b->last_sample_ns = now_ns;
	for (size_t i = 0; i < b->n; i++) {
		struct bw_sample *s = &b->s[i];
		struct caelum_bw_dir_count c[CAELUM_BW_DIRS];

		if (counts_read(b, s->cgid, c))
			continue;
		memcpy(s->prev, s->now, sizeof(s->prev));
		memcpy(s->now, c, sizeof(s->now));
		s->prev_t_ns = s->t_ns;
		s->t_ns = now_ns;
	}
}

static void bw_status(void *self, struct json_object *obj)
{
	struct json_object *maps = json_object_new_array();
	struct bandwidth *b = self;

	json_object_object_add(obj, "limited_services", json_object_new_uint64(b->n));
	json_object_object_add(obj, "sync_errors", json_object_new_uint64(b->sync_errors));
	json_object_object_add(obj, "unlimitable_services", json_object_new_uint64(b->skipped));
	json_object_object_add(obj, "maps", maps);
	json_object_array_add(maps, bpfinfo_map(bpf_map__fd(b->skel->maps.cm_bw), true));
	json_object_array_add(maps, bpfinfo_map(bpf_map__fd(b->skel->maps.cm_bw_count), true));
}

/* Mbit/s between the last two samples, or NULL before two. */
static struct json_object *rate_json(const struct bw_sample *s, int d)
{
	uint64_t dt = s->t_ns - s->prev_t_ns, db;

	if (!s->prev_t_ns || !dt || s->now[d].bytes < s->prev[d].bytes)
		return NULL;
	db = s->now[d].bytes - s->prev[d].bytes;
	return json_object_new_double((double)db * 8 * 1000 /
				      (double)dt); /* bit/ns*1000 = Mbit/s */
}

/* One direction: the reservation, the rate over the last sample, the counts as of now. */
static struct json_object *dir_json(const struct bw_sample *s, const struct caelum_bw_dir_count *c,
				    int d, int64_t kbit)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "reserved_mbit", kbit ? mbit_json(kbit) : NULL);
	json_object_object_add(o, "measured_mbit", s ? rate_json(s, d) : NULL);
	json_object_object_add(o, "bytes", json_object_new_uint64(c->bytes));
	json_object_object_add(o, "packets", json_object_new_uint64(c->packets));
	json_object_object_add(o, "signalled", json_object_new_uint64(c->signalled));
	json_object_object_add(o, "dropped", json_object_new_uint64(c->dropped));
	json_object_object_add(o, "dropped_bytes", json_object_new_uint64(c->dropped_bytes));
	json_object_object_add(o, "over", json_object_new_uint64(c->over));
	return o;
}

static void bw_service_json(void *self, const struct comp_env *env, const struct reg_service *s,
			    struct json_object *obj)
{
	struct bandwidth *b = self;
	struct svc_rt *rt = svcs_find(env->svcs, s->spec.name);
	const struct bw_sample *smp = rt ? sample_find(b, rt->cgid) : NULL;
	struct caelum_bw_dir_count c[CAELUM_BW_DIRS] = {};
	struct json_object *o;

	if (!b || (!s->spec.res.egress_kbit && !s->spec.res.ingress_kbit)) {
		json_object_object_add(obj, "bandwidth", NULL);
		return;
	}
	if (smp)
		counts_read(b, smp->cgid, c);
	o = json_object_new_object();
	json_object_object_add(
		o, "egress",
		dir_json(smp, &c[CAELUM_BW_EGRESS], CAELUM_BW_EGRESS, s->spec.res.egress_kbit));
	json_object_object_add(
		o, "ingress",
		dir_json(smp, &c[CAELUM_BW_INGRESS], CAELUM_BW_INGRESS, s->spec.res.ingress_kbit));
	json_object_object_add(o, "limited", json_object_new_boolean(smp != NULL));
	json_object_object_add(
		o, "sample_ns",
		json_object_new_uint64(smp && smp->prev_t_ns ? smp->t_ns - smp->prev_t_ns : 0));
	json_object_object_add(obj, "bandwidth", o);
}

const struct component_ops bandwidth_component = {
	.name = "bandwidth",
	.id = CAELUM_COMP_BANDWIDTH,
	.needs = NULL,
	.load = bw_load,
	.attach = bw_attach,
	.sync = bw_sync,
	.tick = bw_tick,
	.progs = comp_bpf_progs,
	.object = comp_bpf_object,
	.status = bw_status,
	.service_json = bw_service_json,
	.close = bw_close,
};
