/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelum.json: parsed, validated, and resolved against the running system. */
#ifndef CAELUM_CONFIG_H
#define CAELUM_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caelum/common.h"
#include "capacity.h"
#include "jsonv.h"
#include "names.h"
#include "portrange.h"

#define CONFIG_DEFAULT_PATH "/etc/caelum/caelum.json"
#define CONFIG_MAX_MANAGED  1024
#define CONFIG_MAX_ORIGINS  16
#define CONFIG_MAX_HOSTS    16
#define CONFIG_MAX_PEERS    16
#define CONFIG_MAX_NETNS    15 /* opted-in network namespaces (CAELUM_MAX_NETNS - 2) */

/* An MCP peer caelumd pushes its events to. */
struct peer_cfg {
	char url[512];		   /* ws://, wss://, http:// or https://HOST[:PORT]/PATH */
	char token_file[PATH_MAX]; /* "" = no token */
	unsigned int queue_max;	   /* events held while the peer is away */
};

/* "registry": where the registry lives. The file backend (default) keeps it in state_dir;
 * the etcd backend shares it between hosts (user/registry/registry_etcd.c). */
#define CONFIG_MAX_ETCD 8
struct registry_cfg {
	bool etcd;			      /* "backend": "etcd" (else "file") */
	char endpoints[CONFIG_MAX_ETCD][256]; /* http[s]://HOST:PORT */
	size_t n_endpoints;
	char prefix[128];	      /* every key under it; default "caelum/" */
	char username[128];	      /* "" = no etcd authentication */
	char password_file[PATH_MAX]; /* the user's password, first line */
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX]; /* "tls" */
	unsigned int lease_ttl_s; /* this host's keys live this long without caelumd */
	unsigned int timeout_ms;  /* one etcd call, all endpoints together */
};

/* A listening socket of the embedded HTTP server ("http", "mcp"). */
struct listen_cfg {
	bool enabled;
	char spec[128];			    /* as written: "127.0.0.1:8090", "[::1]:8090", "off" */
	char addr[64];			    /* numeric address to bind */
	uint16_t port;			    /* 0 = the kernel picks (tests) */
	bool loopback;			    /* the address is a loopback address */
	char cert[PATH_MAX], key[PATH_MAX]; /* TLS when both are set */
	char origins[CONFIG_MAX_ORIGINS][128]; /* extra allowed Origin values */
	size_t n_origins;
	/* extra names the Host header may carry ("dash.example.com", "*.example.com"), besides
	 * the loopback, the listener's own addresses and the machine's name (http_auth.h) */
	char hosts[CONFIG_MAX_HOSTS][256];
	size_t n_hosts;
};

struct config {
	char path[PATH_MAX]; /* the file it came from */
	char host[256];
	int mode;			/* CAELUM_MODE_AUDIT or CAELUM_MODE_ENFORCE */
	int comp_mode[CAELUM_COMP_MAX]; /* resolved per component */
	char bpffs[PATH_MAX];
	char state_dir[PATH_MAX];
	char runtime_dir[PATH_MAX];
	char services_dir[PATH_MAX];
	char databases_dir[PATH_MAX];
	unsigned int verify_interval_s; /* self-verification period; 0 = only on request */
	uint16_t verify_port;		/* canary reserved port of the self-verification */
	char cgroup_root_cfg[PATH_MAX]; /* as written; "" when absent */
	struct port_range managed[CONFIG_MAX_MANAGED];
	size_t n_managed;
	size_t journal_max_bytes;
	unsigned int journal_keep;
	unsigned int ringbuf_bytes; /* size of cm_events: a power of two, >= 4096 */
	struct capacity cap;
	struct listen_cfg http; /* dashboard, REST API, /metrics */
	bool bpf_stats; /* hold BPF_ENABLE_STATS: programs' run time and count are measured */
	struct listen_cfg mcp; /* MCP: Streamable HTTP and WebSocket at /mcp */
	bool mcp_auth_none;    /* "auth": "none" (loopback listener only) */
	struct peer_cfg peers[CONFIG_MAX_PEERS];
	size_t n_peers;
	/* "mcp": {"peers": "auto"}: the peers are the other hosts of the machine registry (etcd
	 * backend), each reached at its mcp_url with the token in peers_token_file ("" = none). */
	bool peers_auto;
	char peers_token_file[PATH_MAX];
	/* "network_namespaces": namespace files whose binds and connects are the host's too */
	char netns[CONFIG_MAX_NETNS][PATH_MAX];
	size_t n_netns;

	struct registry_cfg registry;

	/* Resolved by config_resolve(). */
	uint64_t netns_cookie[CONFIG_MAX_NETNS]; /* of netns[i] (user/enforce/netns.c) */
	char cg2_mount[PATH_MAX];		 /* the cgroup2 mount point */
	char cgroup_root[PATH_MAX];		 /* canonical path of the attach point */
	unsigned int root_level;		 /* cgroup level of cgroup_root (mount = 0) */
};

/* The path to use: explicit (-c), else $CAELUM_CONFIG, else CONFIG_DEFAULT_PATH. */
const char *config_path(const char *explicit_path);
/* Parse and validate the file; every problem is added to e. 0 or -EINVAL/-errno. */
int config_load(const char *path, struct config *cfg, struct verr *e);
int config_from_json(struct json_object *root, const char *file, struct config *cfg,
		     struct verr *e);
/* Check against the system: cgroup2 mount and cgroup_root. */
int config_resolve(struct config *cfg, struct verr *e);

const char *mode_name(int mode);
int mode_parse(const char *s);
const char *component_name(int comp);
int component_parse(const char *s);
/* Number of components this build knows (ports, ...). */
int component_count(void);

/* Parse "HOST:PORT" / "[V6]:PORT" / "off" into l (addr, port, loopback). */
int listen_parse(const char *spec, struct listen_cfg *l, char *why, size_t why_len);

struct json_object;
/* Parse a listener object into l (keys: listen, cert, key, origins, hosts, plus extra_keys, which
 * the caller handles). */
void config_parse_listener(struct json_object *obj, const char *file, const char *name,
			   struct listen_cfg *l, const char *const *extra_keys, struct verr *e);

/* "registry" (config_registry.c). */
void config_parse_registry(struct json_object *v, const char *file, struct registry_cfg *r,
			   struct verr *e);

/* <runtime_dir>/caelumd.sock */
void config_socket_path(const struct config *cfg, char *buf, size_t len);

#endif /* CAELUM_CONFIG_H */
