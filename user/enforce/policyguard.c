// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>

#include "events.h"
#include "log.h"
#include "policyguard.h"
#include "ports_user.h"

bool policyguard_diff(const struct policy_guard *g, uint32_t table_id,
		      const struct caelum_config *cfg, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!g->armed)
		return false;
	if (table_id != g->table_id) {
		snprintf(buf, len, "cm_port_outer[0] holds map id %u, caelumd applied %u", table_id,
			 g->table_id);
		return true;
	}
	for (int i = 0; i < CAELUM_COMP_MAX; i++) {
		if (cfg->mode[i] == g->cfg.mode[i])
			continue;
		snprintf(buf, len, "cm_config mode[%d] is %u, caelumd applied %u", i, cfg->mode[i],
			 g->cfg.mode[i]);
		return true;
	}
	if (memcmp(cfg, &g->cfg, sizeof(*cfg))) {
		snprintf(buf, len, "cm_config svc_level is %u, caelumd applied %u", cfg->svc_level,
			 g->cfg.svc_level);
		return true;
	}
	return false;
}

/* What the kernel holds now: the inner table's id (a map-in-map lookup from user space
 * returns the id, kernel/bpf/map_in_map.c) and cm_config. */
static int kernel_read(struct ports *ports, uint32_t *table_id, struct caelum_config *cfg)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(ports_map_fd(ports, "cm_port_outer"), &zero, table_id))
		return -errno;
	if (bpf_map_lookup_elem(ports_map_fd(ports, "cm_config"), &zero, cfg))
		return -errno;
	return 0;
}

void policyguard_record(struct policy_guard *g, struct ports *ports)
{
	int err = kernel_read(ports, &g->table_id, &g->cfg);

	g->armed = !err;
	if (err)
		p_warn("failed to read back the applied policy: %s (foreign writes go unnoticed "
		       "until the next apply)",
		       strerror(-err));
}

static void emit(struct events *ev, const char *problem, int err)
{
	struct json_object *e = event_new(ev, "integrity_repaired", err ? "failed" : "repaired");

	json_object_object_add(e, "object", json_object_new_string("port policy"));
	json_object_object_add(e, "problem", json_object_new_string(problem));
	if (err)
		json_object_object_add(e, "error", json_object_new_string(strerror(-err)));
	events_emit(ev, e);
	if (err)
		p_err("integrity: port policy: %s; repair failed: %s", problem, strerror(-err));
	else
		p_warn("integrity: port policy: %s (another writer?); applied again", problem);
}

void policyguard_check(struct policy_guard *g, struct ports *ports, struct events *ev,
		       int (*apply)(void *ctx, const char *why), void *ctx)
{
	struct caelum_config cfg;
	uint32_t table_id = 0;
	char problem[160];
	int err;

	err = kernel_read(ports, &table_id, &cfg);
	if (err == -ENOENT) { /* slot emptied */
		table_id = 0;
		memset(&cfg, 0, sizeof(cfg));
		err = 0;
	}
	if (err || !policyguard_diff(g, table_id, &cfg, problem, sizeof(problem)))
		return;
	/* The tables are not what was recorded: read them back and rewrite, not a diff. */
	ports_invalidate(ports);
	err = apply(ctx, "repair");
	emit(ev, problem, err);
}
