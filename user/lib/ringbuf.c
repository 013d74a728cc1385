// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The ring buffer consumer that maps the ring only while records flow (ringbuf.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ringbuf.h"

struct ringbuf_consumer {
	int map_fd;
	ring_buffer_sample_fn fn;
	void *ctx;
	uint64_t idle_ns;
	struct ring_buffer *rb; /* NULL while unmapped */
	uint64_t last_record_ns;
	uint64_t maps;
	bool warned;
};

int ringbuf_consumer_open(struct ringbuf_consumer **out, int map_fd, ring_buffer_sample_fn fn,
			  void *ctx, uint64_t idle_ns)
{
	struct ringbuf_consumer *c;

	if (map_fd < 0 || !fn)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct ringbuf_consumer){
		.map_fd = map_fd, .fn = fn, .ctx = ctx, .idle_ns = idle_ns
	};
	*out = c;
	return 0;
}

int ringbuf_consumer_fd(const struct ringbuf_consumer *c)
{
	return c->map_fd;
}

static int map_ring(struct ringbuf_consumer *c)
{
	c->rb = ring_buffer__new(c->map_fd, c->fn, c->ctx, NULL);
	if (!c->rb) {
		int err = -errno;

		if (!c->warned)
			p_warn("failed to map the event ring buffer: %s (records wait in the ring)",
			       strerror(-err));
		c->warned = true;
		return err;
	}
	c->warned = false;
	c->maps++;
	return 0;
}

int ringbuf_consumer_drain(struct ringbuf_consumer *c, uint64_t now_ns)
{
	int n, err;

	if (!c->rb) {
		if ((err = map_ring(c)))
			return err;
		c->last_record_ns = now_ns; /* kept at least idle_ns once mapped */
	}
	n = ring_buffer__consume(c->rb);
	if (n > 0)
		c->last_record_ns = now_ns;
	return n;
}

void ringbuf_consumer_tick(struct ringbuf_consumer *c, uint64_t now_ns)
{
	if (!c->rb || !c->idle_ns || now_ns - c->last_record_ns < c->idle_ns)
		return;
	/* What arrived since the last drain is consumed before the pages go. */
	if (ring_buffer__consume(c->rb) > 0) {
		c->last_record_ns = now_ns;
		return;
	}
	ring_buffer__free(c->rb);
	c->rb = NULL;
}

bool ringbuf_consumer_mapped(const struct ringbuf_consumer *c)
{
	return c->rb;
}

uint64_t ringbuf_consumer_maps(const struct ringbuf_consumer *c)
{
	return c->maps;
}

void ringbuf_consumer_close(struct ringbuf_consumer *c)
{
	if (!c)
		return;
	ring_buffer__free(c->rb);
	free(c);
}
