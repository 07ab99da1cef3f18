#!/usr/bin/env bash
# Fuzz smoke test: build every cargo-fuzz target once, then run each for
# SECONDS (default 60) from a copy of its committed seeds (fuzz/seeds/<target>,
# never modified). Fails if any target finds a crash, leak, timeout or OOM;
# the reproducer lands in fuzz/artifacts/<target>/.
#
#   .ci/fuzz-smoke.sh [SECONDS]
#
# Needs a nightly toolchain (`cargo +nightly`); installs cargo-fuzz if missing.
# An inherited CARGO_TARGET_DIR is honoured as "$CARGO_TARGET_DIR/fuzz" (its
# own directory: instrumented builds share nothing with normal ones), so a CI
# cache of the target dir covers the fuzz build too.
# Total time: about SECONDS x targets, plus the build.
set -euo pipefail

secs="${1:-60}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: a nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Release build with debug assertions and overflow checks, AddressSanitizer
# (cargo-fuzz's default). Identical flags for build and run, so run does not
# rebuild.
flags=(--release --debug-assertions)
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    flags+=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi

mapfile -t targets < <(cargo +nightly fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 1
fi

echo "fuzz-smoke: building ${#targets[@]} targets"
cargo +nightly fuzz build "${flags[@]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/wsbox-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus"
    if [[ -d "seeds/$t" ]]; then
        cp -R "seeds/$t/." "$corpus/"
    fi
    log="$work/$t.log"
    echo "fuzz-smoke: $t for ${secs}s"
    status=ok
    # -timeout: one input taking 30 s is a denial of service, not slowness.
    if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
        >"$log" 2>&1; then
        status=FAILED
        failed+=("$t")
        echo "---- $t: the failure ----" >&2
        grep -E -A 12 "panicked at|^==[0-9]+==ERROR|ALARM: working on the last Unit|out-of-memory" "$log" \
            | head -n 40 >&2 || true
        echo "---- $t: last lines of the log ----" >&2
        tail -n 25 "$log" >&2
        echo "---- end of $t ----" >&2
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)"
    units="$(find "$corpus" -type f | wc -l)"
    summary+=("$(printf '%-16s %-6s execs=%-10s corpus=%-6s peak_rss=%sMB' \
        "$t" "$status" "${execs:-?}" "$units" "${rss:-?}")")
done

echo
echo "fuzz-smoke summary (${secs}s per target):"
printf '  %s\n' "${summary[@]}"
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
