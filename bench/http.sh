#!/usr/bin/env bash
# HTTP hello benchmark for docs/BENCHMARKS.md: `trellis run` vs native hyper vs `wasmtime serve`,
# same component, same load tool and settings, one server at a time, in one run.
#
#   bench/http.sh [DURATION] [CONNECTIONS] [WRK_THREADS]      (defaults: 10s 50 1)
#
# Needs: wrk (apt-get install wrk), wasmtime (cargo install wasmtime-cli --version ^48 --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-50}
THREADS=${3:-1}

command -v wrk >/dev/null || { echo "error: wrk missing: apt-get install -y wrk" >&2; exit 1; }
WASMTIME=$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")
[ -x "$WASMTIME" ] || { echo "error: wasmtime missing: cargo install wasmtime-cli --version ^48 --locked" >&2; exit 1; }

cargo build --release --quiet -p trellis-cli -p trellis-bench
cargo build --release --quiet --target wasm32-wasip2 --manifest-path examples/Cargo.toml
TRELLIS=target/release/trellis
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

KEY=$($TRELLIS keys gen account --output json)
SEED=$(echo "$KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seed"])')
PUB=$(echo "$KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
$TRELLIS claims sign examples/target/wasm32-wasip2/release/http_hello.wasm \
  --issuer "$SEED" --name http-hello -o "$WORK/hello.wasm" >/dev/null

wait_port() { for _ in $(seq 1 300); do curl -fs "http://$1/" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not come up" >&2; return 1; }

# run_one NAME ADDR -- command...
declare -A RPS P50 P99
run_one() {
  local name=$1 addr=$2; shift 3
  "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$addr"
  wrk -t"$THREADS" -c"$CONNS" -d2s "http://$addr/" >/dev/null   # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://$addr/" >"$WORK/$name.wrk"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  RPS[$name]=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.wrk")
  P50[$name]=$(awk '$1=="50%" {print $2}' "$WORK/$name.wrk")
  P99[$name]=$(awk '$1=="99%" {print $2}' "$WORK/$name.wrk")
  if grep -q "Non-2xx\|Socket errors" "$WORK/$name.wrk"; then
    echo "warning: $name had errors:" >&2; grep "Non-2xx\|Socket errors" "$WORK/$name.wrk" >&2
  fi
}

run_one hyper 127.0.0.1:18081 -- target/release/hyper-hello 127.0.0.1:18081
run_one trellis 127.0.0.1:18080 -- env TRELLIS_LOG=warn $TRELLIS run "$WORK/hello.wasm" --http 127.0.0.1:18080 \
  --trusted-issuer "$PUB" --cache-dir "$WORK/cache"
run_one wasmtime 127.0.0.1:18082 -- "$WASMTIME" serve --addr 127.0.0.1:18082 -Scli "$WORK/hello.wasm"

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| server | req/s | p50 | p99 | req/s vs hyper | req/s vs wasmtime serve |"
echo "|---|---|---|---|---|---|"
for n in hyper trellis wasmtime; do
  echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | $(ratio "${RPS[$n]}" "${RPS[hyper]}") | $(ratio "${RPS[$n]}" "${RPS[wasmtime]}") |"
done
