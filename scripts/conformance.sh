#!/usr/bin/env bash
# API conformance: schemathesis (from PyPI) against a running `apiary serve` and the OpenAPI
# document it serves. Fails on any 5xx and on any response that breaks the schema.
# Usage: scripts/conformance.sh [max-examples]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-5}"
command -v st >/dev/null || python3 -m pip install --quiet --disable-pip-version-check schemathesis
st_bin="$(command -v st || echo "python3 -m schemathesis.cli")"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:${port}"
APIARY_ADMIN_PASSWORD="conformance password" APIARY_LOG=error \
  ./target/debug/apiary serve --data-dir "$work/data" --bind "127.0.0.1:${port}" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
token="$(./target/debug/apiary token create --data-dir "$work/data" --email admin@localhost --name conformance 2>/dev/null)"
# Run from the scratch folder: schemathesis keeps a cache where it runs.
(cd "$work" && $st_bin run "$base/api/v1/openapi.json" --url "$base" -H "Authorization: Bearer $token" \
  --max-examples "$examples" --checks not_a_server_error,response_schema_conformance --no-color 2>&1) \
  | grep -vE '^\s*$' | tail -n 25
