#!/usr/bin/env bash
# Uncached GetPage with encryption on vs off, in one run (issue 6): two servers with no buffer
# cache, one core each, one tenant each loaded with the same `init --scale`, flushed and
# compacted to image layers (one O_DIRECT read per GetPage); then `run -b getpage-uniform`
# against each in turn, ROUNDS times, alternating (and swapping which goes first), so drift on
# a shared machine hits both.
# Prints one JSON summary per run to $OUT/{plain,sealed}-<round>.json and a table.
#
# Usage: bench/encryption.sh [SCALE] [CLIENTS] [ROUNDS] [SECONDS]   (defaults 20 8 3 5)
# Binaries: $PAGECORE, $PAGECORE_BENCH (default target/release/...); $OUT (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-20}
CLIENTS=${2:-8}
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-5}
PAGECORE=$(realpath "${PAGECORE:-target/release/pagecore}")
PAGECORE_BENCH=$(realpath "${PAGECORE_BENCH:-target/release/pagecore-bench}")
work=$(mktemp -d "${TMPDIR:-/tmp}/pagecore-enc.XXXXXX")
OUT=${OUT:-$work}
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work/plain" "$work/sealed"
}
trap cleanup EXIT

start() { # name port admin_port provider
    mkdir -p "$work/$1"
    printf 'cores = 1\ncache_bytes = 0\n[encryption]\nprovider = "%s"\n' "$4" >"$work/$1.toml"
    "$PAGECORE" serve --config "$work/$1.toml" --data-dir "$work/$1/data" --listen "127.0.0.1:$2" \
        --admin-listen "127.0.0.1:$3" --log warn >"$work/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$3/ready', timeout=1)" \
            2>/dev/null && return 0
        sleep 0.1
    done
    cat "$work/$1.log"; echo "server $1 did not start" >&2; exit 1
}

load() { # name port admin_port
    "$PAGECORE_BENCH" --addr "127.0.0.1:$2" --admin-addr "127.0.0.1:$3" init --scale "$SCALE" \
        --state "$work/$1-state.json" >/dev/null
    python3 - "$work/$1-state.json" "$3" <<'PY'
import json, sys, urllib.request
state, admin = json.load(open(sys.argv[1])), sys.argv[2]
for t in state["tenants"]:
    for op in ["flush", "compact", "compact"]:
        url = f"http://127.0.0.1:{admin}/v1/tenants/{t['tenant_id']}/timelines/{t['timeline_id']}/{op}"
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=600).read()
    info = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/v1/tenants/{t['tenant_id']}"))
    tl = info["timelines"][0]
    print(f"{sys.argv[1].rsplit('/', 1)[1]}: encrypted={info['keys']['encrypted']} "
          f"image_layers={tl['image_layers']} delta_layers={tl['delta_layers']} "
          f"stored_versions={tl['stored_versions']}")
PY
}

start plain 17430 17431 none
start sealed 17432 17433 dev
load plain 17430 17431
load sealed 17432 17433
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so an order effect cannot favour either.
    order="plain sealed"
    [ $((round % 2)) = 0 ] && order="sealed plain"
    for name in $order; do
        port=$([ $name = plain ] && echo 17430 || echo 17432)
        admin=$((port + 1))
        "$PAGECORE_BENCH" --addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin" run \
            -b getpage-uniform -c "$CLIENTS" --pipeline 1 -T "$SECONDS_PER_RUN" \
            --state "$work/$name-state.json" --json "$OUT/$name-$round.json" >/dev/null
    done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def summary(name, r):
    doc = json.load(open(f"{out}/{name}-{r}.json"))
    ops = doc["ops"]
    op = ops.get("get_page") or next(iter(ops.values()))
    errors = doc["errors"] if isinstance(doc["errors"], (int, float)) else sum(doc["errors"].values())
    return doc["throughput_per_s"], op["p50_us"], op["p99_us"], errors
print("round  plain/s  sealed/s  ratio  plain p99  sealed p99  p99 ratio  errors")
ratios, p99s = [], []
for r in range(1, rounds + 1):
    (pt, _, p99p, pe), (st, _, p99s_, se) = summary("plain", r), summary("sealed", r)
    ratios.append(st / pt); p99s.append(p99s_ / p99p)
    print(f"{r:5}  {pt:8.0f}  {st:8.0f}  {st/pt:5.3f}  {p99p:9.0f}  {p99s_:10.0f}  {p99s_/p99p:9.3f}  {pe}+{se}")
print(f"median throughput ratio {statistics.median(ratios):.3f}, median p99 ratio {statistics.median(p99s):.3f}")
PY
