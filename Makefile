# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the package metadata changes; the stamp records the extra installed.
$(VENV)/.installed: setup.cfg setup.py pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: setup.cfg setup.py pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/fermtl-demo --out demo_output

# pytest-xdist workers: tracing tf.functions is single-threaded Python, so two workers use
# both cores of the development machine; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check fermtl_tf tests benchmarks data_prep train evaluate

clean:
	rm -rf demo_output .pytest_cache build *.egg-info
