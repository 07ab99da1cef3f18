#!/usr/bin/env bash
# Build the JavaScript example guests outside the clone, the way a user
# builds one (`npm ci && npm run build` in its folder), for the tests.
#
# Usage: build-examples.sh DIR
#
# Copies wit/, sdks/js/ and examples/*-js/ (without node_modules and dist)
# to DIR/src, keeping their layout so the examples' relative `file:`
# dependency on the SDK holds, then in each example:
# - `npm ci --prefer-offline`, with npm's cache in DIR/npm-cache, only when
#   its package-lock.json changed since the last install (a copy of the lock
#   in node_modules, written last, says which one is installed);
# - `npm run build` (and `build:quickjs` where there is one), only when a
#   file of the example, the SDK or the WIT changed since the last build
#   (DIR/src/examples/NAME/dist/.key, written last, holds their hash).
# The components land in DIR/src/examples/NAME/dist/. Under a lock, so
# callers in parallel (.ci/run, test binaries) do not race. Prints how long
# each step took.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:?usage: build-examples.sh DIR}"
examples=(echo-js auth-js chat-js)

# rolldown needs Node ^20.19 or >= 22.12.
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
  if (a < 20 || (a === 20 && b < 19) || (a === 22 && b < 12)) {
    console.error(`build-examples: Node ${process.versions.node} is too old: the JS guests need ^20.19 or >= 22.12`);
    process.exit(1);
  }'

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
exec 9>"$dir.lock"
flock 9

export npm_config_cache="$dir/npm-cache"
src="$dir/src"
parts=(wit sdks/js)
for name in "${examples[@]}"; do parts+=("examples/$name"); done

# A fresh copy of the sources; installs and builds stay.
for part in "${parts[@]}"; do
  mkdir -p "$src/$part"
  find "$src/$part" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name dist -exec rm -rf {} +
done
tar -C "$repo" --exclude=node_modules --exclude=dist -cf - "${parts[@]}" | tar -C "$src" -xf -

seconds() { echo $((SECONDS - $1)); }
for name in "${examples[@]}"; do
  ex="$src/examples/$name"
  if ! cmp -s "$ex/package-lock.json" "$ex/node_modules/.wsbox-installed-lock"; then
    start=$SECONDS
    rm -rf "$ex/node_modules"
    (cd "$ex" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$ex/package-lock.json" "$ex/node_modules/.wsbox-installed-lock"
    echo "build-examples: $name: npm ci took $(seconds "$start") s"
  fi
  key="$(cd "$src" && find wit sdks/js "examples/$name" \
    \( -name node_modules -o -name dist \) -prune -o -type f -print |
    LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$ex/dist/.key" 2>/dev/null)" != "$key" ]; then
    start=$SECONDS
    rm -rf "$ex/dist"
    (cd "$ex" && npm run --silent build)
    if grep -q '"build:quickjs"' "$ex/package.json"; then
      (cd "$ex" && npm run --silent build:quickjs)
    fi
    echo "$key" >"$ex/dist/.key"
    echo "build-examples: $name: build took $(seconds "$start") s"
  fi
done
