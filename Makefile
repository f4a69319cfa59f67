# IoTLock: `make run` serves everything on embedded defaults; `make test` runs the tests;
# `make lint` runs ruff and mypy (configured in pyproject.toml).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
PYTEST_ARGS ?=
# `make test` runs the tests in this many pytest-xdist processes (CI has 2 cores; 0 = one
# process, e.g. for --pdb). Not part of PYTEST_ARGS, which `make bench` shares: benchmarks
# switch themselves off under xdist.
TEST_WORKERS ?= 2

.PHONY: run serve test lint setup db-upgrade emulator worker bench bench-serving bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-run: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.deps-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-test.txt
	touch $@ $(VENV)/.deps-run

setup: $(VENV)/.deps-run

db-upgrade: $(VENV)/.deps-run
	$(BIN)/flask --app wsgi db upgrade

run: db-upgrade
	PORT=$(PORT) $(BIN)/flask --app wsgi serve

# Production serving: migrations, then gunicorn (gunicorn.conf.py) and JOB_WORKERS job
# workers, on DATABASE_URL (scripts/serve.py). Ctrl+C stops them all.
JOB_WORKERS ?= 1
serve: $(VENV)/.deps-run
	PORT=$(PORT) JOB_WORKERS=$(JOB_WORKERS) exec $(BIN)/python scripts/serve.py

worker: db-upgrade
	$(BIN)/flask --app wsgi worker

emulator: $(VENV)/.deps-run
	$(BIN)/flask --app wsgi streamiot-emulator --host 127.0.0.1 --port 8181

test: $(VENV)/.deps-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.deps-test
	$(BIN)/ruff check portal tests benchmarks scripts config.py wsgi.py gunicorn.conf.py migrations
	$(BIN)/mypy

bench: $(VENV)/.deps-test
	$(BIN)/python -m pytest benchmarks --benchmark-only $(PYTEST_ARGS)
	$(BIN)/python -m benchmarks.serving

# The serving ratio table alone (portal vs hello-world under gunicorn; docs/performance.md).
bench-serving: $(VENV)/.deps-test
	$(BIN)/python -m benchmarks.serving

# The 10,000-household benchmark on PostgreSQL (benchmarks/scale.py; docs/performance.md):
# makes iotlock_scale_1 and iotlock_scale_$(HOUSEHOLDS) on BENCH_DATABASE_URL's server (or
# TEST_DATABASE_URL's; default the local postgres) unless they hold that size already, then
# measures pages and the worker's reader polling on both.
HOUSEHOLDS ?= 10000
bench-scale: $(VENV)/.deps-test
	$(BIN)/python -m benchmarks.scale --households $(HOUSEHOLDS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache tests/artifacts
