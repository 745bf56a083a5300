# s4tf_py: `make demo`, `make test`, `make bench`. Each sets up .venv by itself on a fresh
# clone: it creates the virtual environment when missing and (re)installs the package in
# editable mode, with its native parts, whenever the build files or native sources changed
# (a stamp file in .venv records the last install).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST_ARGS ?=

# what a reinstall depends on: the build description and the native sources it compiles
BUILD_INPUTS := setup.py pyproject.toml $(wildcard runtime/*.c runtime/*.h runtime/*.py csrc/*.cpp csrc/*.h)

.PHONY: demo test bench venv clean help

help:
	@echo "make demo   train the tiny Gemma 3 on the embedded corpus (~2.5 min), then generate"
	@echo "make test   run the test suite (pytest -n 2)"
	@echo "make bench  run the ratio benchmarks against numpy, PyTorch and JAX"

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip install -e '.[test]' only when the build inputs are newer than the stamp
$(VENV)/.stamp-test: $(BUILD_INPUTS) | $(PY)
	$(PIP) install --disable-pip-version-check -q -e '.[test]'
	@touch $@

$(VENV)/.stamp-bench: $(BUILD_INPUTS) | $(PY)
	$(PIP) install --disable-pip-version-check -q -e '.[test,bench]'
	@touch $@ $(VENV)/.stamp-test

venv: $(VENV)/.stamp-test

demo: $(VENV)/.stamp-test
	$(PY) -m s4tf_py.demo

# pytest exits 5 when it collected no tests: that is a failure here, not a pass
test: $(VENV)/.stamp-test
	@$(PY) -m pytest -n 2 -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; exit 1; fi; \
	exit $$rc

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run.py

clean:
	rm -rf build s4tf_py/_runtime*.so s4tf_py/_native*.so s4tf_py.egg-info benchmarks/results
