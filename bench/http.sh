#!/usr/bin/env bash
# HTTP hello benchmark for docs/BENCHMARKS.md: `trellis run` vs native hyper vs `wasmtime serve`,
# same component, same load tool and settings, one server at a time, in one run.
#
#   [ROUNDS=3] bench/http.sh [DURATION] [CONNECTIONS] [WRK_THREADS]      (defaults: 10s 50 1)
#
# Needs: wrk (apt-get install wrk), wasmtime (cargo install wasmtime-cli --version ^48 --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-50}
THREADS=${3:-1}
ROUNDS=${ROUNDS:-3}

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

start() { # NAME ADDR -- command...
  local name=$1 addr=$2; shift 3
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  wait_port "$addr"
}
start hyper 127.0.0.1:18081 -- target/release/hyper-hello 127.0.0.1:18081
start trellis 127.0.0.1:18080 -- env TRELLIS_LOG=warn $TRELLIS run "$WORK/hello.wasm" --http 127.0.0.1:18080 \
  --trusted-issuer "$PUB" --cache-dir "$WORK/cache"
start wasmtime 127.0.0.1:18082 -- "$WASMTIME" serve --addr 127.0.0.1:18082 -Scli "$WORK/hello.wasm"
declare -A ADDR=([hyper]=127.0.0.1:18081 [trellis]=127.0.0.1:18080 [wasmtime]=127.0.0.1:18082)
SERVERS=(hyper trellis wasmtime)

# Rounds interleave the servers so that noise from a shared machine hits all of them alike;
# each figure reported is the median over the rounds.
for n in "${SERVERS[@]}"; do wrk -t"$THREADS" -c"$CONNS" -d2s "http://${ADDR[$n]}/" >/dev/null; done  # warm-up
for round in $(seq 1 "$ROUNDS"); do
  for n in "${SERVERS[@]}"; do
    out="$WORK/$n.$round.wrk"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://${ADDR[$n]}/" >"$out"
    if grep -q "Non-2xx\|Socket errors" "$out"; then
      echo "warning: $n round $round had errors:" >&2; grep "Non-2xx\|Socket errors" "$out" >&2
    fi
    echo "round $round $n: $(awk '/Requests\/sec/ {print $2}' "$out") req/s" >&2
  done
done

# median FIELD SERVER: FIELD is rps, p50 or p99 (latencies in microseconds).
median() {
  python3 - "$WORK" "$2" "$ROUNDS" "$1" <<'PY'
import re, statistics, sys
work, name, rounds, field = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def us(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
vals = []
for r in range(1, rounds + 1):
    text = open(f"{work}/{name}.{r}.wrk").read()
    if field == "rps":
        vals.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
    else:
        pct = {"p50": "50%", "p99": "99%"}[field]
        vals.append(us(re.search(rf"^\s+{pct}\s+(\S+)", text, re.M).group(1)))
print(f"{statistics.median(vals):.0f}")
PY
}
declare -A RPS P50 P99
for n in "${SERVERS[@]}"; do
  RPS[$n]=$(median rps "$n"); P50[$n]=$(median p50 "$n"); P99[$n]=$(median p99 "$n")
done

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, median of $ROUNDS interleaved rounds, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| server | req/s | p50 (µs) | p99 (µs) | req/s vs hyper | req/s vs wasmtime serve |"
echo "|---|---|---|---|---|---|"
for n in hyper trellis wasmtime; do
  echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | $(ratio "${RPS[$n]}" "${RPS[hyper]}") | $(ratio "${RPS[$n]}" "${RPS[wasmtime]}") |"
done
