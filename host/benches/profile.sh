#!/bin/sh
# Where the wsbox host's CPU goes under one row of the `rows` bench: `perf record` of the host
# process over the row's measured window, then its samples summed by part (the kernel, the
# guest's compiled code, wasmtime, tokio, the host's own code, malloc, the rest) and the top
# symbols. Needs Linux's perf (Debian: `apt-get install linux-perf`), python3 and ss.
#
#   host/benches/profile.sh ROW OUT_DIR [rows options...]
#   host/benches/profile.sh p16 /tmp/prof-p16 --host-bin target/release/host --guest echo=echo.wasm
#
# ROW is p1, p16, 64k or connect. The host runs with `--perf-map`, so guest functions have names:
# `wasm[0]::function[N]` for a stripped component such as the examples, the source's names for one
# built with its name section (`--config 'profile.guest.package.echo.strip=false'` on the echo's
# cargo build). OUT_DIR gets perf.data, the bench's output
# (rows.txt) and the summary (summary.txt, also printed). perf samples at 1999 Hz on the CPU
# clock (many virtual machines have no hardware counters), without call graphs (the host is
# built without frame pointers); `perf report -i OUT_DIR/perf.data` gives more.
# PROFILE_SECONDS sets the window (default 10). PERF_RECORD_ARGS adds options to `perf record`,
# for example `PERF_RECORD_ARGS='--call-graph dwarf,16384'` for callers (large files: keep the
# window short), then `perf report -i OUT_DIR/perf.data --no-children -S malloc -G`.
set -eu

if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
row=$1
out=$2
shift 2
case $row in
    p1 | p16 | 64k | connect) ;;
    *)
        echo "profile.sh: ROW is one of p1, p16, 64k, connect (not $row)" >&2
        exit 2
        ;;
esac
for tool in perf python3 ss; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "profile.sh: $tool not found (perf: Debian's linux-perf; ss: iproute2)" >&2
        exit 1
    fi
done
seconds=${PROFILE_SECONDS:-10}
warmup=2
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."

# Build first, so the bench starts at once below.
cargo bench -q -p host --bench rows --no-run
# The bench's window is longer than perf's, so perf sees only the measured load.
cargo bench -q -p host --bench rows -- --only wsbox --rows "$row" --warmup "$warmup" \
    --seconds $((seconds + 2)) --host-arg=--perf-map "$@" >"$out/rows.txt" 2>&1 &
bench=$!

# The bench's `host serve` process: a descendant of the bench.
descendants() {
    for child in $(ps -o pid= --ppid "$1"); do
        echo "$child"
        descendants "$child"
    done
}
host=
for _ in $(seq 600); do
    for pid in $(descendants "$bench"); do
        case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
            *" serve "*--perf-map*) host=$pid ;;
        esac
    done
    # Listening means the guest is compiled and the row is about to start.
    if [ -n "$host" ] && ss -Hltnp | grep -q "pid=$host,"; then
        break
    fi
    if ! kill -0 "$bench" 2>/dev/null; then
        echo "profile.sh: the bench ended before its host listened; see $out/rows.txt" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$host" ]; then
    echo "profile.sh: no host process found in 60 s; see $out/rows.txt" >&2
    kill "$bench" 2>/dev/null || true
    exit 1
fi
sleep $((warmup + 1))
perf record -q -F 1999 ${PERF_RECORD_ARGS:-} -p "$host" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf-record.txt"
wait "$bench" || {
    echo "profile.sh: the bench failed; see $out/rows.txt" >&2
    exit 1
}

perf report -i "$out/perf.data" --no-children --sort dso,sym -g none --percent-limit 0 \
    --stdio >"$out/report.txt" 2>/dev/null
# The host leaves its map behind (perf reads it after the process has gone).
rm -f "/tmp/perf-$host.map"
python3 - "$out/report.txt" <<'SUMMARY' | tee "$out/summary.txt"
import re
import sys

# One line per (dso, symbol): "  12.34%  host  [.] symbol"; the JIT's dso is "[JIT] tid N".
line = re.compile(r"^\s*([\d.]+)%\s+(.+?)\s+\[(.)\]\s+(.*)$")
malloc = re.compile(r"(__libc_)?(malloc|free|calloc|realloc|cfree)|_int_|malloc_|tcache|unlink_chunk")


def part(dso, kind, sym):
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel"
    if dso.startswith("perf-") or dso.startswith("[JIT]") or sym.startswith("wasm["):
        return "guest code (compiled wasm, trampolines)"
    if dso.startswith("libc"):
        return "malloc, free" if malloc.match(sym) else "libc, other"
    if "wasmtime" in sym or "cranelift" in sym:
        return "wasmtime"
    if "tokio" in sym or "mio::" in sym:
        return "tokio, mio"
    if "wsbox" in sym:
        return "host (wsbox)"
    if "__rust_" in sym or "alloc::alloc" in sym or "RawVec" in sym:
        return "Rust allocation shims"
    if sym.startswith("0x") or dso == "[unknown]":
        return "unknown addresses"
    return "other (std, other crates)"


parts, symbols = {}, []
with open(sys.argv[1], encoding="utf-8", errors="replace") as report:
    for text in report:
        m = line.match(text)
        if not m:
            continue
        share, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        p = part(dso, kind, sym)
        parts[p] = parts.get(p, 0.0) + share
        symbols.append((share, sym, p))

print("share of the host process's samples, by part:")
for p, share in sorted(parts.items(), key=lambda kv: -kv[1]):
    print(f"  {share:6.2f} %  {p}")
print("top symbols:")
for share, sym, p in sorted(symbols, reverse=True)[:20]:
    print(f"  {share:6.2f} %  {sym[:90]}  [{p}]")
SUMMARY
