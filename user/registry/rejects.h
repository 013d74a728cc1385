/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Registry entries this caelumd cannot read: a value it cannot parse (written by hand with
 * etcdctl, or by a newer caelumd with a field this one does not know), a key it cannot place.
 * Such an entry is never applied, and never stops the rest: at a load it is left out, and on
 * the watch the entry it would replace stays in force (the last one this caelumd could read).
 * Each is kept here by key until a readable value or a delete of the key replaces it, and
 * shown in status (registry.rejected) and as a registry_entry_rejected event.
 */
#ifndef CAELUM_REJECTS_H
#define CAELUM_REJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

struct reject {
	char *key;
	uint64_t mod_rev; /* the revision of the unreadable value */
	char *reason;	  /* why, as the parser said it */
};

struct rejects {
	struct reject *v; /* in the order they came */
	size_t n, cap;
	uint64_t total; /* every rejection so far, replaced ones included */
};

/* Record key's rejection (replacing an older one of key). 0 or -ENOMEM. */
int rejects_put(struct rejects *r, const char *key, uint64_t mod_rev, const char *reason);
/* key is readable again or deleted: true when it had a record. */
bool rejects_drop(struct rejects *r, const char *key);
void rejects_clear(struct rejects *r);
/* The revision of key's unreadable value, or 0 when key has no record. */
uint64_t rejects_rev(const struct rejects *r, const char *key);
/* r becomes fresh (a load of the whole registry), fresh emptied; total counts only the
 * records r did not hold at the same revision. */
void rejects_replace(struct rejects *r, struct rejects *fresh);
/* [{"key", "mod_revision", "reason"}], the first max of them (new reference). */
struct json_object *rejects_json(const struct rejects *r, size_t max);

#endif /* CAELUM_REJECTS_H */
