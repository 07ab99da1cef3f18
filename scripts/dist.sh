#!/usr/bin/env bash
# Build the shipped `host` (the `production` profile: release linked with fat
# LTO, see Cargo.toml) and ship it lean, the way distributions package
# binaries: `<target>/dist/host` without debug info (its symbol table kept,
# so panics and profilers still name functions) and `<target>/dist/host.debug`
# with the line tables, which gdb, addr2line and perf find through the
# binary's .gnu_debuglink when it sits beside it (or under /usr/lib/debug).
#
# The release profile keeps its line tables: `cargo test --release` shares
# it, and failing tests and guest traps then point at file:line.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --profile production -p host
built="$target/production/host"
out="$target/dist"
mkdir -p "$out"
objcopy --only-keep-debug "$built" "$out/host.debug"
chmod -x "$out/host.debug"
objcopy --strip-debug --add-gnu-debuglink="$out/host.debug" "$built" "$out/host"
mib() { echo "$(( ($(stat -c %s "$1") + (1 << 19)) >> 20 )) MiB"; }
echo "built:     $built ($(mib "$built"))"
echo "shipped:   $out/host ($(mib "$out/host"))"
echo "debuginfo: $out/host.debug ($(mib "$out/host.debug"))"
"$out/host" --version
