# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded configuration (SQLite, eager tasks, local-memory cache) needs no environment at all.
PG_URL ?= postgres://postgres:postgres@127.0.0.1:5432/arena
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# The tests' pre-trained tiny models: built once (minutes), reused while generation/tiny is unchanged.
TINY_DIR ?= var/cache/tiny-models

.PHONY: install run test test-services test-postgres test-embedded tiny-models demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[gpu,dev]"
	@touch $(STAMP)

# Progress bars and library warnings off (ARENA_VERBOSE=1 keeps them); the seeding's log is var/log/seed.log.
QUIET := TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 DIFFUSERS_VERBOSITY=error TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore

demo: install
	@$(PY) manage.py migrate --noinput --verbosity 0
	@$(PY) manage.py collectstatic --noinput --verbosity 0
	@mkdir -p var/log
	@echo "Seeding the demo (tiny models, prompts, images; kept for the next run; log: var/log/seed.log)"
	@if [ "$(ARENA_VERBOSE)" = "1" ]; then $(PY) manage.py seed_demo; else \
	  $(QUIET) $(PY) manage.py seed_demo > var/log/seed.log 2>&1 & pid=$$!; trap 'kill $$pid 2>/dev/null; exit 130' INT TERM; \
	  start=$$(date +%s); while kill -0 $$pid 2>/dev/null; do printf '\r  %s s' $$(( $$(date +%s) - start )); sleep 1; done; \
	  wait $$pid || { echo; tail -n 40 var/log/seed.log; exit 1; }; printf '\r  seeded in %s s\n' $$(( $$(date +%s) - start )); fi

# The web server and a Celery worker together (a filesystem queue under var/queue, a cache under var/cache);
# one Ctrl-C stops both. HOST and PORT choose where it listens.
run: demo
	@HOST=$(HOST) PORT=$(PORT) $(PY) manage.py serve --host $(HOST) --port $(PORT)

test-services:
	bash scripts/test-services.sh

tiny-models: install
	$(PY) manage.py make_tiny_models $(TINY_DIR)

test: install test-services tiny-models
	$(MAKE) --no-print-directory test-postgres
	$(MAKE) --no-print-directory test-embedded

test-postgres:
	@echo "=== suite against PostgreSQL and Redis ==="
	ARENA_TINY_MODELS_DIR=$(abspath $(TINY_DIR)) DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) CELERY_TASK_ALWAYS_EAGER=1 ARENA_TEST_REDIS_URL=$(REDIS_TEST_URL) \
		$(PY) -m pytest $(PYTEST_ARGS)

test-embedded:
	@echo "=== suite in the embedded configuration (SQLite, eager tasks, local-memory cache) ==="
	env -u DATABASE_URL -u REDIS_URL ARENA_TINY_MODELS_DIR=$(abspath $(TINY_DIR)) ARENA_TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
