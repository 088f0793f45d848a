# Rendition: the two front-door commands are `make demo` and `make test`.
# Every target that needs tools runs scripts/setup.sh first (idempotent, ~1 s when done);
# the test targets run `scripts/setup.sh --test`, which adds what only the tests use
# (Chromium, wrk, Node, kubectl, hadolint, ...), so a first `make demo` installs less.

SHELL := /bin/bash
ROOT := $(CURDIR)

# Reuse a persistent cargo target dir outside the clone when one exists (CI clones fresh on
# the same machine); never depend on it. Create it to opt in: mkdir -p ~/.cache/rendition/target
PERSISTENT_TARGET ?= $(HOME)/.cache/rendition/target
CARGO_TARGET_DIR ?= $(if $(wildcard $(PERSISTENT_TARGET)),$(PERSISTENT_TARGET),$(ROOT)/target)
export CARGO_TARGET_DIR

CARGO ?= cargo
WASM_CARGO := scripts/cargo-wasm.sh
WASM_OUT := $(CARGO_TARGET_DIR)/wasm/wasm32-wasip1/release
FILTER_WASM := $(WASM_OUT)/rendition_filter.wasm
ENVOY := $(ROOT)/.tools/bin/envoy

.PHONY: help setup setup-test build wasm test test-host test-wasm test-e2e test-trainer lint bench demo clean corpus train eval load fuzz

# The quality-model trainer (LightGBM) lives in its own workspace: LightGBM needs CMake >= 3.28,
# which pip's `cmake` provides (Debian 12 has 3.25), and it must not touch the main workspace's
# other CMake builds.
PYCMAKE := $(ROOT)/.tools/pycmake/cmake/data/bin/cmake
TRAINER_TARGET := $(dir $(CARGO_TARGET_DIR))trainer-target
TRAINER := CMAKE=$(PYCMAKE) CARGO_TARGET_DIR=$(TRAINER_TARGET) $(CARGO)
LABELS := sidecar/models/labels.jsonl.gz

help:
	@echo "make demo   build and start origin + sidecar + Envoy, and show it working"
	@echo "make test   every test of every crate, the wasm build, and the Envoy config check"
	@echo "make build | wasm | lint | bench | clean"

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

build: setup wasm
	$(CARGO) build --release --workspace

# The built module goes to dist/, the path envoy/envoy.yaml names, without the exports of the
# callbacks the filter does not implement (Envoy then skips them: scripts/slim-wasm.py says why).
wasm: setup
	$(WASM_CARGO) build --release -p rendition-filter
	@mkdir -p dist && python3 scripts/slim-wasm.py $(FILTER_WASM) dist/rendition_filter.wasm
	@echo "wasm: dist/rendition_filter.wasm ($$(stat -c %s dist/rendition_filter.wasm) bytes)"

test: setup-test test-host test-wasm test-e2e test-trainer
	@echo "make test: all passed"

$(PYCMAKE):
	python3 -m pip install --quiet --target $(ROOT)/.tools/pycmake "cmake>=3.28,<5"

# A small training run on a slice of the committed labels: the model text comes out and the
# sidecar's build.rs can compile it (trainer/tests/smoke.rs).
test-trainer: setup $(PYCMAKE)
	$(TRAINER) test --manifest-path trainer/Cargo.toml

test-host:
	python3 scripts/check-imports.py
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# The filter as Envoy loads it: built for wasm32-wasip1, then loaded by the real Envoy 1.40
# (--mode validate instantiates the V8 VMs, so a module that traps on start fails here).
test-wasm: wasm
	python3 tests/wasm/slim_wasm_test.py dist/rendition_filter.wasm
	scripts/envoy-validate.sh dist/rendition_filter.wasm

# End to end through the real processes (Envoy + filter, sidecar, origin): every example's
# verify.sh (each replays its README; examples/site is `make demo`), the filter's end-to-end
# suite (hits, formats, widths, Save-Data, DPR, forged headers, private responses, the sidecar
# killed and restarted), the /report page in headless Chromium, the hostile corpus and the
# security checks with the sidecar fetching over https (security over http too), and the
# origin's caching contract (freshness, revalidation, no-transform, Vary, https, bounded records),
# the shared tier across pods on a real SeaweedFS, and hostile clients (idle and slow-header
# connection floods, SIGTERM with a half-sent request). Uses the debug sidecar
# `cargo test` already built (its dependencies are optimized), not a second build.
test-e2e: setup-test test-host wasm
	set -e; for v in examples/*/verify.sh; do RENDITION_BIN=$(CARGO_TARGET_DIR)/debug/rendition $$v; done
	python3 tests/e2e/envoy_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/e2e/report_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	RENDITION_E2E_HTTPS=1 python3 tests/e2e/hostile_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/e2e/security_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	RENDITION_E2E_HTTPS=1 python3 tests/e2e/security_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/e2e/freshness_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/e2e/fleet_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/e2e/connections_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/deploy/check_manifests.py $(CARGO_TARGET_DIR)/debug/rendition
	python3 tests/deploy/check_dockerfiles.py
	python3 tests/e2e/faults_e2e.py $(CARGO_TARGET_DIR)/debug/rendition
	RENDITION_LOAD_SECONDS=20 RENDITION_STORM_URLS=1000 python3 tests/e2e/load_e2e.py $(CARGO_TARGET_DIR)/debug/rendition

# cargo-fuzz targets (mask parsing, index records, sniff + decode, the notify parser), each for
# FUZZ_SECONDS (60); scripts/fuzz.sh installs cargo-fuzz when missing. Not part of make test.
fuzz: setup
	scripts/fuzz.sh

# The load test at the scale docs/RELIABILITY.md reports (make test runs it smaller): 60 s of
# hits, then a miss storm of 5,000 distinct URLs drained until every variant exists.
load: setup-test test-host wasm
	RENDITION_LOAD_SECONDS=60 RENDITION_STORM_URLS=5000 python3 tests/e2e/load_e2e.py $(CARGO_TARGET_DIR)/debug/rendition

lint: setup
	python3 scripts/check-imports.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(WASM_CARGO) clippy --release -p rendition-shared -p rendition-filter -- -D warnings

# Benchmarks (not part of make test): parse+select, then the sidecar's pipeline on real photos
# (decode once against a decode per variant, per-format encodes, AVIF encoders incl. rav1e), then the real
# service's throughput, then the verified matrix against the unverified one and sharp's (npm,
# installed into .tools/sharp on first use). Results: docs/benchmarks.md.
bench: setup
	$(CARGO) bench -p rendition-shared --bench parse_select
	benches/fixtures.sh
	$(CARGO) bench -p rendition-sidecar --features ravif --bench matrix
	$(CARGO) build --release -p rendition-sidecar
	benches/throughput.sh benches/.fixtures/photo-2mp.jpg 8
	benches/throughput.sh benches/.fixtures/photo-12mp.jpg 2
	python3 benches/sharp_anchor.py --repeats 3

# The quality model (docs/quality.md): corpus -> labels -> models -> evaluation.
# `make train` reproduces the committed models from the committed labels; `make corpus`
# rebuilds the labels from the packages (about 80 min on 2 cores).
corpus: setup
	scripts/corpus.sh
	$(CARGO) build --release -p rendition-sidecar
	$(CARGO_TARGET_DIR)/release/rendition label .corpus/images/photo .corpus/images/graphic \
	  .corpus/images/screenshot --out .corpus/labels.jsonl --jobs 2
	gzip -9n < .corpus/labels.jsonl > $(LABELS)

train: setup $(PYCMAKE)
	$(TRAINER) build --release --manifest-path trainer/Cargo.toml
	gunzip -c $(LABELS) > $(TRAINER_TARGET)/labels.jsonl
	$(TRAINER_TARGET)/release/rendition-trainer $(TRAINER_TARGET)/labels.jsonl sidecar/models

eval: setup
	scripts/corpus.sh
	$(CARGO) build --release -p rendition-sidecar
	gunzip -c $(LABELS) > .corpus/labels-eval.jsonl
	$(CARGO_TARGET_DIR)/release/rendition eval .corpus/labels-eval.jsonl --images .corpus/images/photo \
	  --images .corpus/images/graphic --images .corpus/images/screenshot --out docs/quality-eval.md

demo: setup build
	scripts/demo.sh

clean:
	$(CARGO) clean
