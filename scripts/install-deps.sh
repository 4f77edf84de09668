#!/usr/bin/env bash
# Installs what weir's build, tests and demo need on Debian 12 (as root, or through sudo). Idempotent and
# non-interactive; when everything is there it asks dpkg once and returns without touching the network.
#   WEIR_DEMO_ONLY=1   only what building and running the examples needs (no test clients, browser or peers)
#   WEIR_BENCH_DEPS=1  also the benchmark peers (Boost.Beast, RESTinio, cpp-httplib) and gnuplot
#   WEIR_FUZZ_DEPS=1   also clang's libFuzzer runtime
set -euo pipefail
cd "$(dirname "$0")/.."

# Building the library's examples (nlohmann/json: the LLM streaming example only, never the library; hiredis:
# weir::redis and the chat's --redis).
packages=(build-essential g++ cmake ninja-build pkg-config libasio-dev libfmt-dev zlib1g-dev nlohmann-json3-dev
          libhiredis-dev)
if [ "${WEIR_DEMO_ONLY:-0}" != 1 ]; then
  # The test suite: a second compiler, meson, doctest and the real clients the integration tests drive.
  packages+=(clang-14 meson doctest-dev curl python3 python3-websockets chromium wrk nginx-light git redis-server)
fi
if [ "${WEIR_BENCH_DEPS:-0}" = 1 ]; then
  packages+=(libboost1.81-dev librestinio-dev libcpp-httplib-dev gnuplot-nox time util-linux)
fi
if [ "${WEIR_FUZZ_DEPS:-0}" = 1 ]; then
  packages+=(libclang-rt-14-dev)
fi
if [ "${WEIR_DEMO_ONLY:-0}" != 1 ]; then
  # Node.js may come from elsewhere (nvm, nodesource, a container image): ask Debian only when none works.
  node --version >/dev/null 2>&1 || packages+=(nodejs)
  npm --version >/dev/null 2>&1 || packages+=(npm)
fi

# One dpkg query for all of them. Multi-arch packages answer as NAME:ARCH, so the suffix is dropped.
installed=$(dpkg-query -W -f '${binary:Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null |
            awk '$2 == "ii" { sub(/:.*/, "", $1); print $1 }' || true)
missing=()
for p in "${packages[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

# The integration tests' Node clients (ws, eventsource, eventsource-parser, openai, playwright-core), pinned by
# tests/integration/package-lock.json. Reinstalled when the lock file is newer than what was installed.
integration=tests/integration
if [ "${WEIR_DEMO_ONLY:-0}" = 1 ]; then exit 0; fi
if [ ! -f "$integration/node_modules/.package-lock.json" ] ||
   [ "$integration/package-lock.json" -nt "$integration/node_modules/.package-lock.json" ]; then
  if [ -f "$integration/package-lock.json" ]; then
    (cd "$integration" && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$integration" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
