# opcgw — the two commands a fresh machine needs: `make run` and `make test`.

CARGO ?= cargo
DEMO_CONFIG ?= config/demo.toml
DEMO_ENV := run/demo.env
# The demo runs on a copy, so edits made in the console never change the committed file.
DEMO_RUN_CONFIG := run/demo.toml
# The console's port in the demo configuration (printed by `make run`).
DEMO_WEB_PORT = $(shell sed -n '/^\[web\]/,/^\[/s/^port *= *\([0-9]*\).*/\1/p' $(DEMO_CONFIG))
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

.PHONY: run test bench lint deps venv check-config clean-demo vendor-patches browser-deps test-browser

VENV := .venv
PYTHON_REQUIREMENTS := tests/python/requirements.txt

## run: the gateway against its built-in ChirpStack simulator (demo configuration), with
## generated credentials (printed below).
run: deps
	@mkdir -p run && chmod 700 run
	@[ -f $(DEMO_ENV) ] || ( umask 077; \
	  printf 'OPCGW_CHIRPSTACK__API_TOKEN=%s\nOPCGW_OPCUA__USER_PASSWORD=%s\n' \
	    "demo-$$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" \
	    "$$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" > $(DEMO_ENV) )
	@echo "opcgw demo — credentials (kept in $(DEMO_ENV), mode 0600):"
	@echo "  user:     opcua-user"
	@echo "  password: $$(sed -n 's/^OPCGW_OPCUA__USER_PASSWORD=//p' $(DEMO_ENV))"
	@echo "  OPC UA:   opc.tcp://127.0.0.1:4840/  (None endpoint; the password is encrypted with the server key)"
	@echo "  console:  http://127.0.0.1:$(DEMO_WEB_PORT)/  (web console: sign in with the user and password above)"
	@echo "  metrics:  http://127.0.0.1:9464/metrics  (Prometheus; probes at /healthz and /readyz)"
	@[ -f $(DEMO_RUN_CONFIG) ] || cp $(DEMO_CONFIG) $(DEMO_RUN_CONFIG)
	@echo "  config:   $(DEMO_RUN_CONFIG) (a copy of $(DEMO_CONFIG); the console edits it)   logs: ./log"
	@echo "  stop: Ctrl-C   reload: kill -HUP <pid>   start afresh: make clean-demo"
	@set -a; . ./$(DEMO_ENV); set +a; exec $(CARGO) run --quiet -p opcgw-actors --bin opcgw -- demo --config $(DEMO_RUN_CONFIG)

## test: the whole test suite (unit, end-to-end against the real binary, the OPC UA server
## checked with an independent client: Python asyncua, installed into .venv, and the web console
## driven in headless Chromium: installed when missing; screenshots in target/browser-screenshots),
## and the own unit tests of the vendored async-opcua crates (workspace members).
test: deps venv browser-deps
	OPCGW_PYTHON=$(CURDIR)/$(VENV)/bin/python $(CARGO) test --workspace --locked

## venv: the Python OPC UA client the tests use (asyncua), in .venv, installed when missing.
venv: $(VENV)/.installed

$(VENV)/.installed: $(PYTHON_REQUIREMENTS)
	@command -v python3 >/dev/null 2>&1 || { \
	  echo "installing python3 (the tests drive the gateway with the Python asyncua client)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 python3-venv >/dev/null; }
	@python3 -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  echo "installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(PYTHON_REQUIREMENTS)
	@touch $@

## browser-deps: headless Chromium and its driver from Debian (the browser tests drive them with
## Python selenium from .venv), installed only when missing.
browser-deps:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "installing chromium and chromium-driver (the web console's browser tests)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

## test-browser: the operator scenario of the web console in headless Chromium, against the
## mock of the web API (tests/browser/mock_server.py); screenshots in target/browser-screenshots.
test-browser: venv browser-deps
	$(VENV)/bin/python tests/browser/console.py --start-mock --screenshots $(CURDIR)/target/browser-screenshots

## lint: formatting and clippy (warnings are errors), and the deploy files validated offline
## (Dockerfile, Kubernetes manifest, compose file, Grafana dashboard).
lint: venv $(VENV)/.lint-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/hadolint deploy/Dockerfile
	$(VENV)/bin/kubernetes-validate --strict --quiet deploy/kubernetes.yaml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yml
	$(VENV)/bin/python tests/python/check_deploy.py

# The offline validators `make lint` runs on deploy/ (in .venv, installed when missing).
$(VENV)/.lint-tools: tests/python/lint-requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/lint-requirements.txt
	@touch $@

## vendor-patches: rewrite vendor/<crate>/opcgw.patch (what each vendored crate changes in the
## published one) after editing a vendored source; `cargo test -p opcgw --test vendor_patches`
## fails until it is current.
vendor-patches:
	sh vendor/diff-against-upstream.sh

## check-config: validate config/config.toml (or CONFIG=path).
check-config:
	$(CARGO) run --quiet -p opcgw-actors --bin opcgw -- check-config --config $(or $(CONFIG),config/config.toml)

## deps: system packages the build needs, installed only when missing.
deps:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@command -v protoc >/dev/null 2>&1 || { \
	  echo "installing protobuf-compiler (protoc, needed by the ChirpStack API crate)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq protobuf-compiler >/dev/null; }

## clean-demo: forget the demo credentials, configuration copy, database and logs.
clean-demo:
	rm -rf $(DEMO_ENV) $(DEMO_RUN_CONFIG) data/demo.redb log

## bench: benchmarks in release mode; figures go to docs/performance.md.
bench: deps
	$(CARGO) bench --locked -p opcgw --bench storage
	$(CARGO) bench --locked -p opcgw --bench aggregates
	$(CARGO) bench --locked -p opcgw --bench config
	$(CARGO) bench --locked -p opcgw-actors --bench poller
	$(CARGO) bench --locked -p opcgw-actors --bench opcua
	$(CARGO) bench --locked -p opcgw-actors --bench memory
	# The issue's 1,000 x 5 figure on the binary that is deployed (--profile dist: LTO).
	$(CARGO) build --locked --profile dist -p opcgw-actors --bin opcgw
	OPCGW_BENCH_BIN="$${CARGO_TARGET_DIR:-$${CARGO_BUILD_TARGET_DIR:-$(CURDIR)/target}}/dist/opcgw" OPCGW_BENCH_METRICS=5 \
		OPCGW_BENCH_UPLINK_MS=1000 OPCGW_BENCH_NO_HISTORY=1 \
		$(CARGO) bench --locked -p opcgw-actors --bench memory
	$(CARGO) bench --locked -p opcgw-actors --bench history
	$(CARGO) bench --locked -p opcgw-actors --bench web
	$(CARGO) bench --locked -p opcgw-actors --bench scale
	$(CARGO) bench --locked -p opcgw-actors --bench discovery
