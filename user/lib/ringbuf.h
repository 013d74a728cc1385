/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A consumer of one BPF ring buffer (BPF_MAP_TYPE_RINGBUF) that maps it only while records
 * flow.
 *
 * Why: the kernel maps every page of a ring when it is mmap'd (kernel/bpf/ringbuf.c,
 * ringbuf_map_mmap_user() -> remap_vmalloc_range()), and libbpf maps the data area twice so
 * that a record that wraps reads as one piece (ring_buffer__add()). A 4 MiB ring therefore
 * costs 8 MiB of the consumer's resident set for as long as it is mapped, though its pages are
 * the kernel's either way. Idle, caelumd has no use for them.
 *
 * How: the map fd itself is polled (bpf_map_poll() -> ringbuf_map_poll_kern(): EPOLLIN while
 * unconsumed data exists; a producer wakes the waiters when the consumer had caught up). On
 * the first readiness the ring is mapped with libbpf's ring_buffer__new() and drained; after
 * idle_ns without a record it is unmapped again (ring_buffer__free()). The consumer position
 * lives in the ring's own first page, so nothing is lost or read twice across a remap.
 */
#ifndef CAELUM_RINGBUF_H
#define CAELUM_RINGBUF_H

#include <stdint.h>
#include <bpf/libbpf.h>

struct ringbuf_consumer;

/*
 * A consumer of the ring map_fd (not taken: the caller closes it after
 * ringbuf_consumer_close()); fn(ctx, data, size) is called for each record, as
 * ring_buffer__new() calls it. idle_ns: how long after the last record the ring is unmapped
 * (0: never). 0 or -errno; nothing is mapped yet.
 */
int ringbuf_consumer_open(struct ringbuf_consumer **out, int map_fd, ring_buffer_sample_fn fn,
			  void *ctx, uint64_t idle_ns);

/* The fd to poll for EPOLLIN (the map's own fd: valid mapped or not). */
int ringbuf_consumer_fd(const struct ringbuf_consumer *c);

/*
 * Consume every record available now, mapping the ring first if it is not mapped. now_ns:
 * CLOCK_MONOTONIC. The number of records consumed, or -errno (a failed map is retried on the
 * next call; the records wait in the ring meanwhile).
 */
int ringbuf_consumer_drain(struct ringbuf_consumer *c, uint64_t now_ns);

/* Unmap the ring if it has been idle for idle_ns by now_ns (call it periodically). */
void ringbuf_consumer_tick(struct ringbuf_consumer *c, uint64_t now_ns);

/* Whether the ring is mapped now, and how many times it was mapped (for status). */
bool ringbuf_consumer_mapped(const struct ringbuf_consumer *c);
uint64_t ringbuf_consumer_maps(const struct ringbuf_consumer *c);

void ringbuf_consumer_close(struct ringbuf_consumer *c);

#endif
