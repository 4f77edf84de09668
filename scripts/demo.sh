#!/usr/bin/env bash
# Installs what the demo needs when missing (compiler, CMake, Asio, fmt, zlib; not the test clients), builds
# weir's examples and starts the chat demo on http://127.0.0.1:8080.
#   scripts/demo.sh [chat options]      e.g. scripts/demo.sh --bind 0.0.0.0 --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR_DEMO_ONLY=1 bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_EXAMPLES=ON >/dev/null
cmake --build build -j"$(nproc)"
demo=build/examples/chat
[ -x "$demo" ] || demo=build/examples/hello
has_port=0
for a in "$@"; do [ "$a" = --port ] && has_port=1; done
if [ $has_port = 1 ]; then exec "$demo" "$@"; else exec "$demo" --port 8080 "$@"; fi
