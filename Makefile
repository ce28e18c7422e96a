# Quick start: `make integration` (the main job) and `make test` (the whole suite).
# Both build the virtualenv from scratch on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv integration test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## The main job: the reference service's integration suite on the embedded (local) backend.
integration: $(VENV)/.installed
	$(PY) -m pytest tests/service -n 2 $(PYTEST_ARGS)

## Every test (unit + integration), in parallel as CI runs it.
test: $(VENV)/.installed
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pytest_aegis aegis_service tests
	$(VENV)/bin/mypy pytest_aegis

## Full benchmarks (on demand; CI runs only a quick smoke of them).
bench: $(VENV)/.installed
	$(PY) -m pytest_aegis.bench --out bench-results/bench.json

clean:
	rm -rf $(VENV) build *.egg-info
