# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make run     install missing packages, build, run caelumd on deploy/caelum.json
# make test    install missing packages, build, run every test (root)
# make test SAN=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
# make bench   benchmarks (ratios against a baseline measured in the same process)
# make fuzz    every libFuzzer harness (tests/fuzz) for FUZZ_SECONDS each (default 60)
# make deb     the Debian package, build/caelum_VERSION_ARCH.deb

PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
LLVM_STRIP ?= llvm-strip
PYTHON ?= python3
CONFIG ?= deploy/caelum.json

# Debian packages: build tools, libraries, and what the tests use.
DEB_PKGS := gcc make clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libjson-c-dev \
	    libcmocka-dev libcurl4-openssl-dev libwebsockets-dev libssl-dev libsystemd-dev pkg-config \
	    python3 iproute2 postgresql redis-server mariadb-server openssl chromium libclang-rt-14-dev \
	    debhelper lintian scdoc man-db systemd bash-completion fakeroot dpkg-dev python3-seccomp \
	    etcd-server etcd-client clang-format

ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD := build
SANFLAGS :=
endif
GEN := build/gen

# user/ by role (docs/ARCHITECTURE.md, "Where things live"): shared library code, the model,
# the registry and its backends, the enforcement paths, the daemon, the handlers, the
# transports, caelumctl. Objects are named by their file alone: no two files share a name.
SRC_DIRS := user/lib user/model user/registry user/enforce user/daemon user/handlers \
	    user/transport user/ctl
USER_HDRS := $(wildcard $(SRC_DIRS:%=%/*.h))
vpath %.c $(SRC_DIRS)

# -Wno-format-truncation: paths are bounded by PATH_MAX and truncation is what we want;
# gcc's heuristic cannot see that and flags every snprintf into a path buffer.
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation \
	  -Iinclude $(SRC_DIRS:%=-I%) -I$(GEN) $(SANFLAGS)
# --as-needed: each program loads only the libraries it calls (caelumctl goes without
# libcurl's tree); explicit because the sanitizer flags turn it off.
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
LDLIBS := $(shell pkg-config --libs libbpf json-c zlib libcurl libwebsockets libcrypto libsystemd \
		    2>/dev/null || echo -lbpf -lelf -lz -ljson-c -lcurl -lwebsockets -lcrypto -lsystemd) -lm

# -g for BTF (CO-RE relocations, line info); the DWARF it also makes is stripped (llvm-strip -g keeps
# .BTF and .BTF.ext): the objects are embedded in caelumd, and DWARF was 90% of them.
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror \
	      -Ivmlinux -Iinclude -Ibpf

BPF_PROGS := ports agg devices tasks cpu connect cgfollow bandwidth
BPF_OBJS := $(BPF_PROGS:%=$(GEN)/%.bpf.o)
SKELS := $(BPF_PROGS:%=$(GEN)/%.skel.h)

COMMON := log jsonv names portrange config config_registry netns reserved_ports capacity cgroup fsutil spec bpfinfo \
	  rpc_client dbprobe spec_ext dbspec probe loop fingerprint
DAEMON := caelumd apply loop services components comp_bpf ports port_tables agg devices tasks cpu connect \
	  bandwidth databases dbresolve \
	  hostaddr credentials health \
	  verify api http http_auth connlimit metrics token assets assets_data handlers_view mcp mcp_era \
	  mcp_tools mcp_http schema peers \
	  resources handlers handlers_run handlers_db status rpc transports registry registry_admit rejects \
	  registry_file registry_etcd etcd etcd_watch etcd_json hosts handlers_hosts journal applylog \
	  sockets ringbuf bpfpin events probe_http notify pinlock policyguard cgfollow $(COMMON)
CTL := caelumctl ctl_hosts ctl_service ctl_port ctl_events ctl_status ctl_resources ctl_verify ctl_token ctl_run ctl_validate ctl_db ctl_bpf ctl_mcp events journal \
	$(COMMON)

DAEMON_OBJS := $(sort $(DAEMON:%=$(BUILD)/obj/%.o))
CTL_OBJS := $(sort $(CTL:%=$(BUILD)/obj/%.o))
LIB_OBJS := $(sort $(filter-out $(BUILD)/obj/caelumd.o $(BUILD)/obj/caelumctl.o, \
			$(DAEMON_OBJS) $(CTL_OBJS)))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.SECONDARY: $(BPF_OBJS) $(SKELS)
.PHONY: all deps vmlinux run test unit integration bench cluster-demo install install-files man deb \
	test-package clean format format-check fuzz fuzz-build fuzz-smoke modgraph

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
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp && $(LLVM_STRIP) -g $@.tmp -o $@ && rm $@.tmp

$(GEN)/%.skel.h: $(GEN)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(USER_HDRS) include/caelum/*.h $(SKELS) | $(BUILD)/obj
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

$(BUILD)/obj/assets_data.o: $(GEN)/assets_data.c user/transport/assets.h | $(BUILD)/obj
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

# probe_http.o is named: probe.c refers to it weakly (caelumctl goes without libcurl), and a
# weak reference does not pull a member out of an archive.
$(BUILD)/tests/%: tests/unit/%.c tests/unit/*.h $(BUILD)/libcaelum.a $(BUILD)/obj/probe_http.o | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/unit $< $(BUILD)/obj/probe_http.o $(BUILD)/libcaelum.a $(LDFLAGS) \
		$(LDLIBS) -lcmocka -o $@

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

# No link or include cycle between any two modules, and no two sources or headers that
# share a name (tools/modgraph.py prints each cycle with the symbols or files behind it).
modgraph: all
	$(PYTHON) tools/modgraph.py --objs $(BUILD)/obj --src user --unique include bpf

# test-package checks the release build (build/) also under SAN=1: the package ships it, and
# the sanitizers' runtime needs ptrace(2) and setrlimit(2), which the unit's filter forbids.
test: deps
	$(MAKE) format-check unit modgraph fuzz-smoke integration
	$(MAKE) test-package SAN=

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), built with clang, ASan and UBSan whatever SAN
# says. Each runs on its committed corpus (tests/fuzz/corpus/NAME, read only: what it
# finds goes to build/fuzz/corpus/NAME) with its dictionary (tests/fuzz/NAME.dict).
FUZZERS := config spec rpc http
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 3
FUZZ := build/fuzz
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		 -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(SRC_DIRS:%=-I%) \
	       -I$(GEN) \
	       -fsanitize=fuzzer-no-link $(FUZZ_SANFLAGS)
FUZZ_LIB := log jsonv names portrange config config_registry netns capacity cgroup fsutil spec spec_ext dbspec dbprobe \
	    resources http_auth token connlimit loop rpc_client
FUZZ_BINS := $(FUZZERS:%=$(FUZZ)/fuzz_%)

$(FUZZ)/obj/%.o: %.c $(USER_HDRS) include/caelum/*.h $(SKELS) | $(FUZZ)/obj
	$(CLANG) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ)/libfuzz.a: $(FUZZ_LIB:%=$(FUZZ)/obj/%.o)
	rm -f $@
	$(AR) rcs $@ $^

# fuzz_rpc links rpc.c with its own stand-ins for the handlers, events and MCP.
$(FUZZ)/fuzz_rpc: $(FUZZ)/obj/rpc.o
$(FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ)/libfuzz.a $(USER_HDRS) | $(FUZZ)/obj
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(filter %.o,$^) $(FUZZ)/libfuzz.a $(LDLIBS) -o $@

$(FUZZ)/obj:
	mkdir -p $@

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run.sh $(FUZZ) $(FUZZ_SECONDS) $(FUZZERS)

# A few seconds each on the committed corpus: a regression fails make test.
fuzz-smoke: fuzz-build
	tests/fuzz/run.sh $(FUZZ) $(FUZZ_SMOKE_SECONDS) $(FUZZERS)

BENCHES := bind_bench change_bench sched_bench connect_bench sse_bench bandwidth_bench

bench: deps
	$(MAKE) all $(BENCHES:%=$(BUILD)/bench/%)
	@set -e; for b in $(BENCHES); do $(BUILD)/bench/$$b; done
	$(PYTHON) bench/etcd_bench.py --build $(BUILD)
	$(PYTHON) bench/ctl_bench.py --build $(BUILD)
	$(PYTHON) bench/mem_bench.py --build $(BUILD)

# 3 etcd members and 2 caelumd "hosts" on this machine (loopback): deploy/cluster_demo.py.
cluster-demo: deps
	$(MAKE) all
	$(PYTHON) deploy/cluster_demo.py --build $(BUILD)

# The allow-all baseline program: same flags and skeleton rule as bpf/*.bpf.c.
BENCH_SKELS := $(GEN)/allow.skel.h

$(GEN)/allow.bpf.o: bench/allow.bpf.c vmlinux/vmlinux.h | $(GEN)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp && $(LLVM_STRIP) -g $@.tmp -o $@ && rm $@.tmp

# Linked through $(BUILD)/libcaelum.a like the unit tests.
$(BUILD)/bench/bind_bench: bench/bind_bench.c $(BUILD)/libcaelum.a $(BENCH_SKELS) $(USER_HDRS) bench/bench.h \
			   include/caelum/*.h
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/sched_bench $(BUILD)/bench/connect_bench $(BUILD)/bench/sse_bench \
		$(BUILD)/bench/change_bench: $(BUILD)/bench/%: bench/%.c \
		$(BUILD)/libcaelum.a $(USER_HDRS) bench/bench.h include/caelum/*.h
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/bandwidth_bench: bench/bandwidth_bench.c $(BUILD)/libcaelum.a $(BENCH_SKELS) \
				 $(USER_HDRS) include/caelum/*.h
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $< $(BUILD)/libcaelum.a $(LDFLAGS) $(LDLIBS) -o $@

# Man pages: scdoc sources in man/, troff in build/man.
MAN_SRCS := $(wildcard man/*.scd)
MANS := $(MAN_SRCS:man/%.scd=build/man/%)

build/man/%: man/%.scd
	@mkdir -p build/man
	scdoc < $< > $@.tmp && mv $@.tmp $@

man: $(MANS)

# Everything `make install` and the package install, into DESTDIR. CONF is the default
# configuration (the package ships debian/caelum.json: no managed range until one is set).
CONF ?= deploy/caelum.json
install-files: all man
	install -D -m 0755 $(BUILD)/caelumd $(DESTDIR)$(PREFIX)/sbin/caelumd
	install -D -m 0755 $(BUILD)/caelumctl $(DESTDIR)$(PREFIX)/bin/caelumctl
	install -D -m 0644 deploy/caelumd.service $(DESTDIR)/lib/systemd/system/caelumd.service
	sed -i 's|@SBINDIR@|$(PREFIX)/sbin|; s|/usr/share/doc/caelum|$(PREFIX)/share/doc/caelum|' \
		$(DESTDIR)/lib/systemd/system/caelumd.service
	install -d -m 0755 $(DESTDIR)/etc/caelum/services.d $(DESTDIR)/etc/caelum/databases.d
	[ -e $(DESTDIR)/etc/caelum/caelum.json ] || \
		install -m 0644 $(CONF) $(DESTDIR)/etc/caelum/caelum.json
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/man/man8 build/man/*.8
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/man/man5 build/man/*.5
	install -D -m 0644 completion/caelumctl.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/caelumctl
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/caelum/examples/services.d \
		deploy/services.d/*.json

install: install-files
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/caelum README.md docs/ARCHITECTURE.md

# The Debian package: binaries and man pages built here, staged with install-files, then
# assembled by debhelper (debian/rules) in build/deb; the .deb lands in build/.
VERSION := $(shell sed -n 's/^\#define CAELUM_VERSION "\(.*\)"/\1/p' user/lib/version.h)
DEB_VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH := $(shell dpkg --print-architecture)
DEB := build/caelum_$(DEB_VERSION)_$(DEB_ARCH).deb
PKG := build/deb/caelum-$(VERSION)

deb: all man
	rm -rf build/deb && mkdir -p $(PKG)/docs
	cp -r debian $(PKG)/debian
	cp README.md $(PKG)/ && cp docs/ARCHITECTURE.md $(PKG)/docs/
	$(MAKE) --no-print-directory install-files DESTDIR=$(CURDIR)/$(PKG)/stage PREFIX=/usr \
		CONF=debian/caelum.json
	cd $(PKG) && dpkg-buildpackage -b -us -uc --no-sign >../build.log 2>&1 \
		|| { cat ../build.log; exit 1; }
	mv build/deb/caelum_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB)
	@echo "deb: $(DEB)"

# Package, unit and man-page checks, and caelumd under the unit's capability set passing
# the port-enforcement tests (tests/package/run.py says what each check is).
test-package: deb
	$(PYTHON) tests/package/run.py --build $(BUILD) --deb $(DEB)

# Every C source and header we write, in .clang-format's style (kernel: tabs, 100 columns).
FORMAT_FILES = $(wildcard bpf/*.c bpf/*.h $(SRC_DIRS:%=%/*.c) $(SRC_DIRS:%=%/*.h) \
		 include/caelum/*.h tests/unit/*.c tests/unit/*.h bench/*.c bench/*.h tests/fuzz/*.c)

format:
	clang-format -i $(FORMAT_FILES)

# Fails (and names each file and line) where the tree is not as `make format` leaves it.
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build

# ---- fuzzing: the MCP dispatcher, both eras (tests/fuzz/fuzz_mcp.c) ----
# It links the dispatcher's own sources with a stand-in handlers_call, so it is built apart
# from FUZZ_LIB. make fuzz-mcp [FUZZ_SECONDS=60]: fuzz from the committed corpus, new inputs in
# build/fuzz/mcp-corpus; make fuzz-mcp-check: every committed input once, then 5 s (make test).
FUZZ_MCP_SRCS := tests/fuzz/fuzz_mcp.c $(addprefix user/transport/,mcp.c mcp_era.c mcp_tools.c \
		 schema.c) user/lib/jsonv.c user/lib/log.c

$(FUZZ)/fuzz_mcp: $(FUZZ_MCP_SRCS) $(USER_HDRS) include/caelum/*.h | $(SKELS) $(FUZZ)/obj
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_MCP_SRCS) -ljson-c -lcrypto -lbpf -o $@

.PHONY: fuzz fuzz-mcp fuzz-mcp-check fuzz-build fuzz-smoke
fuzz-mcp: $(FUZZ)/fuzz_mcp
	mkdir -p $(FUZZ)/mcp-corpus
	$(FUZZ)/fuzz_mcp -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/mcp.dict \
		-print_final_stats=1 $(FUZZ)/mcp-corpus tests/fuzz/corpus/mcp

fuzz-mcp-check: $(FUZZ)/fuzz_mcp
	$(FUZZ)/fuzz_mcp -runs=0 tests/fuzz/corpus/mcp
	mkdir -p $(FUZZ)/mcp-check
	$(FUZZ)/fuzz_mcp -max_total_time=5 -dict=tests/fuzz/mcp.dict \
		-artifact_prefix=$(FUZZ)/ $(FUZZ)/mcp-check tests/fuzz/corpus/mcp

fuzz: fuzz-mcp
fuzz-smoke: fuzz-mcp-check
