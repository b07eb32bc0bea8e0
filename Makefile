# cognito-authz: `make run` and `make test` are all a newcomer needs. `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/cognito-authz
# Every fuzz target, as package:Target. `make test` runs each briefly; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := \
	./pkg/token:FuzzExtract ./pkg/token:FuzzVerify ./pkg/token:FuzzDecode ./pkg/token:FuzzWithoutCookies \
	./pkg/rs256:FuzzVerify \
	./pkg/extauthz:FuzzCheck ./pkg/extauthz:FuzzHTTPForwarded ./pkg/extauthz:FuzzRawHeaderMap ./pkg/extauthz:FuzzDecodeRequest \
	./pkg/config:FuzzParse \
	./pkg/policy:FuzzMatch ./pkg/policy:FuzzSelect \
	./pkg/authz:FuzzPathStrictness \
	./pkg/session:FuzzSafeReturn ./pkg/session:FuzzOpenSession
FUZZTIME ?= 60s
# Flags of the load benchmark in `make bench`, e.g. LOADFLAGS="-rounds 5 -duration 10s".
LOADFLAGS ?=
# Flags of the micro-benchmarks in `make bench`: short by default; BENCHFLAGS="-count=5" for comparisons.
BENCHFLAGS ?= -benchtime=100ms -count=1
# vtprotobuf: go-control-plane's generated MarshalVTStrict/SizeVT, which the ext_authz codec uses.
GOTAGS   := vtprotobuf

# cognito-local, the offline Cognito emulator the e2e tests (pkg/e2e) run. Pinned; bump together with
# cognitoLocalVersion in pkg/e2e. Installed once into the git-ignored .cache/; the stamp makes later (and
# offline) runs a no-op. Without npm the e2e tests skip, except in CI, where they fail.
COGNITO_LOCAL_VERSION := 5.3.0
COGNITO_LOCAL_DIR     ?= $(CURDIR)/.cache/cognito-local
COGNITO_LOCAL_STAMP   := $(COGNITO_LOCAL_DIR)/.installed-$(COGNITO_LOCAL_VERSION)
export COGNITO_LOCAL_DIR

# The browser test harness: Debian's chromium (apt; never a browser download) driven by npm playwright-core,
# pinned and installed once into .cache/ like cognito-local. Without them the browser tests skip, except in
# CI, where they fail.
PLAYWRIGHT_VERSION := 1.65.1
PLAYWRIGHT_DIR     ?= $(CURDIR)/.cache/playwright
PLAYWRIGHT_STAMP   := $(PLAYWRIGHT_DIR)/.installed-$(PLAYWRIGHT_VERSION)
CHROMIUM           ?= /usr/bin/chromium
export PLAYWRIGHT_DIR CHROMIUM


# The forward-auth proxies the real-proxy tests (pkg/proxytest) run: Debian's caddy (2.6) and nginx-light from
# apt, a current Caddy and Traefik built from the Go module proxy into .cache/ (the directory names the
# version, the stamp makes later runs a no-op). A missing proxy skips its test on a developer machine and
# fails in CI. Traefik is built if it builds with this Go; if not, the reason is kept in
# $(TRAEFIK_DIR)/build-failed and its test skips with it (rm -rf that directory to try again).
CADDY_VERSION    := 2.11.9
# Traefik 3.6.12 is the newest v3 that builds here: 3.7.x needs module versions the Go module proxy refuses.
TRAEFIK_VERSION  := 3.6.12
CADDY_DIR        := $(CURDIR)/.cache/caddy-$(CADDY_VERSION)
TRAEFIK_DIR      := $(CURDIR)/.cache/traefik-$(TRAEFIK_VERSION)
CADDY_DEBIAN_BIN ?= /usr/bin/caddy
NGINX_BIN        ?= /usr/sbin/nginx
CADDY_BIN        ?= $(CADDY_DIR)/caddy
TRAEFIK_BIN      ?= $(TRAEFIK_DIR)/traefik
TRAEFIK_BUILD_TIMEOUT ?= 900
export CADDY_DEBIAN_BIN NGINX_BIN CADDY_BIN TRAEFIK_BIN
# in_ci is true (exit 0) when CI is set to anything but "", "0" or "false".
in_ci = case "$${CI:-}" in ""|0|false) false;; *) true;; esac

.PHONY: help build run test fuzz bench lint fmt clean cognito-local browser proxies debian-proxies

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/cognito-authz (static, trimmed)
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(GOTAGS) -o $(BIN) ./cmd/cognito-authz

run: build ## run the service on an embedded dev issuer (no AWS needed); prints a token to try
	$(BIN) serve -dev

# The packages with concurrency run under the race detector; the e2e tests (real processes) and the manifest
# tests (deploy, envoy: pure decoding) run plainly, as does api, and so does the one test that measures the
# heap (TestCacheEntryCost skips under -race). extauthz runs once more with the build's tags, so the codec's
# vtprotobuf path is tested as it ships.
RACE_PKGS  = $(shell $(GO) list ./pkg/... ./cmd/... | grep -v -e '/pkg/e2e$$')
PLAIN_PKGS = ./pkg/e2e/... ./deploy/... ./envoy/... ./api/...

test: cognito-local browser proxies ## go vet; the race detector on pkg and cmd; plain go test for e2e, manifests and the heap test; short fuzz
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 10m $(PLAIN_PKGS)
	$(GO) test -count=1 -run '^TestCacheEntryCost$$' ./pkg/authz
	$(GO) test -count=1 -tags $(GOTAGS) ./pkg/extauthz  # the codec as make build and the image build it
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

fuzz: ## run every fuzz target for FUZZTIME (default 60s)
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
	  $(GO) test -list="^$$name$$" $$pkg | grep -x "$$name" >/dev/null || { echo "fuzz: $$pkg has no $$name (renamed? update FUZZ_TARGETS)"; exit 1; }; \
	  $(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg > /tmp/fuzz.$$$$.log 2>&1 || { cat /tmp/fuzz.$$$$.log; rm -f /tmp/fuzz.$$$$.log; exit 1; }; \
	  tail -n 2 /tmp/fuzz.$$$$.log; rm -f /tmp/fuzz.$$$$.log; \
	done

bench: ## short micro-benchmarks, then the load benchmark against a no-op server (under 3 minutes)
	$(GO) test -tags $(GOTAGS) -run='^$$' -bench=. -benchmem $(BENCHFLAGS) ./pkg/...
	$(GO) run -tags $(GOTAGS) ./cmd/authz-load $(LOADFLAGS)

lint: ## gofmt check and go vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

fmt: ## format the code
	gofmt -w .

cognito-local: $(COGNITO_LOCAL_STAMP) ## install the pinned cognito-local emulator for the e2e tests (once)

$(COGNITO_LOCAL_STAMP):
	@if ! command -v npm >/dev/null 2>&1; then \
	  case "$${CI:-}" in ""|0|false) ;; *) echo "cognito-local: npm not found, and CI needs it for the e2e tests" >&2; exit 1;; esac; \
	  echo "cognito-local: npm not found; the e2e tests will be skipped" >&2; exit 0; \
	fi; \
	rm -f "$(COGNITO_LOCAL_DIR)"/.installed-*; \
	npm install --prefix "$(COGNITO_LOCAL_DIR)" --no-audit --no-fund --prefer-offline \
	  --ignore-scripts --save-exact --update-notifier=false --loglevel=error \
	  cognito-local@$(COGNITO_LOCAL_VERSION); \
	touch "$@"

browser: $(PLAYWRIGHT_STAMP) ## install the browser test harness: Debian chromium and caddy (apt) and pinned playwright-core (npm)

$(PLAYWRIGHT_STAMP):
	@ci=false; case "$${CI:-}" in ""|0|false) ;; *) ci=true;; esac; \
	if [ ! -x "$(CHROMIUM)" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y --no-install-recommends chromium >/dev/null || true; \
	fi; \
	if ! command -v caddy >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y --no-install-recommends caddy >/dev/null || true; \
	fi; \
	if ! command -v caddy >/dev/null 2>&1; then \
	  if $$ci; then echo "browser: caddy not found (apt-get install caddy), and CI needs it for the browser test" >&2; exit 1; fi; \
	  echo "browser: caddy not found (apt-get install caddy); the Caddy browser test will be skipped" >&2; \
	fi; \
	if [ ! -x "$(CHROMIUM)" ]; then \
	  if $$ci; then echo "browser: $(CHROMIUM) not found (apt-get install chromium), and CI needs it" >&2; exit 1; fi; \
	  echo "browser: $(CHROMIUM) not found (apt-get install chromium); the browser tests will be skipped" >&2; exit 0; \
	fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  if $$ci; then echo "browser: npm not found, and CI needs it for playwright-core" >&2; exit 1; fi; \
	  echo "browser: npm not found; the browser tests will be skipped" >&2; exit 0; \
	fi; \
	rm -f "$(PLAYWRIGHT_DIR)"/.installed-*; \
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$(PLAYWRIGHT_DIR)" --no-audit --no-fund --prefer-offline \
	  --ignore-scripts --save-exact --update-notifier=false --loglevel=error \
	  playwright-core@$(PLAYWRIGHT_VERSION); \
	touch "$@"

proxies: debian-proxies $(CADDY_DIR)/.installed $(TRAEFIK_DIR)/.installed ## install the proxies of the real-proxy tests (once)

debian-proxies:
	@missing=""; \
	test -x "$(CADDY_DEBIAN_BIN)" || missing="$$missing caddy"; \
	test -x "$(NGINX_BIN)" || missing="$$missing nginx-light"; \
	test -n "$$missing" || exit 0; \
	sudo=""; test "$$(id -u)" = 0 || sudo="sudo -n"; \
	if command -v apt-get >/dev/null 2>&1 && { test -z "$$sudo" || sudo -n true 2>/dev/null; }; then \
	  echo "proxies: installing$$missing with apt-get (waiting for the dpkg lock if it is held)"; \
	  $$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing \
	    || { if $(in_ci); then echo "proxies: apt-get install$$missing failed, and CI needs them" >&2; exit 1; fi; \
	         echo "proxies: apt-get install$$missing failed; their proxy tests will be skipped" >&2; }; \
	elif $(in_ci); then echo "proxies: no apt-get (or no root) to install$$missing, and CI needs them" >&2; exit 1; \
	else echo "proxies: *** $$missing not installed (no apt-get or no root): their proxy tests will be SKIPPED ***" >&2; fi

$(CADDY_DIR)/.installed:
	@echo "proxies: building Caddy v$(CADDY_VERSION) from the Go module proxy into $(CADDY_DIR)"
	@if GOBIN="$(CADDY_DIR)" CGO_ENABLED=0 $(GO) install -trimpath github.com/caddyserver/caddy/v2/cmd/caddy@v$(CADDY_VERSION); then \
	  touch "$@"; \
	elif $(in_ci); then echo "proxies: building Caddy v$(CADDY_VERSION) failed, and CI needs it" >&2; exit 1; \
	else echo "proxies: *** building Caddy v$(CADDY_VERSION) failed: its proxy test will be SKIPPED ***" >&2; fi

# `go install traefik@version` refuses it (its go.mod has replace directives, one to a directory inside it), so
# it is built in a tiny module of its own that requires it and repeats its replace and exclude directives.
$(TRAEFIK_DIR)/.installed:
	@echo "proxies: building Traefik v$(TRAEFIK_VERSION) from the Go module proxy into $(TRAEFIK_DIR) (at most $(TRAEFIK_BUILD_TIMEOUT)s)"
	@rm -rf "$(TRAEFIK_DIR)/src" "$(TRAEFIK_DIR)/build-failed"; mkdir -p "$(TRAEFIK_DIR)/src"; rc=0; \
	timeout $(TRAEFIK_BUILD_TIMEOUT) bash -euo pipefail -c ' \
	    cd "$(TRAEFIK_DIR)/src"; \
	    mod=$$($(GO) mod download -json github.com/traefik/traefik/v3@v$(TRAEFIK_VERSION) | sed -n "s/^.*\"Dir\": \"\(.*\)\",$$/\1/p"); \
	    { printf "module traefik-build\n\ngo 1.26.0\n\nrequire github.com/traefik/traefik/v3 v$(TRAEFIK_VERSION)\n\n"; \
	      awk "/^(replace|exclude) \\(/{b=1} b{print} /^\\)/{b=0} /^(replace|exclude) [^(]/{print}" "$$mod/go.mod" | sed "s#=> \./#=> $$mod/#"; \
	    } > go.mod; \
	    GOWORK=off CGO_ENABLED=0 $(GO) build -mod=mod -trimpath -o "$(TRAEFIK_DIR)/traefik" github.com/traefik/traefik/v3/cmd/traefik' \
	    > "$(TRAEFIK_DIR)/build.log" 2>&1 || rc=$$?; \
	if [ $$rc = 0 ]; then \
	  touch "$@"; \
	else \
	  why="failed"; [ $$rc != 124 ] || why="timed out after $(TRAEFIK_BUILD_TIMEOUT)s"; \
	  { echo "Traefik v$(TRAEFIK_VERSION) did not build with $$($(GO) env GOVERSION) ($$why):"; \
	    grep -m 3 -E "Forbidden|not available|cannot|error" "$(TRAEFIK_DIR)/build.log" || tail -n 3 "$(TRAEFIK_DIR)/build.log"; \
	  } > "$(TRAEFIK_DIR)/build-failed"; \
	  echo "proxies: *** $$(head -n 1 "$(TRAEFIK_DIR)/build-failed") its proxy test will be SKIPPED; see $(TRAEFIK_DIR)/build.log ***" >&2; \
	  touch "$@"; \
	fi

clean: ## remove build and tool outputs
	rm -rf bin .cache
