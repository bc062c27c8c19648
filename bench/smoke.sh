#!/usr/bin/env bash
# Bench smoke (CI): starts a pagecore on ports 17410/17411 with a temporary data directory and
# authentication on, runs `pagecore-bench smoke`, `init`, a few seconds of two workloads and a
# quick `ceiling`, checks that each JSON summary has the documented keys, and stops the server.
# Exits non-zero on failure.
#
# Binaries: $PAGECORE and $PAGECORE_BENCH (default target/release/pagecore and
# target/release/pagecore-bench, relative to the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
PAGECORE=${PAGECORE:-target/release/pagecore}
PAGECORE_BENCH=${PAGECORE_BENCH:-target/release/pagecore-bench}
PAGECORE=$(realpath "$PAGECORE")
PAGECORE_BENCH=$(realpath "$PAGECORE_BENCH")
ADDR=127.0.0.1:17410
ADMIN=127.0.0.1:17411

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Authentication on, as in production: the bench mints its tokens from the token secret.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token_secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin_token"
printf '[auth]\ntoken_secret_file = "%s"\nadmin_token_file = "%s"\n' \
    "$work/token_secret" "$work/admin_token" >"$work/pagecore.toml"
"$PAGECORE" serve --config "$work/pagecore.toml" --data-dir "$work/data" --listen "$ADDR" \
    --admin-listen "$ADMIN" --log warn >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    if curl -fs "http://$ADMIN/ready" >/dev/null 2>&1 || python3 - "$ADMIN" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}/ready", timeout=1)
PY
    then
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "smoke: server died" >&2; exit 1; }
    sleep 0.1
done

bench() {
    "$PAGECORE_BENCH" --addr "$ADDR" --admin-addr "$ADMIN" \
        --token-secret-file "$work/token_secret" --admin-token-file "$work/admin_token" "$@"
}

# JSON check: required top-level keys and, for each named operation, the latency keys.
check() {
    python3 - "$@" <<'PY'
import json, sys
path, ops = sys.argv[1], sys.argv[2:]
doc = json.load(open(path))
for key in ["schema_version", "command", "config", "duration_s", "throughput_per_s", "errors", "ops", "intervals"]:
    assert key in doc, f"{path}: missing {key}"
assert doc["throughput_per_s"] > 0, f"{path}: zero throughput"
for op in ops:
    assert op in doc["ops"], f"{path}: missing ops.{op} (have {sorted(doc['ops'])})"
    for key in ["count", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us"]:
        assert key in doc["ops"][op], f"{path}: missing ops.{op}.{key}"
    assert doc["ops"][op]["count"] > 0, f"{path}: ops.{op}.count is 0"
print(f"smoke: {path}: ok ({doc['throughput_per_s']:.0f}/s)")
PY
}

cd "$work"
bench smoke
bench init --scale 1 --tenants 2 --json init.json
check init.json append_wal
bench run -b tpcb-like -c 4 -T 3 -P 1 --json tpcb.json --hdr-log tpcb.hlog --html tpcb.html
check tpcb.json transaction get_page commit append_wal
bench run -b getpage-zipf --theta 0.99 -c 4 --pipeline 8 -T 2 --lsn random-in-window \
    --vs-ceiling --quick --data-dir "$work/data" --json zipf.json
check zipf.json transaction get_page
python3 - <<'PY'
import json
doc = json.load(open("zipf.json"))
assert "get_page_throughput_vs_loopback" in doc["ratios"], "zipf.json: missing ratios"
assert "loopback" in doc["ceiling"], "zipf.json: missing ceiling"
PY
bench run -b select-only -c 2 -R 2000 -L 50 -t 500 --json rate.json
check rate.json transaction get_page schedule_lag
bench ceiling --quick --data-dir "$work/data" --clients 2 --pipeline 4 --json ceiling.json
check ceiling.json loopback_reply fdatasync disk_read_qd1 disk_read_qd32 aes_xts_page
python3 - <<'PY'
import json
doc = json.load(open("ceiling.json"))
for key in ["disk_read", "loopback", "aes", "fdatasync"]:
    assert key in doc["ceiling"], f"ceiling.json: missing ceiling.{key}"
PY
grep -q '^Tag=transaction,' tpcb.hlog || { echo "smoke: tpcb.hlog has no transaction intervals" >&2; exit 1; }
grep -q '<svg' tpcb.html || { echo "smoke: tpcb.html has no plot" >&2; exit 1; }
kill -0 "$server_pid" || { cat server.log; echo "smoke: server died during the run" >&2; exit 1; }

# TLS: the same server binary with [tls] on both listeners, certificates from a throwaway CA;
# the bench connects with --tls-ca / --admin-tls-ca.
kill "$server_pid"
wait "$server_pid" || true
server_pid=
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key \
    -out ca.crt -subj "/CN=smoke CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt 2>/dev/null
printf '[tls]\ncert_chain_file = "%s"\nprivate_key_file = "%s"\nprotocol = true\nadmin = true\n' \
    "$work/server.crt" "$work/server.key" >>"$work/pagecore.toml"
"$PAGECORE" serve --config "$work/pagecore.toml" --data-dir "$work/data-tls" --listen "$ADDR" \
    --admin-listen "$ADMIN" --log warn >"$work/server-tls.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -fs --cacert ca.crt --resolve "localhost:${ADMIN##*:}:127.0.0.1" \
        "https://localhost:${ADMIN##*:}/ready" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat server-tls.log; echo "smoke: TLS server died" >&2; exit 1; }
    sleep 0.1
done
bench --tls-ca ca.crt --admin-tls-ca ca.crt smoke
bench --tls-ca ca.crt --admin-tls-ca ca.crt init --scale 1 --tenants 1 --state tls-state.json
bench --tls-ca ca.crt --admin-tls-ca ca.crt run --state tls-state.json -b getpage-uniform -c 2 \
    --pipeline 4 -T 2 --json tls.json
check tls.json transaction get_page
kill -0 "$server_pid" || { cat server-tls.log; echo "smoke: TLS server died during the run" >&2; exit 1; }
echo "smoke: bench smoke passed"
