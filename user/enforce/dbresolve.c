// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbresolve.h"

#define DBRESOLVE_MAX 256 /* lookups in flight at once */

struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char host[DB_HOST_MAX + 1];
	char port[8];
	uint16_t port_num;
	char name[DB_NAME_MAX + 1];
	uint32_t trigger;
	struct lookup *next;
};

struct dbresolve {
	struct lookup *head;
	size_t n;
};

int dbresolve_new(struct dbresolve **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

bool dbresolve_pending(const struct dbresolve *r, const char *name)
{
	for (const struct lookup *l = r->head; l; l = l->next)
		if (!strcmp(l->name, name))
			return true;
	return false;
}

int dbresolve_start(struct dbresolve *r, const char *name, const char *host, uint16_t port,
		    uint32_t trigger)
{
	struct gaicb *list[1];
	struct sigevent sev = { .sigev_notify = SIGEV_NONE };
	struct lookup *l;
	int rc;

	if (dbresolve_pending(r, name))
		return -EALREADY;
	if (r->n >= DBRESOLVE_MAX)
		return -EBUSY;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	snprintf(l->host, sizeof(l->host), "%s", host);
	snprintf(l->port, sizeof(l->port), "%u", port);
	l->port_num = port;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->trigger = trigger;
	l->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	l->cb = (struct gaicb){ .ar_name = l->host,
				.ar_service = l->port,
				.ar_request = &l->hints };
	list[0] = &l->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (rc) {
		free(l);
		return rc == EAI_AGAIN ? -EAGAIN : -ENOMEM;
	}
	l->next = r->head;
	r->head = l;
	r->n++;
	return 0;
}

static void result_fill(struct lookup *l, int rc, struct dbresolve_result *res)
{
	memset(res, 0, sizeof(*res));
	snprintf(res->name, sizeof(res->name), "%s", l->name);
	snprintf(res->host, sizeof(res->host), "%s", l->host);
	res->port = l->port_num;
	res->trigger = l->trigger;
	if (rc) {
		res->err = -EHOSTUNREACH;
		snprintf(res->why, sizeof(res->why), "cannot resolve \"%s\": %s", l->host,
			 gai_strerror(rc));
		return;
	}
	db_addrs_from_ai(l->cb.ar_result, res->addrs, DB_MAX_ADDRS, &res->n);
	if (!res->n) {
		res->err = -EHOSTUNREACH;
		snprintf(res->why, sizeof(res->why), "cannot resolve \"%s\": no addresses",
			 l->host);
	}
}

void dbresolve_poll(struct dbresolve *r, dbresolve_fn fn, void *ctx)
{
	struct lookup **pp = &r->head;

	while (*pp) {
		struct lookup *l = *pp;
		struct dbresolve_result *res;
		int rc = gai_error(&l->cb);

		if (rc == EAI_INPROGRESS) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		r->n--;
		res = malloc(sizeof(*res));
		if (res) {
			result_fill(l, rc, res);
			fn(ctx, res);
			free(res);
		}
		if (l->cb.ar_result)
			freeaddrinfo(l->cb.ar_result);
		free(l);
	}
}

void dbresolve_free(struct dbresolve *r)
{
	if (!r)
		return;
	while (r->head) {
		struct lookup *l = r->head;

		if (gai_cancel(&l->cb) == EAI_NOTCANCELED) {
			const struct gaicb *list[1] = { &l->cb };

			while (gai_error(&l->cb) == EAI_INPROGRESS)
				gai_suspend(list, 1, NULL);
		}
		r->head = l->next;
		if (l->cb.ar_result)
			freeaddrinfo(l->cb.ar_result);
		free(l);
	}
	free(r);
}
