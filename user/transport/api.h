/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The HTTP API on the dashboard listener, a transport (transport.h) run on caelumd's loop:
 * routes /api/v1/... to the shared handlers (handlers.c), renders /metrics (metrics.c) from
 * the status, resources and service.list documents, and feeds Server-Sent Event streams of
 * events. Errors map to statuses: usage 400, not permitted 403, not found 404, refused 422,
 * unavailable 503, other failures 500.
 */
#ifndef CAELUM_API_H
#define CAELUM_API_H

#include "transport.h"

/* Serves listener HTTP_DASH; off when the HTTP server or http.listen is off. */
extern const struct transport_ops api_transport;

#endif /* CAELUM_API_H */
