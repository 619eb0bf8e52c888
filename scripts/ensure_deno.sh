#!/usr/bin/env bash
# Makes `deno` 2.9.6 available. Uses one on PATH if it is that version; else installs it from npm
# (global, or into ./.tools without root); with no npm, uses Deno's official install script via curl.
# Source it (`. scripts/ensure_deno.sh`) so PATH changes reach the caller.
DENO_WANT=2.9.6
_aztunnel_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for _d in "$_aztunnel_root/.tools/node_modules/.bin" "$HOME/.deno/bin"; do
  [ -x "$_d/deno" ] && PATH="$_d:$PATH"
done
export PATH
if ! deno --version 2>/dev/null | head -1 | grep -q "deno ${DENO_WANT} "; then
  echo "installing deno ${DENO_WANT}..." >&2
  if command -v npm >/dev/null 2>&1; then
    if ! npm install -g --allow-scripts=deno "deno@${DENO_WANT}" >/dev/null 2>&1; then
      npm install --prefix "$_aztunnel_root/.tools" --allow-scripts=deno "deno@${DENO_WANT}" >&2
      PATH="$_aztunnel_root/.tools/node_modules/.bin:$PATH"
    fi
  elif command -v curl >/dev/null 2>&1; then
    curl -fsSL https://deno.land/install.sh | sh -s -- -y "v${DENO_WANT}" >&2
    PATH="$HOME/.deno/bin:$PATH"
  else
    echo "aztunnel: need npm or curl to install Deno ${DENO_WANT}" >&2
    return 1 2>/dev/null || exit 1
  fi
  export PATH
  hash -r
fi
export RUST_BACKTRACE=0
