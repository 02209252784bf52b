# EdgeFuse: the two set-up commands of the README are `make demo` and `make test`.
# Both create .venv when it is missing and (re)install the package when its build inputs change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extras the tests and the demo need. torch is pinned (==2.13.0) inside the `train` extra, so it is
# resolved in the same install command as everything that depends on it.
EXTRAS ?= export,onnxruntime,litert,test
STAMP := $(VENV)/.edgefuse-installed

# Real audio for the data pipeline: FSDD beside the project, when present (read-only, never copied).
FSDD_DEFAULT := $(abspath ../shared/data/fsdd)
ifneq ($(wildcard $(FSDD_DEFAULT)/recordings),)
export EDGEFUSE_FSDD ?= $(FSDD_DEFAULT)
endif

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml CMakeLists.txt $(wildcard csrc/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

# The whole story end to end: train, robustness grid, export for every profile, parity, benchmarks,
# out/demo/report.html. FSDD audio when ../shared/data/fsdd exists (or EDGEFUSE_FSDD is set), else a
# clearly labelled synthetic audio modality.
demo: $(STAMP)
	$(VENV)/bin/edgefuse demo --out out/demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf build dist out .pytest_cache .ruff_cache
