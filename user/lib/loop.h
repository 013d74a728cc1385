/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* caelumd's single-threaded event loop: epoll, one callback per fd. */
#ifndef CAELUM_LOOP_H
#define CAELUM_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
typedef void (*loop_fn)(void *ctx, uint32_t events);

int loop_new(struct loop **out);
void loop_free(struct loop *l);
/* Watch fd for events (EPOLLIN/EPOLLOUT); the handle stays valid until loop_del. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *ctx);
int loop_mod(struct loop *l, int fd, uint32_t events);
void loop_del(struct loop *l, int fd);
/* Run until loop_stop(); timeout_ms bounds each wait so that tick runs periodically. */
int loop_run(struct loop *l, int timeout_ms, void (*tick)(void *ctx), void *tick_ctx);
void loop_stop(struct loop *l);

#endif /* CAELUM_LOOP_H */
