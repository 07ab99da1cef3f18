#!/bin/sh
# Builds the `rows` bench's uWebSockets peer (echo.cpp beside this script) with g++, no TLS, no
# compression, optimised as uWebSockets' own build does (-O3 -march=native, link-time). uWebSockets and uSockets come from SRC_DIR if given (a uWebSockets checkout with
# its uSockets submodule), else they are cloned from GitHub at the commits pinned below into
# $CACHE (default ~/.cache/wsbox-bench-uwebsockets).
#
#   host/benches/peers/uwebsockets/build.sh [SRC_DIR]     # prints the binary's path
#   cargo bench -p host --bench rows -- --uws-bin "$(host/benches/peers/uwebsockets/build.sh)"
set -eu

UWS_COMMIT=66dcff3dd48f0c19dd1703426365d062039321d0      # uWebSockets, 2026-08-18
USOCKETS_COMMIT=86097c490263ab662d62e8e7b541390bdec7d149 # its uSockets submodule there

here=$(cd "$(dirname "$0")" && pwd)
cache=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsbox-bench-uwebsockets}
mkdir -p "$cache"

if [ $# -ge 1 ]; then
    src=$(cd "$1" && pwd)
else
    src=$cache/uWebSockets
    if [ ! -d "$src/.git" ]; then
        git clone -q https://github.com/uNetworking/uWebSockets "$src" >&2
    fi
    git -C "$src" checkout -q "$UWS_COMMIT" >&2
    if [ ! -e "$src/uSockets/.git" ]; then
        git -C "$src" submodule update -q --init uSockets >&2
    fi
    git -C "$src/uSockets" checkout -q "$USOCKETS_COMMIT" >&2
fi
for f in "$src/src/App.h" "$src/uSockets/src/libusockets.h"; do
    if [ ! -f "$f" ]; then
        echo "build.sh: $f is missing: is $src a uWebSockets checkout with uSockets?" >&2
        exit 1
    fi
done

objects=$cache/objects
rm -rf "$objects"
mkdir -p "$objects"
(cd "$objects" && gcc -O3 -march=native -flto -DLIBUS_NO_SSL -I "$src/uSockets/src" -c \
    "$src"/uSockets/src/*.c "$src"/uSockets/src/eventing/*.c "$src"/uSockets/src/crypto/*.c)
g++ -O3 -march=native -flto=auto -std=c++20 -DLIBUS_NO_SSL -DUWS_NO_ZLIB -I "$src/src" -I "$src/uSockets/src" \
    "$here/echo.cpp" "$objects"/*.o -o "$cache/uws-echo"
echo "$cache/uws-echo"
