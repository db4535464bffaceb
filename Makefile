# sagekeeper: the one entry point for people and CI. `make help` lists the targets.
#
# A fresh machine needs only Rust, Go, Python 3 and openssl: everything else (the Python venv
# with the pinned AWS emulator, kube-apiserver, etcd and kubectl built from their official Go
# modules) is installed by the targets that need it, and cached.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTHON := $(VENV)/bin/python
# The linters get a venv of their own: checkov pins libraries the emulator's must not share.
LINT_VENV := .venv-lint
POLICY_DUMP := $(or $(CARGO_TARGET_DIR),target)/policy-documents
STACK := .stack
CARGO ?= cargo
# Cluster tests mostly wait on servers, so more threads than cores is fine.
TEST_THREADS ?= 8

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# A stamp, not the python symlink: touching that would touch the interpreter it points to, and a
# failed install must not look finished.
$(VENV)/.installed: tests/emulator/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the Python venv with the pinned AWS emulator (moto + extension)

$(LINT_VENV)/.installed: tests/lint/requirements.txt
	python3 -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/lint/requirements.txt
	touch $@

.PHONY: lint-policies
lint-policies: $(LINT_VENV)/.installed ## parliament over the shipped and generated AWS policies, checkov over deploy/kubernetes
	rm -rf $(POLICY_DUMP)
	SAGEKEEPER_POLICY_DUMP=$(abspath $(POLICY_DUMP)) $(CARGO) test --quiet -p sagekeeper-policy limits::
	$(LINT_VENV)/bin/python tests/lint/check.py --generated $(POLICY_DUMP)

.PHONY: stack-bins
stack-bins: ## Build kube-apiserver, etcd, kubectl and helm from their Go modules (cached)
	@tests/stack/build-bins.sh >/dev/null

.PHONY: build
build: ## Build the workspace, the sagekeeper binary included
	$(CARGO) build --workspace --all-targets

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types (and the chart's copy, and deploy/kubernetes/)
	$(CARGO) run --quiet -p sagekeeper -- crds --out crds
	@$(MAKE) --no-print-directory manifests

.PHONY: image
image: stack-bins ## OCI image archive of the release binary (no container engine): target/sagekeeper-image.tar
	$(CARGO) build --release -p sagekeeper
	@tests/stack/image.sh $(abspath $(or $(CARGO_TARGET_DIR),target))/release/sagekeeper target/sagekeeper-image.tar

.PHONY: manifests
manifests: stack-bins ## Render deploy/helm/sagekeeper into deploy/kubernetes/sagekeeper.yaml; copy crds/ into the chart
	@tests/stack/render-chart.sh

.PHONY: lint
lint: ## rustfmt and clippy (warnings are errors)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: lint lint-policies venv stack-bins ## Everything: lint, policy and manifest linters, unit tests, emulator tests, cluster tests on a private stack
	$(CARGO) build -p sagekeeper
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)
	$(PYTHON) -m pytest tests/emulator tests/deploy -q -p no:cacheprovider

.PHONY: bench
bench: venv stack-bins ## Benchmarks: AWS calls per converge, drift check and registry poll, converge time, memory with 50 environments; the scale run (1,000 objects; writes bench-results/scale.json)
	$(CARGO) build --release -p sagekeeper
	SAGEKEEPER_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/release/sagekeeper $(CARGO) test -p sagekeeper-tests --test cluster bench -- --ignored --nocapture --test-threads=1

.PHONY: stack-up
stack-up: venv stack-bins ## Start the local stack (kube-apiserver, etcd, AWS emulator); writes .stack/env
	@tests/stack/up.sh $(STACK)
	@echo "run: source $(STACK)/env"

.PHONY: stack-down
stack-down: ## Stop exactly what stack-up started
	@tests/stack/down.sh $(STACK)

.PHONY: demo
demo: venv stack-bins ## The whole thing on the local stack: accounts, environment, project, deployment
	$(CARGO) build -p sagekeeper
	@tests/stack/demo.sh $(STACK)

.PHONY: demo-down
demo-down: stack-down ## Stop the demo (the controller and the stack)

.PHONY: clean
clean: stack-down ## Remove build output, the venv and the stack folder
	$(CARGO) clean
	rm -rf $(VENV) $(LINT_VENV) $(STACK)
