/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Messages to stderr: one prefix per level, p_debug only with -v. */
#ifndef CAELUM_LOG_H
#define CAELUM_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *prog, bool verbose, bool quiet_info);
bool log_verbose(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Also hand every message but debug ones to fn (caelumd forwards them to MCP clients). */
typedef void (*log_sink_fn)(enum log_level lvl, const char *text);
void log_set_sink(log_sink_fn fn);
/* Route libbpf's own messages through log_msg (its debug output only with -v). */
void log_libbpf_init(void);

#define p_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define p_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define p_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define p_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* CAELUM_LOG_H */
