#!/bin/sh
# Builds dist/auth-py.wasm with componentize-py 0.25.1 (installed into .venv here,
# or into $WSBOX_PY_VENV): sh build.sh
exec sh "$(dirname "$0")/../../sdks/python/componentize.sh" auth-py
