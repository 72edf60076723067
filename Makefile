# Every target creates the virtual environment it needs; nothing has to be installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SCENARIO ?= all
PYTEST_ARGS ?=

.PHONY: venv lint test demo run crds clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# The demo needs only the demo extra (the embedded API server and the AWS stand-ins), not the dev tools.
DEMO_STAMP := $(VENV)/.demo-$(shell cksum pyproject.toml | cut -d' ' -f1)
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	rm -f $(VENV)/.demo-* && touch $@

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m jitgrant.crdgen crds --check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(DEMO_STAMP)
	$(BIN)/jitgrant demo --scenario $(SCENARIO)

run: venv
	$(BIN)/jitgrant run

crds: venv
	$(BIN)/python -m jitgrant.crdgen crds
	cp crds/*.yaml charts/jitgrant/files/crds/

# Every script in bench/ at its default size, except fleet.py (make bench-fleet) and grants.py: --quick (20 and 100 grants, a few
# minutes each on two cores) on the embedded API server, then on the real kube-apiserver `make kube`
# built. Without those binaries the real run prints one loud line and exits 3, and make bench goes on.
# Issue 16's sizes (100 and 1,000): `python bench/grants.py --full [--server real]`.
BENCH_GRANTS = $(BIN)/python bench/grants.py --quick
bench: venv
	for script in bench/*.py; do [ $$script = bench/grants.py ] || [ $$script = bench/fleet.py ] || $(BIN)/python $$script || exit 1; done
	$(BENCH_GRANTS) --server embedded
	$(BENCH_GRANTS) --server real || [ $$? -eq 3 ]

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The scale benchmarks only, with smaller N (a few minutes per server on two cores);
# `python bench/grants.py --full [--server real]` runs issue 16's (100 and 1,000 grants).
.PHONY: bench-quick
bench-quick: venv
	$(BIN)/python bench/embedded_server.py --quick
	$(BENCH_GRANTS) --server embedded
	$(BENCH_GRANTS) --server real || [ $$? -eq 3 ]

# Issue 30's fleet: one operator, 50 stand-in EKS clusters (own CA, EKS tokens, moto for STS/EKS), each
# figure next to one cluster's, then 20 of them dark (no TLS, and TLS then a stall); about 8 minutes
# on two cores. `python bench/fleet.py --full` is 100 clusters, `--quick` 3 (under a minute).
.PHONY: bench-fleet
bench-fleet: venv
	$(BIN)/python bench/fleet.py

# The fault suite: SIGKILL the operator at steps of the lifecycle, restart it, count orphans and lag.
.PHONY: chaos
chaos: venv
	$(BIN)/python tests/chaos/run_chaos.py

# A real control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) built from upstream
# source for tests/realapi, cached under ~/.cache/jitgrant/kube/<version>/ (docs/real-cluster.md).
# `make kube-node` adds the node half for make e2e (kubelet, kube-proxy, kube-scheduler, a pause
# program), cached beside it.
# Without Go it only warns, and pytest skips tests/realapi saying why.
.PHONY: kube kube-up
kube:
	@if command -v go >/dev/null 2>&1; then \
		bash tests/kube/build.sh >/dev/null; \
	else \
		echo "WARNING: no Go toolchain on PATH: kube-apiserver cannot be built, tests/realapi will be skipped"; \
	fi

# Start it for a person: prints the admin kubeconfig path, runs until Ctrl-C.
kube-up: venv kube
	$(BIN)/python -m jitgrant_testing.controlplane

# make test builds (or reuses) the control plane before pytest runs.
test: kube

# Ory Hydra, the real identity provider tests/realapi/hydra drives, built from its Go module and cached
# under ~/.cache/jitgrant/hydra/<version>/ (docs/real-cluster.md). It needs Go and a C compiler (cgo for
# its sqlite driver); without them it only warns, and pytest skips tests/realapi/hydra saying why.
.PHONY: hydra
hydra:
	@if command -v go >/dev/null 2>&1; then \
		bash tests/hydra/build.sh >/dev/null || { rc=$$?; [ $$rc -eq 2 ] || exit $$rc; \
			echo "WARNING: no C compiler on PATH: Ory Hydra cannot be built, tests/realapi/hydra will be skipped"; }; \
	else \
		echo "WARNING: no Go toolchain on PATH: Ory Hydra cannot be built, tests/realapi/hydra will be skipped"; \
	fi

test: hydra

# The operator image, built and checked (tests/image/build.sh): docker where an engine answers,
# else buildah (apt-get installs it), from a local debootstrap base when no registry is reachable
# (cached under ~/.cache/jitgrant/image). Writes build/image/sbom.cdx.json and runs pip-audit over
# the image's Python packages, failing on a vulnerability that has a fix.
.PHONY: image
image:
	bash tests/image/build.sh

# The operator image and the chart on a real one-node cluster on this machine (issue 23): needs
# root; builds the node binaries (make kube) and the image (make image) first, installs containerd,
# runc, the CNI plugins, iptables and conntrack with apt-get when missing (tests/kube/node-packages.sh).
# tests/e2e/test_node.py checks the node alone; run_e2e.py installs the chart and prints a table of
# steps (agent pod, approval, leader deletion, SIGKILL, API server outage, upgrade, uninstall,
# a hostNetwork install). The last stage of .ci/run.
.PHONY: e2e kube-node
kube-node:
	bash tests/kube/build.sh --node >/dev/null

e2e: venv kube-node image
	$(BIN)/python -m pytest tests/e2e --e2e -q -p no:cacheprovider
	$(BIN)/python tests/e2e/run_e2e.py
