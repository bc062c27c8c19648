#!/usr/bin/env python3
"""Many idle tenants: memory and file descriptors per tenant, loaded and unloaded, and how
long a Hello takes to bring an unloaded tenant back (issue 8, RELIABILITY.md "Many tenants").

Starts the release `pagecore` (2 cores, 64 MiB cache, 1 MiB WAL segments, tenants unloaded
after IDLE seconds without a connection), creates N tenants with one timeline each through the
admin API, measures RSS and open fds, waits until every tenant is unloaded, measures again,
then times reader Hellos to SAMPLE unloaded tenants (each reloads its tenant) and to the same
tenants again (loaded). Prints a JSON summary.

Usage: bench/many_tenants.py [N=1000] [IDLE=10] [SAMPLE=50]
Binary: $PAGECORE (default target/release/pagecore).
"""
import json, os, random, socket, statistics, struct, subprocess, sys, tempfile, time
import urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
IDLE = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SAMPLE = int(sys.argv[3]) if len(sys.argv) > 3 else 50
BINARY = os.environ.get("PAGECORE", "target/release/pagecore")
ADDR, ADMIN = ("127.0.0.1", 17450), "127.0.0.1:17451"


def admin(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ADMIN}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text and path != "/metrics" else text


def metric(name):
    text = admin("GET", "/metrics").decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name) and not l.startswith("#"))


def usage(pid):
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def hello(tenant, timeline):
    """A reader Hello (PROTOCOL.md §Hello, no token); returns seconds to the answer."""
    payload = struct.pack("<HBB", 1, 1, 0) + bytes.fromhex(tenant) + bytes.fromhex(timeline)
    payload += struct.pack("<QH", 0, 0)
    # frame_len counts the bytes after itself (PROTOCOL.md, Frames).
    frame = struct.pack("<IBBHQ", 12 + len(payload), 0x01, 0, 0, 1) + payload
    started = time.perf_counter()
    with socket.create_connection(ADDR, timeout=30) as s:
        s.sendall(frame)
        answer = b""
        while len(answer) < 4 or len(answer) < 4 + struct.unpack("<I", answer[:4])[0]:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed")
            answer += chunk
    elapsed = time.perf_counter() - started
    status = struct.unpack("<H", answer[16:18])[0]
    if status != 0:
        raise RuntimeError(f"Hello answered status {status}: {answer[20:]!r}")
    return elapsed


def main():
    work = tempfile.mkdtemp(prefix="pagecore-tenants.")
    config = os.path.join(work, "pagecore.toml")
    with open(config, "w") as f:
        f.write(f"cores = 2\ncache_bytes = {64 << 20}\ntenant_idle_unload_secs = {IDLE}\n"
                f"log = \"warn\"\n[wal]\nsegment_size_bytes = {1 << 20}\n")
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([BINARY, "serve", "--config", config, "--data-dir",
                               os.path.join(work, "data"), "--listen", f"{ADDR[0]}:{ADDR[1]}",
                               "--admin-listen", ADMIN], stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                admin("GET", "/ready")
                break
            except Exception:
                time.sleep(0.1)
        before = usage(server.pid)
        started = time.time()
        tenants = []
        for _ in range(N):
            tenant = admin("POST", "/v1/tenants", {})["tenant_id"]
            timeline = admin("POST", f"/v1/tenants/{tenant}/timelines", {})["timeline_id"]
            tenants.append((tenant, timeline))
        created_s = time.time() - started
        loaded = usage(server.pid)
        deadline = time.time() + IDLE + 120
        while metric("pagecore_tenants_unloaded_total") < N:
            if time.time() > deadline:
                raise RuntimeError("not every tenant was unloaded")
            time.sleep(0.5)
        unloaded = usage(server.pid)
        sample = random.Random(7).sample(tenants, min(SAMPLE, N))
        reload = [hello(t, tl) for t, tl in sample]
        again = [hello(t, tl) for t, tl in sample]
        ms = lambda xs: {"p50": round(statistics.median(xs) * 1e3, 2),
                         "max": round(max(xs) * 1e3, 2)}
        print(json.dumps({
            "tenants": N, "created_s": round(created_s, 1),
            "before": {"rss_bytes": before[0], "fds": before[1]},
            "loaded": {"rss_bytes": loaded[0], "fds": loaded[1],
                       "rss_per_tenant": (loaded[0] - before[0]) // N,
                       "fds_per_tenant": (loaded[1] - before[1]) / N},
            "unloaded": {"rss_bytes": unloaded[0], "fds": unloaded[1],
                         "rss_per_tenant": (unloaded[0] - before[0]) // N,
                         "fds_per_tenant": (unloaded[1] - before[1]) / N},
            "hello_reactivating_ms": ms(reload), "hello_loaded_ms": ms(again),
            "reactivated": metric("pagecore_tenants_reactivated_total"),
        }, indent=1))
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
