#!/bin/sh
# Build the Python guest in the current folder into dist/NAME.wasm:
#
#   sh path/to/wsbox/sdks/python/componentize.sh NAME [MODULE]
#
# MODULE (default `app`) is the module that binds `WitWorld`; the folder and
# this SDK are its import path. componentize-py is installed at the pinned
# version below into a venv, .venv in the current folder unless WSBOX_PY_VENV
# names another (pip's own cache applies: PIP_CACHE_DIR). Needs python3 with
# venv and pip; componentize-py brings the guest's own CPython.
set -eu

COMPONENTIZE_PY_VERSION=0.25.1

name=${1:?usage: componentize.sh NAME [MODULE]}
module=${2:-app}
sdk=$(cd "$(dirname "$0")" && pwd)
wit="$sdk/../../wit"
venv=${WSBOX_PY_VENV:-.venv}
tool="$venv/bin/componentize-py"

if [ "$("$tool" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

mkdir -p dist
"$tool" --quiet -d "$wit" -w handler componentize -p "$sdk" -p . "$module" -o "dist/$name.wasm"
echo "built dist/$name.wasm"
