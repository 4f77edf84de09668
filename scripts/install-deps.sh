#!/usr/bin/env bash
# Installs what weir's build, tests, demo and benchmarks need on Debian 12, as root. Idempotent and
# non-interactive; fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential g++ clang-14 cmake ninja-build meson pkg-config libasio-dev libfmt-dev doctest-dev
          zlib1g-dev curl python3 python3-websockets chromium wrk nginx-light git)
if [ "${WEIR_BENCH_DEPS:-0}" = 1 ]; then
  packages+=(libboost1.81-dev librestinio-dev libcpp-httplib-dev gnuplot-nox time util-linux)
fi
if [ "${WEIR_FUZZ_DEPS:-0}" = 1 ]; then
  packages+=(libclang-rt-14-dev)
fi
# Node.js may come from elsewhere; only ask Debian for it when there is none.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

arch=$(dpkg --print-architecture)
installed() { # multi-arch packages answer only to their qualified name
  dpkg -s "$1" 2>/dev/null | grep -q "^Status: install ok installed" ||
    dpkg -s "$1:$arch" 2>/dev/null | grep -q "^Status: install ok installed"
}
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The integration tests' Node clients (ws, eventsource, eventsource-parser, playwright-core).
if [ ! -d tests/integration/node_modules/ws ] || [ ! -d tests/integration/node_modules/playwright-core ]; then
  (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
fi
