#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time on its seed corpus.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build-fuzz
CXX=${CXX_FUZZ:-clang++-14} cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_EXAMPLES=OFF -DWEIR_BUILD_FUZZERS=ON -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++-14}" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
passed=0
failed=0
# One fuzzer per core at a time; their results are reported in order once all have run.
names=()
works=()
for fuzzer in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] || continue
  name=$(basename "$fuzzer")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  mkdir -p "$corpus"
  echo "fuzzing $name for ${seconds}s"
  (
    if "$fuzzer" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
         -artifact_prefix="$work/" "$work" "$corpus" >"$work/log" 2>&1; then
      echo 0 >"$work/rc"
    else
      echo 1 >"$work/rc"
    fi
  ) &
  names+=("$name")
  works+=("$work")
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
done
wait
for i in "${!names[@]}"; do
  name=${names[$i]}
  work=${works[$i]}
  if [ "$(cat "$work/rc" 2>/dev/null)" = 0 ]; then
    echo "ok   $name: $(grep -E '^#[0-9]+.*(DONE|pulse)' "$work/log" | tail -1)"
    passed=$((passed + 1))
  else
    echo "FAIL $name"; tail -40 "$work/log"; ls "$work"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
