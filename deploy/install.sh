#!/usr/bin/env bash
# Installs pagecore on this machine: the binaries, a dedicated user, the config, the data
# directory and the systemd unit; then starts it and waits until /ready answers.
#
#   deploy/install.sh [--binary PATH] [--bench PATH] [--data-dir DIR] [--cpus 2-9]
#                     [--no-start] [--root DIR]
#
# --binary/--bench  use these binaries (default: build them with cargo --release)
# --data-dir        data directory (default /var/lib/pagecore; mount the NVMe file system here)
# --cpus            CPUs for pagecore's cores, e.g. 2-9 or 2,3,4,5 (pinning and CPUAffinity)
# --no-start        install but do not enable or start the service
# --root DIR        lay the files out under DIR only (no user, no systemctl): for packaging
#                   and tests
#
# An existing /etc/pagecore/pagecore.toml is never overwritten (the new example goes next to
# it as pagecore.toml.new). Re-running the script upgrades the binaries and the unit.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
binary="" bench="" data_dir="/var/lib/pagecore" cpus="" start=1 root=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --bench) bench="$2"; shift 2 ;;
        --data-dir) data_dir="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --no-start) start=0; shift ;;
        --root) root="$2"; start=0; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or use --root DIR to stage files)" >&2
    exit 1
fi

# Expands "2-4,7" into "2, 3, 4, 7" for the TOML list.
expand_cpus() {
    local out="" part a b i
    IFS=',' read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ "$part" == *-* ]]; then a="${part%-*}"; b="${part#*-}"; else a="$part"; b="$part"; fi
        for ((i = a; i <= b; i++)); do out="${out:+$out, }$i"; done
    done
    echo "$out"
}

if [ -z "$binary" ]; then
    say "building pagecore and pagecore-bench (release)"
    commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    (cd "$repo" && PAGECORE_COMMIT="$commit" cargo build --release -p server -p bench)
    binary="$repo/target/release/pagecore"
    bench="${bench:-$repo/target/release/pagecore-bench}"
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }

if [ -z "$root" ]; then
    # Kernel facts the server depends on.
    disabled="$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)"
    [ "$disabled" = 0 ] || warn "kernel.io_uring_disabled=$disabled: pagecore needs io_uring (set it to 0)"
    if ! getent passwd pagecore >/dev/null; then
        say "creating system user pagecore"
        useradd --system --user-group --home-dir "$data_dir" --no-create-home \
            --shell /usr/sbin/nologin --comment "pagecore page server" pagecore
    fi
fi

say "installing binaries to $root/usr/local/bin"
install -d "$root/usr/local/bin" "$root/etc/pagecore" "$root/etc/systemd/system/pagecore.service.d" \
    "$root/usr/local/share/doc/pagecore"
install -m 0755 "$binary" "$root/usr/local/bin/pagecore"
if [ -n "$bench" ] && [ -x "$bench" ]; then
    install -m 0755 "$bench" "$root/usr/local/bin/pagecore-bench"
fi
install -m 0644 "$here/README.md" "$root/usr/local/share/doc/pagecore/README.md"

config="$root/etc/pagecore/pagecore.toml"
target="$config"
if [ -e "$config" ]; then
    target="$config.new"
    say "keeping the existing $config; the example goes to $target"
fi
sed -e "s|^data_dir = .*|data_dir = \"$data_dir\"|" "$here/pagecore.toml" >"$target"
if [ -n "$cpus" ]; then
    sed -i -e "s|^cpus = .*|cpus = [$(expand_cpus "$cpus")]|" "$target"
fi
chmod 0644 "$target"

# The example config's key provider: a keyring file off the data disk with one random CMK.
# Never overwritten (a lost CMK makes every encrypted tenant unreadable); back it up apart
# from the data, or switch to a `command` provider backed by a KMS (deploy/README.md, "Keys").
keyring="$root/etc/pagecore/keyring.toml"
if [ ! -e "$keyring" ]; then
    say "creating $keyring with a new random CMK \"default\" (back it up, apart from the data)"
    umask 077
    printf '[[keys]]\nname = "default"\nversion = 1\nkey = "%s"\n' \
        "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$keyring"
    umask 022
fi
chmod 0600 "$keyring"

say "installing the systemd unit"
install -m 0644 "$here/systemd/pagecore.service" "$root/etc/systemd/system/pagecore.service"
dropins="$root/etc/systemd/system/pagecore.service.d"
rm -f "$dropins/10-cpus.conf" "$dropins/20-data-dir.conf"
if [ -n "$cpus" ]; then
    printf '[Service]\nCPUAffinity=%s\n' "${cpus//,/ }" >"$dropins/10-cpus.conf"
fi
if [ "$data_dir" != /var/lib/pagecore ]; then
    printf '[Unit]\nRequiresMountsFor=%s\n[Service]\nReadWritePaths=%s\n' "$data_dir" "$data_dir" \
        >"$dropins/20-data-dir.conf"
fi

install -d -m 0750 "$root$data_dir"
if [ -n "$root" ]; then
    say "staged under $root"
    exit 0
fi
chown pagecore:pagecore "$data_dir"
chown pagecore:pagecore /etc/pagecore/keyring.toml

if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /etc/systemd/system/pagecore.service
fi
systemctl daemon-reload
if [ "$start" = 0 ]; then
    say "installed; start with: systemctl enable --now pagecore"
    exit 0
fi
systemctl enable pagecore
systemctl restart pagecore
admin="$(sed -n 's/^admin_listen = "\(.*\)"/\1/p' /etc/pagecore/pagecore.toml)"
admin="${admin:-127.0.0.1:6401}"
say "waiting for http://$admin/ready"
for _ in $(seq 1 120); do
    if curl -fsS "http://$admin/ready" >/dev/null 2>&1; then
        say "pagecore is ready: $(curl -fsS "http://$admin/ready")"
        say "dashboard: http://$admin/dashboard   metrics: http://$admin/metrics"
        say "next: verify the machine as deploy/README.md describes (pagecore-bench ceiling, run)"
        exit 0
    fi
    sleep 1
done
echo "install.sh: pagecore did not become ready in 120 s; see: journalctl -u pagecore" >&2
exit 1
