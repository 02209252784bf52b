# EdgeFuse: the two set-up commands of the README are `make demo` and `make test`.
# Both create .venv when it is missing and (re)install the package when its build inputs change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Extras the tests and the demo need. torch is pinned (==2.13.0) inside the `train` extra, so it is
# resolved in the same install command as everything that depends on it. `ray` runs the Ray sweep tests;
# `zoo` holds the pretrained weights of the reference workload (edgefuse.models.zoo).
EXTRAS ?= export,onnxruntime,litert,test,ray,zoo
STAMP := $(VENV)/.edgefuse-installed

# Real audio for the data pipeline: FSDD beside the project, when present (read-only, never copied).
FSDD_DEFAULT := $(abspath ../shared/data/fsdd)
ifneq ($(wildcard $(FSDD_DEFAULT)/recordings),)
export EDGEFUSE_FSDD ?= $(FSDD_DEFAULT)
endif

.PHONY: demo test lint install clean sanitize wheel-arm test-arm

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

# Two pytest workers (one per core), one file per worker at a time (module fixtures such as the demo run
# stay in one process), one torch thread each so the two do not oversubscribe the cores.
TEST_WORKERS ?= 2

test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The kernel built with AddressSanitizer + UndefinedBehaviorSanitizer into build/sanitize (the installed
# extension is not touched), then tests/csrc and a 10,000-call hostile-input fuzz run against it: a
# sitecustomize.py there makes `edgefuse._fusion` load from $$EDGEFUSE_FUSION_SO for these runs only.
# libasan is preloaded into Python (with libstdc++, or ASan cannot intercept C++ throws); leak
# detection is off (CPython keeps objects alive by design).
SANITIZE_DIR := build/sanitize
SANITIZE_CXXFLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -fopenmp-simd -fno-math-errno -shared -fPIC -Icsrc
SANITIZE_SO = $(SANITIZE_DIR)/_fusion$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
SANITIZE_ENV = PYTHONPATH=$(SANITIZE_DIR) EDGEFUSE_FUSION_SO=$(abspath $(SANITIZE_SO)) \
	LD_PRELOAD="$(shell $(CXX) -print-file-name=libasan.so) $(shell $(CXX) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

sanitize: | $(STAMP)
	mkdir -p $(SANITIZE_DIR)
	test -f $(SANITIZE_DIR)/deps/pybind11/__init__.py || \
		$(PY) -m pip install --quiet --target $(SANITIZE_DIR)/deps "pybind11>=2.13"
	$(CXX) $(SANITIZE_CXXFLAGS) $$(PYTHONPATH=$(SANITIZE_DIR)/deps $(PY) -m pybind11 --includes) \
		-DEDGEFUSE_VERSION='"'$$($(PY) -c 'import importlib.metadata as m; print(m.version("edgefuse"))')'"' \
		csrc/fusion.cpp csrc/bindings.cpp -o $(SANITIZE_SO)
	$(PY) tests/security/fuzz_kernel.py --write-shadow $(SANITIZE_DIR)
	$(SANITIZE_ENV) $(PY) -m pytest -q -p no:cacheprovider tests/csrc
	$(SANITIZE_ENV) $(PY) tests/security/fuzz_kernel.py --calls 10000 --expect-kernel $(SANITIZE_DIR)

# aarch64 (Raspberry Pi 5, Jetson, Cortex-A53 devices), built and tested on this x86-64 Debian host:
# wheel-arm cross-compiles dist/edgefuse-*-cp311-cp311-linux_aarch64.whl (cmake/aarch64-linux-gnu.cmake);
# test-arm also runs the kernel tests and every ARM profile's artifacts (ONNX/TFLite, fp32/fp16/int8) under
# qemu-aarch64 against the x86 outputs. Needs qemu-user-static, g++-aarch64-linux-gnu and the arm64 dpkg
# architecture (.ci/run installs them). Downloads are cached in ~/.cache/edgefuse/arm, the rest in .cache/arm.
wheel-arm: $(STAMP)
	$(PY) tools/arm/arm.py wheel

test-arm: $(STAMP)
	$(PY) tools/arm/arm.py test --full

clean:
	rm -rf build dist out .pytest_cache .ruff_cache .cache/arm
