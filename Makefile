# Apiary: `make run` starts the whole system on the embedded default; `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DATA_DIR ?= ./apiary-data
BIND ?= 127.0.0.1:7878
export RUST_BACKTRACE ?= 0
export CARGO_TERM_COLOR ?= never

.PHONY: run build test lint test-sqlite test-postgres pg-up pg-clean nextest test-deps

build:
	$(CARGO) build --bin apiary

## Build and start `apiary serve --demo` on SQLite in $(DATA_DIR); the first start prints the
## admin's password and sets up a demo project whose agent is a bundled script.
run: build
	./target/debug/apiary serve --demo --data-dir $(DATA_DIR) --bind $(BIND)

## Every test: formatting, lints, the Rust suites on SQLite and on PostgreSQL.
test: lint test-sqlite test-postgres
	@echo "make test: all suites passed"

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## What the suites need besides Rust: a real SMTP server (aiosmtpd) for the email channel tests.
test-deps:
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd

nextest:
	@command -v cargo-nextest >/dev/null || $(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

test-sqlite: nextest test-deps
	@echo "== Rust suite on SQLite =="
	$(CARGO) nextest run --workspace --locked --no-fail-fast

test-postgres: nextest test-deps pg-up pg-clean
	@echo "== Rust suite on PostgreSQL ($(PG_URL)) =="
	APIARY_TEST_DATABASE_URL=$(PG_URL) $(CARGO) nextest run --workspace --locked --no-fail-fast
	@$(MAKE) --no-print-directory pg-clean

## Start the local PostgreSQL cluster when it is installed but not running; fail loudly when absent.
pg-up:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then \
	    echo "starting PostgreSQL"; \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start || true; \
	  fi; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432; the PostgreSQL suite cannot run"; exit 1; }

## Drop the per-test databases the suite created.
pg-clean:
	@psql "$(PG_URL)" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'apiary_t_%'" \
	  | while read -r db; do [ -n "$$db" ] && psql "$(PG_URL)" -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"; done; true
