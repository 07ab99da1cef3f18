#!/usr/bin/env bash
# Install the browser test's Node dependencies (playwright-core, at the exact
# version package-lock.json pins) into DIR/node_modules, outside the clone.
#
# Usage: install.sh DIR
#
# Called by .ci/run before the tests, and by tests/browser_chat.rs on first
# use. Idempotent and quick when DIR already holds this lock file's install
# (DIR/.ready is a copy of the lock file, written last); under a lock so
# concurrent callers do not race. Playwright's own browser download is never
# run (playwright-core has none): the test drives Debian's chromium.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:?usage: install.sh DIR}"
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if cmp -s "$here/package-lock.json" "$dir/.ready"; then
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
cp "$here/package-lock.json" "$dir/.ready"
