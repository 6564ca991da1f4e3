# Apiary: `make run` starts the whole system on the embedded default; `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DATA_DIR ?= ./apiary-data
BIND ?= 127.0.0.1:7878
export RUST_BACKTRACE ?= 0
export CARGO_TERM_COLOR ?= never


.PHONY: podman-up gvisor-up podman-down kube-openapi kubectl-bin kube-manifests agent-clis github-schemas chat-schemas fuzz fuzz-smoke conformance run build test lint test-sqlite test-postgres pg-up pg-clean nextest test-deps web web-deps web-test api-drift web-e2e chromium

build: web
	$(CARGO) build --bin apiary

## The web UI: npm packages from the lock file, then type-check and build into web/dist
## (which the binary serves).
web-deps: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@# npm ci refuses lock files without the other platforms' optional packages (an npm bug);
	@# npm install keeps the locked versions and fills those in.
	cd web && npm install --no-audit --no-fund --loglevel=error

web: web-deps
	cd web && npm run --silent build

## Build and start `apiary serve --demo` on SQLite in $(DATA_DIR); the first start prints the
## admin's password and sets up a demo project whose agent is a bundled script.
run: build
	./target/debug/apiary serve --demo --data-dir $(DATA_DIR) --bind $(BIND)

## Every test: formatting, lints, the web unit tests, the Rust suites on SQLite and on
## PostgreSQL, the API types' drift check, and the end-to-end run in Chromium.
test: lint web-test test-sqlite api-drift conformance fuzz-smoke test-postgres web-e2e
	@echo "make test: all suites passed"

web-test: web
	@echo "== web unit tests (vitest) =="
	cd web && npx vitest run

## The UI's API types are generated from the server's OpenAPI document: fail when they drift.
api-drift:
	@./target/debug/apiary openapi > target/openapi.json
	@diff -q target/openapi.json web/openapi.json >/dev/null || { echo "web/openapi.json is stale: run 'make api-types'"; exit 1; }
	@cd web && npx openapi-typescript ../target/openapi.json -o ../target/schema.d.ts >/dev/null 2>&1
	@diff -q target/schema.d.ts web/src/api/generated/schema.d.ts >/dev/null || { echo "web/src/api/generated is stale: run 'make api-types'"; exit 1; }
	@echo "API types are in step with the server"

## A short run of every cargo-fuzz target (10 s each); a long run: `make fuzz FUZZ_SECONDS=600`.
FUZZ_TARGETS := markdown_v2 prompt_template box_host_response callback_body
FUZZ_SECONDS ?= 10
fuzz-smoke fuzz:
	@echo "== fuzzing ($(FUZZ_SECONDS) s a target) =="
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --quiet
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=../target/fuzz $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | tail -n 1 || exit 1; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz target $$t failed"; exit 1; }; \
	done

## schemathesis against a running server: no 5xx, no response outside the schema.
conformance:
	@echo "== API conformance (schemathesis) =="
	scripts/conformance.sh 5

## Regenerate the UI's API types from the server.
api-types:
	$(CARGO) build --bin apiary
	./target/debug/apiary openapi > web/openapi.json
	cd web && npm run --silent gen:api

## Debian's Chromium for the browser tests.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

web-e2e: chromium web
	@echo "== end-to-end in Chromium (screenshots in target/screenshots) =="
	cd web && node e2e/run.mjs

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## What the suites need besides Rust: a real SMTP server (aiosmtpd) for the email channel tests,
## the model providers' SDKs (their types check the stand-in provider's answers),
## bubblewrap, which sandboxes boxes and the agents inside them (the hostile-agent test needs it),
## curl, which the egress test's agent uses, openssl, which makes the GitHub App test's key,
## jsonschema, which checks requests against GitHub's and Slack's API descriptions, and aiogram,
## whose models of the Telegram Bot API check what Apiary sends to the Telegram stand-in.
test-deps:
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
	@python3 -c 'import anthropic, openai, google.genai' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check anthropic openai google-genai
	@python3 -c 'import jsonschema, referencing' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check jsonschema referencing
	@python3 -c 'import aiogram' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiogram==3.31.0
	@python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
	@command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }
	@command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }

## GitHub's published REST API description and webhook payload examples, from npm into
## target/github-schemas: the GitHub stand-in answers with the description's examples, every
## request it gets is checked against the description, and webhook tests send the examples.
GITHUB_SCHEMAS := $(CURDIR)/target/github-schemas
GITHUB_SCHEMA_PACKAGES := @octokit/openapi@23.0.2 @octokit/webhooks-examples@7.6.1
github-schemas: $(GITHUB_SCHEMAS)/.installed
$(GITHUB_SCHEMAS)/.installed: Makefile
	@echo "== installing GitHub's API description and webhook examples into $(GITHUB_SCHEMAS) =="
	@mkdir -p $(GITHUB_SCHEMAS)
	cd $(GITHUB_SCHEMAS) && npm install --no-audit --no-fund --loglevel=error --prefix . $(GITHUB_SCHEMA_PACKAGES)
	@touch $@

## Slack's Web API and Bolt TypeScript types, from npm into target/chat-schemas, turned into JSON
## Schemas (draft 7) in target/chat-schemas/slack/<Type>.json: scripts/check_slack_requests.py
## checks what Apiary sends to the Slack stand-in, and what the stand-in sends to Apiary, against
## them. The generator takes no generic type as a root, so BlockAction.json is made from an alias
## of BlockAction's default instance (BlockAction<BlockElementAction>), written beside them.
CHAT_SCHEMAS := $(CURDIR)/target/chat-schemas
CHAT_SCHEMA_PACKAGES := @slack/bolt@5.1.0 @slack/web-api@8.2.0 ts-json-schema-generator@2.9.0
SLACK_REQUEST_TYPES := ChatPostMessageArguments ChatUpdateArguments ChatPostEphemeralArguments ViewsOpenArguments
SLACK_PAYLOAD_TYPES := ViewSubmitAction SlashCommand
chat-schemas: $(CHAT_SCHEMAS)/.installed
$(CHAT_SCHEMAS)/.installed: Makefile
	@echo "== installing Slack's API types into $(CHAT_SCHEMAS) and generating their JSON Schemas =="
	@mkdir -p $(CHAT_SCHEMAS)/slack
	cd $(CHAT_SCHEMAS) && npm install --no-audit --no-fund --loglevel=error --prefix . $(CHAT_SCHEMA_PACKAGES)
	@printf '%s\n' "import type { BlockAction } from '@slack/bolt';" "export type BlockActionPayload = BlockAction;" > $(CHAT_SCHEMAS)/block-action.ts
	@cd $(CHAT_SCHEMAS) && gen() { echo "  slack/$$3.json"; \
	    node_modules/.bin/ts-json-schema-generator --no-type-check -p "$$1" -t "$$2" -o "slack/$$3.json.tmp" && mv "slack/$$3.json.tmp" "slack/$$3.json"; } && \
	  for t in $(SLACK_REQUEST_TYPES); do gen node_modules/@slack/web-api/dist/index.d.ts $$t $$t || exit 1; done && \
	  for t in $(SLACK_PAYLOAD_TYPES); do gen node_modules/@slack/bolt/dist/index.d.ts $$t $$t || exit 1; done && \
	  gen block-action.ts BlockActionPayload BlockAction
	@touch $@

## The suites keep their temporary folders outside /tmp: an agent's sandbox has a private /tmp,
## so the scripts a test hands a box must not live in the host's /tmp.
TEST_TMP ?= /var/tmp/apiary-tests
# Made when the Makefile is read: every tool that make runs (rustc, npm, pip) writes there.
_ := $(shell mkdir -p $(TEST_TMP))
export TMPDIR := $(TEST_TMP)

## The coding-agent CLIs the presets drive, each in the version the presets were proven with,
## from their registries into target/agent-clis (the real-agent suite puts them on its PATH).
AGENT_CLIS := $(CURDIR)/target/agent-clis
AGENT_CLI_PACKAGES := @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 opencode-ai@1.18.33 @google/gemini-cli@0.61.0
AIDER_VERSION := 0.86.2
agent-clis: $(AGENT_CLIS)/.installed
$(AGENT_CLIS)/.installed: Makefile
	@echo "== installing the agent CLIs into $(AGENT_CLIS) =="
	@mkdir -p $(AGENT_CLIS)
	cd $(AGENT_CLIS) && npm install --no-audit --no-fund --loglevel=error $(AGENT_CLI_PACKAGES)
	@test -x $(AGENT_CLIS)/aider/bin/aider || python3 -m venv $(AGENT_CLIS)/aider
	$(AGENT_CLIS)/aider/bin/pip install --quiet --disable-pip-version-check aider-chat==$(AIDER_VERSION)
	@touch $@

nextest:
	@mkdir -p $(TEST_TMP)
	@command -v cargo-nextest >/dev/null || $(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

## Podman from Debian and its Docker-compatible API service (rootful; runc, because crun
## cannot run on hybrid cgroups) on a socket of the tests' own: the container suites drive
## boxes through it. It keeps running between the suites (started in its own folder, never in
## a checkout that may be deleted under it); `make podman-down` stops it.
PODMAN_DIR := $(TEST_TMP)/podman
PODMAN_SOCK := $(PODMAN_DIR)/podman.sock
export APIARY_TEST_BOX_ENGINE := unix://$(PODMAN_SOCK)
podman-up: test-deps
	@command -v podman >/dev/null && command -v runc >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc catatonit >/dev/null; }
	@mkdir -p $(PODMAN_DIR)
	@curl -sf --unix-socket $(PODMAN_SOCK) http://d/_ping >/dev/null 2>&1 || { \
	  cd $(PODMAN_DIR); nohup podman --runtime runc system service --time=0 unix://$(PODMAN_SOCK) > $(PODMAN_DIR)/service.log 2>&1 & \
	  echo $$! > $(PODMAN_DIR)/service.pid; \
	  for i in $$(seq 1 100); do curl -sf --unix-socket $(PODMAN_SOCK) http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done; }
	@curl -sf --unix-socket $(PODMAN_SOCK) http://d/_ping >/dev/null || { echo "Podman's API service did not start: see $(PODMAN_DIR)/service.log"; exit 1; }
	@echo "Podman's API service is up at $(APIARY_TEST_BOX_ENGINE)"

## gVisor (Debian's runsc) and a second Podman service that runs its containers under it
## (Podman's API takes the runtime per service, not per container). Where runsc does not run,
## no service is started and the gVisor test says why.
GVISOR_SOCK := $(PODMAN_DIR)/gvisor.sock
export APIARY_TEST_GVISOR_ENGINE := unix://$(GVISOR_SOCK)
gvisor-up: podman-up
	@command -v runsc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null 2>&1 || true
	@if ! timeout 60 runsc --network=none do /bin/true >/dev/null 2>&1; then \
	  echo "gVisor: runsc does not run here; the gVisor test will say why"; \
	elif ! curl -sf --unix-socket $(GVISOR_SOCK) http://d/_ping >/dev/null 2>&1; then \
	  cd $(PODMAN_DIR); nohup podman --runtime /usr/bin/runsc --runtime-flag network=host system service --time=0 unix://$(GVISOR_SOCK) > $(PODMAN_DIR)/gvisor.log 2>&1 & \
	  echo $$! > $(PODMAN_DIR)/gvisor.pid; \
	  for i in $$(seq 1 100); do curl -sf --unix-socket $(GVISOR_SOCK) http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	  echo "Podman's API service under gVisor is up at $(APIARY_TEST_GVISOR_ENGINE)"; \
	fi

## Stop the services podman-up and gvisor-up started (by their pids).
podman-down:
	@for f in service gvisor; do test -f $(PODMAN_DIR)/$$f.pid && kill $$(cat $(PODMAN_DIR)/$$f.pid) 2>/dev/null; rm -f $(PODMAN_DIR)/$$f.pid; done; true

## Kubernetes: the OpenAPI v2 document kubectl validates manifests with (protobuf), built
## offline from the API's types in PyPI's kubernetes-validate with Debian's Go and gnostic; and
## kubectl (the PATH's, else Debian's kubernetes-client, unpacked into target/, since a
## cloud-sdk kubectl may hold /usr/bin/kubectl).
KUBE_DIR := $(CURDIR)/target/kubernetes
KUBE_PB := $(KUBE_DIR)/openapi-v2-1.34.pb
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(KUBE_DIR)/kc/usr/bin/kubectl)
kube-openapi: $(KUBE_PB)
$(KUBE_PB): scripts/kube_openapi_v2.py scripts/swagger2pb/main.go | test-deps
	@command -v go >/dev/null && test -d /usr/share/gocode/src/github.com/googleapis/gnostic || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-googleapis-gnostic-dev >/dev/null; }
	@mkdir -p $(KUBE_DIR)/gopath/src/swagger2pb
	@cp scripts/swagger2pb/main.go $(KUBE_DIR)/gopath/src/swagger2pb/
	cd $(KUBE_DIR) && GO111MODULE=off GOPATH=$(KUBE_DIR)/gopath:/usr/share/gocode GOCACHE=$(KUBE_DIR)/gocache go build -o swagger2pb swagger2pb
	python3 scripts/kube_openapi_v2.py 1.34 $(KUBE_DIR)/openapi-v2.json
	$(KUBE_DIR)/swagger2pb $(KUBE_DIR)/openapi-v2.json $@.tmp && mv $@.tmp $@
kubectl-bin:
	@test -x "$(KUBECTL)" || { mkdir -p $(KUBE_DIR) && cd $(KUBE_DIR) && { apt-get download -qq kubernetes-client 2>/dev/null || \
	  { apt-get update -qq && apt-get download -qq kubernetes-client; }; } && dpkg-deb -x kubernetes-client_*.deb kc; }

## The manifests in deploy/kubernetes apply (kubectl --dry-run=client against a stand-in of
## the API's discovery and OpenAPI document; each document against the API's types).
kube-manifests: test-deps kube-openapi kubectl-bin
	@echo "== the Kubernetes manifests apply =="
	python3 scripts/check_kubernetes_manifests.py $(KUBECTL) $(KUBE_PB) deploy/kubernetes

test-sqlite: nextest test-deps agent-clis github-schemas chat-schemas podman-up gvisor-up kube-manifests
	@echo "== the chat checkers catch what they must (bad Telegram and Slack records) =="
	python3 scripts/test_chat_checkers.py
	@echo "== Rust suite on SQLite =="
	$(CARGO) nextest run --workspace --locked --no-fail-fast

test-postgres: nextest test-deps agent-clis github-schemas chat-schemas podman-up gvisor-up pg-up pg-clean
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
