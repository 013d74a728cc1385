// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The two port policy tables of bpf/ports.bpf.c and their owner indexes, kept equal to the
 * model (semantics and invariants: include/caelum/ports.h, docs/ARCHITECTURE.md).
 *
 * Both tables and cm_port_owners are BPF_F_MMAPABLE arrays: an entry is one aligned 8-byte
 * word written with one store, so a program's single load sees it before or after, never
 * torn. Both tables hold the same words between calls, so what they hold is read back from the
 * one in slot 0 (no copy is kept here: it was 2 MiB); the owner indexes
 * are handed out per cgroup id, counted by the entries that name them, written to
 * cm_port_owners before the first entry that names them, and reused only after a flip of
 * cm_port_outer[0] (an RCU grace period: kernel/bpf/syscall.c maybe_wait_bpf_programs()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "log.h"
#include "port_tables.h"

#define SLOTS	 CAELUM_PORT_SLOTS
#define OWNERS	 CAELUM_MAX_PORT_OWNERS
#define HASH_CAP (2 * OWNERS) /* power of two, load <= 1/2 */

static const char *const table_name[2] = { "cm_port_a", "cm_port_b" };

struct port_tables {
	int outer_fd, table_fd[2], owners_fd;
	uint64_t *table[2]; /* mmap'd entries (struct caelum_port_entry, one word each) */
	uint64_t *owners;   /* mmap'd cm_port_owners: index -> cgroup id */
	int active;	    /* the table in cm_port_outer[0], -1 none of ours */
	bool valid;
	/* owner indexes */
	uint32_t *refs; /* entries naming each index */
	uint64_t *hkey; /* cgid -> index, open addressing; 0 = empty */
	uint32_t *hval;
	uint32_t *free_idx, *quarantine;
	size_t n_free, n_quarantine;
	size_t n_entries, n_reserved, n_managed;
	uint64_t flips, writes;
};

/* ---- owner indexes ---- */

static size_t hslot(uint64_t cgid)
{
	return (size_t)((cgid * 0x9E3779B97F4A7C15ULL) >> 32) & (HASH_CAP - 1);
}

static uint32_t owner_find(const struct port_tables *t, uint64_t cgid)
{
	for (size_t i = hslot(cgid);; i = (i + 1) & (HASH_CAP - 1)) {
		if (!t->hkey[i])
			return CAELUM_PORT_OWNER_NONE;
		if (t->hkey[i] == cgid)
			return t->hval[i];
	}
}

static void hash_put(struct port_tables *t, uint64_t cgid, uint32_t idx)
{
	size_t i = hslot(cgid);

	while (t->hkey[i] && t->hkey[i] != cgid)
		i = (i + 1) & (HASH_CAP - 1);
	t->hkey[i] = cgid;
	t->hval[i] = idx;
}

/* Remove cgid, moving later members of its run back (no tombstones). */
static void hash_del(struct port_tables *t, uint64_t cgid)
{
	size_t i = hslot(cgid), j;

	while (t->hkey[i] != cgid) {
		if (!t->hkey[i])
			return;
		i = (i + 1) & (HASH_CAP - 1);
	}
	t->hkey[i] = 0;
	for (j = (i + 1) & (HASH_CAP - 1); t->hkey[j]; j = (j + 1) & (HASH_CAP - 1)) {
		uint64_t k = t->hkey[j];
		uint32_t v = t->hval[j];

		t->hkey[j] = 0;
		hash_put(t, k, v);
	}
}

/* A grace period: programs that could hold a quarantined index have finished. */
static void quarantine_release(struct port_tables *t)
{
	memcpy(t->free_idx + t->n_free, t->quarantine, t->n_quarantine * sizeof(*t->quarantine));
	t->n_free += t->n_quarantine;
	t->n_quarantine = 0;
}

static int table_flip(struct port_tables *t, int idx)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(t->outer_fd, &zero, &t->table_fd[idx], BPF_ANY)) {
		p_err("failed to swap in port table '%s': %s", table_name[idx], strerror(errno));
		return -errno;
	}
	t->active = idx;
	t->flips++;
	quarantine_release(t);
	return 0;
}

/* The index of cgid, handed out (and written to cm_port_owners) if it has none. */
static int owner_get(struct port_tables *t, uint64_t cgid, uint32_t *out)
{
	uint32_t idx = owner_find(t, cgid);

	if (idx) {
		*out = idx;
		return 0;
	}
	if (!t->n_free && t->n_quarantine && t->active >= 0) {
		int err = table_flip(t, t->active); /* the same table: only the grace period */

		if (err)
			return err;
	}
	if (!t->n_free) {
		p_err("no free port owner index (%d in use)", OWNERS - 1);
		return -ENOSPC;
	}
	idx = t->free_idx[--t->n_free];
	__atomic_store_n(&t->owners[idx], cgid, __ATOMIC_RELEASE);
	hash_put(t, cgid, idx);
	*out = idx;
	return 0;
}

static bool names_owner(const struct caelum_port_rule *r)
{
	return (r->flags & CAELUM_PORT_F_RESERVED) && r->owner_cgid != CAELUM_CGID_NONE;
}

/* An entry stops naming its owner: the index goes to quarantine at zero. */
static void owner_put(struct port_tables *t, const struct caelum_port_rule *r)
{
	uint32_t idx;

	if (!names_owner(r))
		return;
	idx = owner_find(t, r->owner_cgid);
	if (!idx || !t->refs[idx] || --t->refs[idx])
		return;
	hash_del(t, r->owner_cgid);
	t->quarantine[t->n_quarantine++] = idx;
}

/* ---- entries ---- */

static int entry_of(struct port_tables *t, const struct caelum_port_rule *r, uint64_t *word)
{
	struct caelum_port_entry e = { .level = r->owner_level, .flags = r->flags };
	int err = 0;

	if (names_owner(r))
		err = owner_get(t, r->owner_cgid, &e.owner);
	memcpy(word, &e, sizeof(e));
	return err;
}

static void entry_rule(const struct port_tables *t, uint64_t word, struct caelum_port_rule *r)
{
	struct caelum_port_entry e;

	memcpy(&e, &word, sizeof(e));
	memset(r, 0, sizeof(*r));
	if (!e.flags)
		return;
	r->flags = e.flags;
	r->owner_level = e.level;
	r->owner_cgid = e.owner < OWNERS ? __atomic_load_n(&t->owners[e.owner], __ATOMIC_ACQUIRE)
					 : CAELUM_CGID_NONE;
}

static bool rule_eq(const struct caelum_port_rule *a, const struct caelum_port_rule *b)
{
	if (!a->flags && !b->flags)
		return true;
	return a->flags == b->flags && a->owner_cgid == b->owner_cgid &&
	       a->owner_level == b->owner_level;
}

static void store(uint64_t *table, uint32_t slot, uint64_t word)
{
	__atomic_store_n(&table[slot], word, __ATOMIC_RELEASE);
}

static void tally(struct port_tables *t, const struct caelum_port_rule *r, int sign)
{
	t->n_entries += (size_t)(sign * !!r->flags);
	t->n_reserved += (size_t)(sign * !!(r->flags & CAELUM_PORT_F_RESERVED));
	t->n_managed += (size_t)(sign * !!(r->flags & CAELUM_PORT_F_MANAGED));
}

/* What the tables hold at slot (the one in slot 0 is read: both are equal between calls). */
static void rule_at(const struct port_tables *t, uint32_t slot, struct caelum_port_rule *r)
{
	if (t->active < 0) {
		memset(r, 0, sizeof(*r));
		return;
	}
	entry_rule(t, __atomic_load_n(&t->table[t->active][slot], __ATOMIC_ACQUIRE), r);
}

/* old[i] became rules[i]: counts and owner references follow. */
static void account(struct port_tables *t, const struct caelum_port_rule *old,
		    const struct caelum_port_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (names_owner(&rules[i]))
			t->refs[owner_find(t, rules[i].owner_cgid)]++;
		owner_put(t, &old[i]);
		tally(t, &old[i], -1);
		tally(t, &rules[i], 1);
	}
	t->writes += n;
}

int port_tables_update(struct port_tables *t, const uint32_t *slots,
		       const struct caelum_port_rule *rules, size_t n)
{
	struct caelum_port_rule *old;
	uint64_t *words;
	int standby, err = 0;

	if (!t->valid)
		return -ESTALE;
	if (!n)
		return 0;
	words = calloc(n, sizeof(*words));
	old = calloc(n, sizeof(*old));
	if (!words || !old) {
		err = -ENOMEM;
		goto out;
	}
	/* Before any index is handed out or any word written: what the owners resolve to now. */
	for (size_t i = 0; i < n; i++)
		rule_at(t, slots[i], &old[i]);
	for (size_t i = 0; i < n && !err; i++)
		err = entry_of(t, &rules[i], &words[i]);
	if (err)
		goto out;
	standby = !t->active;
	for (size_t i = 0; i < n; i++)
		store(t->table[standby], slots[i], words[i]);
	/* One word: the store into the active table is the instant it takes effect. Several:
	 * the programs move to the standby table at once, then the other one follows. */
	if (n > 1)
		err = table_flip(t, standby);
	if (err) {
		t->valid = false;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		store(t->table[n > 1 ? !t->active : t->active], slots[i], words[i]);
	account(t, old, rules, n);
out:
	free(old);
	free(words);
	return err;
}

/* ---- full sync ---- */

/* Slots where table idx differs from want, with want's words; owners of want handed out. */
static int table_diff(struct port_tables *t, int idx, const struct caelum_port_rule *want,
		      uint32_t *slots, uint64_t *words, size_t *n)
{
	size_t k = 0;
	int err = 0;

	for (uint32_t s = 0; s < SLOTS && !err; s++) {
		struct caelum_port_rule cur;

		entry_rule(t, __atomic_load_n(&t->table[idx][s], __ATOMIC_ACQUIRE), &cur);
		if (rule_eq(&cur, &want[s]))
			continue;
		slots[k] = s;
		err = entry_of(t, &want[s], &words[k++]);
	}
	*n = k;
	return err;
}

/* Which table slot 0 holds now: 0, 1, or -1 (none of ours: first start, older version). */
static int table_active(const struct port_tables *t)
{
	__u32 zero = 0, id;

	if (bpf_map_lookup_elem(t->outer_fd, &zero, &id))
		return -1;
	for (int i = 0; i < 2; i++) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(t->table_fd[i], &info, &len) && info.id == id)
			return i;
	}
	return -1;
}

/* Owner indexes as the live table uses them: kept (their cgroup ids are what the programs
 * resolve now); every other index is free. */
static void owners_adopt(struct port_tables *t, int live)
{
	bool *used = calloc(OWNERS, sizeof(*used));

	memset(t->hkey, 0, HASH_CAP * sizeof(*t->hkey));
	memset(t->refs, 0, OWNERS * sizeof(*t->refs));
	t->n_free = t->n_quarantine = 0;
	for (uint32_t s = 0; used && live >= 0 && s < SLOTS; s++) {
		struct caelum_port_entry e;
		uint64_t word = t->table[live][s];

		memcpy(&e, &word, sizeof(e));
		if (e.flags && e.owner && e.owner < OWNERS && t->owners[e.owner]) {
			used[e.owner] = true;
			hash_put(t, t->owners[e.owner], e.owner);
		}
	}
	for (uint32_t i = OWNERS - 1; i > 0; i--)
		if (!used || !used[i])
			t->free_idx[t->n_free++] = i;
	free(used);
}

/*
 * Both tables equal want, whatever they held (startup, after a failed update): the standby
 * is rewritten; if the active one differs, slot 0 flips to the standby and the old active
 * is rewritten after. A table in slot 0 is never edited here.
 */
int port_tables_install(struct port_tables *t, const struct caelum_port_rule *want)
{
	uint32_t *slots = calloc(SLOTS, sizeof(*slots));
	uint64_t *words = calloc(SLOTS, sizeof(*words));
	int active = table_active(t), standby = active == 0 ? 1 : 0, err;
	size_t n = 0;

	if (!slots || !words) {
		err = -ENOMEM;
		goto out;
	}
	t->active = active;
	owners_adopt(t, active);
	err = table_diff(t, standby, want, slots, words, &n);
	for (size_t i = 0; !err && i < n; i++)
		store(t->table[standby], slots[i], words[i]);
	if (!err && active >= 0)
		err = table_diff(t, active, want, slots, words, &n);
	if (!err && (active < 0 || n))
		err = table_flip(t, standby);
	if (!err)
		err = table_diff(t, !t->active, want, slots, words, &n);
	for (size_t i = 0; !err && i < n; i++)
		store(t->table[!t->active], slots[i], words[i]);
	if (err)
		goto out;
	/* The counts and owner references, from scratch. */
	memset(t->refs, 0, OWNERS * sizeof(*t->refs));
	t->n_entries = t->n_reserved = t->n_managed = 0;
	for (uint32_t s = 0; s < SLOTS; s++) {
		tally(t, &want[s], 1);
		if (names_owner(&want[s]))
			t->refs[owner_find(t, want[s].owner_cgid)]++;
	}
	/* Indexes only the old live table named: free after the next grace period. */
	for (uint32_t i = 1; i < OWNERS; i++) {
		if (t->refs[i] || !t->owners[i] || owner_find(t, t->owners[i]) != i)
			continue;
		hash_del(t, t->owners[i]);
		t->quarantine[t->n_quarantine++] = i;
	}
	t->valid = true;
out:
	free(slots);
	free(words);
	return err;
}

/* ---- life ---- */

static void *map_mmap(int fd, size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

int port_tables_open(struct port_tables **out, int outer_fd, const int table_fd[2], int owners_fd)
{
	struct port_tables *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->outer_fd = outer_fd;
	t->owners_fd = owners_fd;
	t->active = -1;
	for (int i = 0; i < 2; i++) {
		t->table_fd[i] = table_fd[i];
		t->table[i] = map_mmap(table_fd[i], SLOTS * sizeof(uint64_t));
	}
	t->owners = map_mmap(owners_fd, OWNERS * sizeof(uint64_t));
	t->refs = calloc(OWNERS, sizeof(*t->refs));
	t->hkey = calloc(HASH_CAP, sizeof(*t->hkey));
	t->hval = calloc(HASH_CAP, sizeof(*t->hval));
	t->free_idx = calloc(OWNERS, sizeof(*t->free_idx));
	t->quarantine = calloc(OWNERS, sizeof(*t->quarantine));
	if (!t->table[0] || !t->table[1] || !t->owners) {
		p_err("failed to map the port tables: %s", strerror(errno));
		port_tables_close(t);
		return -errno;
	}
	if (!t->refs || !t->hkey || !t->hval || !t->free_idx || !t->quarantine) {
		port_tables_close(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void port_tables_close(struct port_tables *t)
{
	if (!t)
		return;
	for (int i = 0; i < 2; i++)
		if (t->table[i])
			munmap(t->table[i], SLOTS * sizeof(uint64_t));
	if (t->owners)
		munmap(t->owners, OWNERS * sizeof(uint64_t));
	free(t->refs);
	free(t->hkey);
	free(t->hval);
	free(t->free_idx);
	free(t->quarantine);
	free(t);
}

bool port_tables_valid(const struct port_tables *t)
{
	return t->valid;
}

void port_tables_invalidate(struct port_tables *t)
{
	t->valid = false;
}

void port_tables_rule(const struct port_tables *t, uint32_t slot, struct caelum_port_rule *out)
{
	rule_at(t, slot, out);
}

void port_tables_stats(const struct port_tables *t, struct port_tables_stats *st)
{
	*st = (struct port_tables_stats){ .entries = t->n_entries,
					  .reserved = t->n_reserved,
					  .managed = t->n_managed,
					  .flips = t->flips,
					  .writes = t->writes,
					  .active = t->active };
}
