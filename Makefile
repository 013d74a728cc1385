# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make run     install missing packages, build, run caelumd on deploy/caelum.json
# make test    install missing packages, build, run every test (root)
# make test SAN=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
# make bench   benchmarks (ratios against a baseline measured in the same process)

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
PYTHON ?= python3
CONFIG ?= deploy/caelum.json

# Debian packages: build tools, libraries, and what the tests use.
DEB_PKGS := gcc make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libjson-c-dev \
	    libcmocka-dev libcurl4-openssl-dev libwebsockets-dev libssl-dev pkg-config python3 iproute2 \
	    postgresql redis-server mariadb-server openssl chromium

ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD := build
SANFLAGS :=
endif
GEN := build/gen

# -Wno-format-truncation: paths are bounded by PATH_MAX and truncation is what we want;
# gcc's heuristic cannot see that and flags every snprintf into a path buffer.
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation \
	  -Iinclude -Iuser -I$(GEN) $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS := $(shell pkg-config --libs libbpf json-c zlib libcurl libwebsockets libcrypto 2>/dev/null || \
		    echo -lbpf -lelf -lz -ljson-c -lcurl -lwebsockets -lcrypto) -lm

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror \
	      -Ivmlinux -Iinclude -Ibpf

BPF_PROGS := ports agg devices tasks cpu connect cgfollow
BPF_OBJS := $(BPF_PROGS:%=$(GEN)/%.bpf.o)
SKELS := $(BPF_PROGS:%=$(GEN)/%.skel.h)

COMMON := log jsonv portrange config netns reserved_ports capacity cgroup fsutil spec bpfinfo rpc_client dbprobe spec_ext dbspec probe loop fingerprint
DAEMON := caelumd loop services ports agg devices tasks cpu connect databases credentials health \
	  verify api http http_auth metrics token assets assets_data handlers_view mcp mcp_http schema peers \
	  resources handlers handlers_run handlers_db status rpc registry registry_admit \
	  registry_file journal \
	  sockets bpfpin events pinlock policyguard cgfollow $(COMMON)
CTL := caelumctl ctl_registry ctl_events ctl_run ctl_validate ctl_db ctl_bpf ctl_mcp events journal \
	$(COMMON)

DAEMON_OBJS := $(sort $(DAEMON:%=$(BUILD)/obj/%.o))
CTL_OBJS := $(sort $(CTL:%=$(BUILD)/obj/%.o))
LIB_OBJS := $(sort $(filter-out $(BUILD)/obj/caelumd.o $(BUILD)/obj/caelumctl.o, \
			$(DAEMON_OBJS) $(CTL_OBJS)))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.SECONDARY: $(BPF_OBJS) $(SKELS)
.PHONY: all deps vmlinux run test unit integration bench install clean format

all: $(BUILD)/caelumd $(BUILD)/caelumctl

# The test suite starts its own PostgreSQL, Redis and MariaDB on loopback: their packages are
# installed with a policy-rc.d that keeps the system services from starting.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: missing:$$missing (run as root)" >&2; exit 1; fi; \
		echo "deps: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; prc=/usr/sbin/policy-rc.d; made=; \
		if [ ! -e $$prc ]; then printf '#!/bin/sh\nexit 101\n' > $$prc; chmod 755 $$prc; made=1; fi; \
		apt-get install -y -q --no-install-recommends $$missing \
			|| { apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; }; \
		rc=$$?; [ -z "$$made" ] || rm -f $$prc; [ $$rc = 0 ] || exit $$rc; \
	fi; \
	if ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" != 0 ]; then echo "deps: npm missing (run as root)" >&2; exit 1; fi; \
		echo "deps: installing nodejs npm"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; \
	fi

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h.tmp
	mv vmlinux/vmlinux.h.tmp vmlinux/vmlinux.h

$(GEN)/%.bpf.o: bpf/%.bpf.c bpf/*.bpf.h include/caelum/*.h vmlinux/vmlinux.h | $(GEN)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(GEN)/%.skel.h: $(GEN)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: user/%.c user/*.h include/caelum/*.h $(SKELS) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

# The dashboard: web/ plus uPlot from npm (pinned in web/package-lock.json), embedded.
WEB_FILES := web/index.html web/app.js web/app.css
UPLOT := web/node_modules/uplot/dist
ASSETS := /=web/index.html /app.js=web/app.js /app.css=web/app.css \
	  /vendor/uPlot.iife.min.js=$(UPLOT)/uPlot.iife.min.js \
	  /vendor/uPlot.min.css=$(UPLOT)/uPlot.min.css

$(UPLOT)/uPlot.iife.min.js $(UPLOT)/uPlot.min.css: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(UPLOT)/uPlot.iife.min.js $(UPLOT)/uPlot.min.css

$(GEN)/assets_data.c: tools/embed.py $(WEB_FILES) $(UPLOT)/uPlot.iife.min.js $(UPLOT)/uPlot.min.css | $(GEN)
	$(PYTHON) tools/embed.py $@ $(ASSETS)

$(BUILD)/obj/assets_data.o: $(GEN)/assets_data.c user/assets.h | $(BUILD)/obj
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/caelumd: $(DAEMON_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/caelumctl: $(CTL_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Tests link through an archive: the linker takes only the objects a test needs, so that
# objects calling into caelumd.c or caelumctl.c do not come along.
$(BUILD)/libcaelum.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c tests/unit/*.h $(BUILD)/libcaelum.a | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

$(GEN) $(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# deps first, then a sub-make: with -j the prerequisites of one rule run in parallel.
run: deps
	$(MAKE) all
	$(BUILD)/caelumd -c $(CONFIG)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# npm packages of the tests (the MCP SDK, its conformance suite, Node 22, playwright-core),
# pinned by their package-lock.json files.
NPM_TESTS := tests/mcp tests/browser
NPM_STAMPS := $(NPM_TESTS:%=%/node_modules/.package-lock.json)

%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error

integration: all $(NPM_STAMPS)
	$(PYTHON) tests/integration/run.py --build $(BUILD)

test: deps
	$(MAKE) unit integration

BENCHES := bind_bench sched_bench connect_bench sse_bench

bench: deps
	$(MAKE) all $(BENCHES:%=$(BUILD)/bench/%)
	@set -e; for b in $(BENCHES); do $(BUILD)/bench/$$b; done

# The allow-all baseline program: same flags and skeleton rule as bpf/*.bpf.c.
BENCH_SKELS := $(GEN)/allow.skel.h

$(GEN)/allow.bpf.o: bench/allow.bpf.c vmlinux/vmlinux.h | $(GEN)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Linked through $(BUILD)/libcaelum.a like the unit tests.
$(BUILD)/bench/bind_bench: bench/bind_bench.c $(BUILD)/libcaelum.a $(BENCH_SKELS) user/*.h \
			   include/caelum/*.h
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/sched_bench $(BUILD)/bench/connect_bench $(BUILD)/bench/sse_bench: $(BUILD)/bench/%: bench/%.c \
		$(BUILD)/libcaelum.a user/*.h include/caelum/*.h
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -o $@

install: all
	install -D -m 0755 $(BUILD)/caelumd $(DESTDIR)$(PREFIX)/sbin/caelumd
	install -D -m 0755 $(BUILD)/caelumctl $(DESTDIR)$(PREFIX)/bin/caelumctl
	install -D -m 0644 deploy/caelumd.service $(DESTDIR)/lib/systemd/system/caelumd.service
	sed -i 's|@SBINDIR@|$(PREFIX)/sbin|' $(DESTDIR)/lib/systemd/system/caelumd.service
	install -d -m 0755 $(DESTDIR)/etc/caelum/services.d
	[ -e $(DESTDIR)/etc/caelum/caelum.json ] || \
		install -m 0644 deploy/caelum.json $(DESTDIR)/etc/caelum/caelum.json

format:
	clang-format -i bpf/*.c bpf/*.h user/*.c user/*.h include/caelum/*.h tests/unit/*.c bench/*.c

clean:
	rm -rf build
