#!/usr/bin/env bash
# One command, fresh machine: installs Deno if needed, then runs the demo (local relay, listener,
# port-forward and SOCKS5 proxy with a self-check). Extra arguments go to the demo (e.g. --once).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure_deno.sh
deno install --frozen >/dev/null
exec deno run -A --frozen main.ts demo "$@"
