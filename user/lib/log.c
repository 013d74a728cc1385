// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "log.h"

static const char *log_prog = "caelum";
static bool log_is_verbose;
static bool log_no_info;
static log_sink_fn log_sink;

void log_set_sink(log_sink_fn fn)
{
	log_sink = fn;
}

void log_init(const char *prog, bool verbose, bool quiet_info)
{
	log_prog = prog;
	log_is_verbose = verbose;
	log_no_info = quiet_info;
}

bool log_verbose(void)
{
	return log_is_verbose;
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const char *const prefix[] = {
		[LOG_LVL_ERR] = "error: ",
		[LOG_LVL_WARN] = "warning: ",
		[LOG_LVL_INFO] = "",
		[LOG_LVL_DEBUG] = "debug: ",
	};
	size_t len = strlen(fmt);
	va_list copy;

	if (log_sink && lvl != LOG_LVL_DEBUG) {
		char text[1024];

		va_copy(copy, ap);
		vsnprintf(text, sizeof(text), fmt, copy);
		va_end(copy);
		text[strcspn(text, "\n")] = '\0';
		log_sink(lvl, text);
	}
	if (lvl == LOG_LVL_DEBUG && !log_is_verbose)
		return;
	if (lvl == LOG_LVL_INFO && log_no_info)
		return;
	fprintf(stderr, "%s: %s", log_prog, prefix[lvl]);
	vfprintf(stderr, fmt, ap);
	if (!len || fmt[len - 1] != '\n')
		fputc('\n', stderr);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

static int log_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !log_is_verbose)
		return 0;
	log_vmsg(level == LIBBPF_WARN ? LOG_LVL_WARN : LOG_LVL_DEBUG, fmt, ap);
	return 0;
}

void log_libbpf_init(void)
{
	libbpf_set_print(log_libbpf_print);
}
