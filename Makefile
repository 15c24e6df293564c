# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: run test test-mariadb test-container lint bench browser clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## make run: SQLite in instance/, demo sign-in on, http://127.0.0.1:5000
run: $(STAMP)
	DISCUX_DEV_LOGIN=1 $(BIN)/flask --app app db upgrade
	DISCUX_DEV_LOGIN=1 $(BIN)/flask --app app run --host 127.0.0.1 --port 5000

## Debian's Chromium for Playwright (never a downloaded browser build), and the redis-server
## binary the tests start on free ports of their own (no Redis service is used or needed).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium \
			fonts-noto-color-emoji redis-server; \
	fi

## make test: everything, on SQLite (set DISCUX_TEST_DATABASE_URL for MariaDB/MySQL).
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/pytest

## make test-mariadb: the whole suite on a throwaway MariaDB of its own on a free port
## (.ci/with-mariadb; installs mariadb-server when missing), or on DISCUX_TEST_DATABASE_URL if set.
test-mariadb: $(DEV_STAMP) browser
	.ci/with-mariadb $(BIN)/pytest

## make test-container: build the image with podman (base made from Debian packages, no
## registry), run it on SQLite (and on DISCUX_TEST_DATABASE_URL's MariaDB when set), check migrate,
## /login, data kept over restarts (.ci/test-container; .ci/run runs it under .ci/with-mariadb).
test-container:
	.ci/test-container

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

## make bench: every benchmark at SPEC sizes (minutes; SQLite and MariaDB), figures on stdout.
bench: $(DEV_STAMP)
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.room_page
	$(BIN)/python -m bench.agent_overhead --engine sqlite
	$(BIN)/python -m bench.agent_overhead --engine mariadb
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.sockets
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.concurrency

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
