#!/usr/bin/env bash
# Installs what is missing, then builds and runs weir's whole test suite:
#   1. GCC, warnings as errors: unit, header, compile-fail, documentation and integration tests; builds bench/;
#   2. Clang 14, warnings as errors: everything builds; unit and compile-fail tests run;
#   3. GCC with AddressSanitizer and UndefinedBehaviorSanitizer: unit and integration tests;
#   3b. GCC with ThreadSanitizer: unit tests and the multi-threaded integration tests;
#   4. consumers: the ways a project brings weir in (install + find_package, add_subdirectory, ...);
#   5. fuzzers: each libFuzzer target for a bounded time (WEIR_FUZZ_SECONDS, default 30; 0 skips).
# Ends with one line "N passed, M failed" over all of them; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
WEIR_FUZZ_DEPS=1 WEIR_BENCH_DEPS=1 bash scripts/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

jobs=$(nproc)
passed=0
failed=0
log_dir=build-ci/logs
mkdir -p "$log_dir"

# Adds a ctest run's counts to the totals.
count_ctest() {
  local log=$1
  local line
  line=$(grep -E "tests passed, [0-9]+ tests failed out of" "$log" | tail -1)
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    return
  fi
  local total fails
  total=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
  fails=$(echo "$line" | sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/')
  passed=$((passed + total - fails))
  failed=$((failed + fails))
}

phase() {
  echo
  echo "=== $1 ($(date +%T))"
}

build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >"$log_dir/$(basename "$dir")-configure.log" 2>&1 &&
    cmake --build "$dir" -j"$jobs" >"$log_dir/$(basename "$dir")-build.log" 2>&1
}

phase "GCC, -Werror, all tests"
if build build-ci/gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ -DWEIR_WERROR=ON -DWEIR_BUILD_BENCH=ON; then
  (cd build-ci/gcc && ctest -j"$jobs" --output-on-failure --timeout 300) 2>&1 | tee "$log_dir/gcc-ctest.log" | grep -vE "^ +[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed" || true
  count_ctest "$log_dir/gcc-ctest.log"
else
  tail -60 "$log_dir/gcc-build.log" "$log_dir/gcc-configure.log"
  failed=$((failed + 1))
fi

phase "Clang 14, -Werror, build everything, unit and compile-fail tests"
if build build-ci/clang -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 -DWEIR_WERROR=ON -DWEIR_BUILD_BENCH=OFF; then
  (cd build-ci/clang && ctest -j"$jobs" --output-on-failure -R "^(unit|compile-fail)" --timeout 300) 2>&1 | tee "$log_dir/clang-ctest.log" | tail -5
  count_ctest "$log_dir/clang-ctest.log"
else
  tail -60 "$log_dir/clang-build.log" "$log_dir/clang-configure.log"
  failed=$((failed + 1))
fi

phase "GCC with AddressSanitizer and UndefinedBehaviorSanitizer: unit and integration tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build build-ci/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=g++ -DWEIR_SANITIZE=address,undefined; then
  (cd build-ci/asan && ctest -j"$jobs" --output-on-failure -R "^(unit|integration)" --timeout 600) 2>&1 | tee "$log_dir/asan-ctest.log" | tail -5
  count_ctest "$log_dir/asan-ctest.log"
else
  tail -60 "$log_dir/asan-build.log" "$log_dir/asan-configure.log"
  failed=$((failed + 1))
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

phase "GCC with ThreadSanitizer: unit tests and the multi-threaded integration tests"
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
if build build-ci/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ -DWEIR_SANITIZE=thread; then
  (cd build-ci/tsan && ctest -j"$jobs" --output-on-failure -R "^unit|integration: test_(threads|sse|chat)$" --timeout 600) 2>&1 | tee "$log_dir/tsan-ctest.log" | tail -5
  count_ctest "$log_dir/tsan-ctest.log"
else
  tail -60 "$log_dir/tsan-build.log" "$log_dir/tsan-configure.log"
  failed=$((failed + 1))
fi
unset TSAN_OPTIONS

phase "consumers"
if [ -x tests/consumers/run.sh ]; then
  if bash tests/consumers/run.sh 2>&1 | tee "$log_dir/consumers.log"; then :; fi
  p=$(grep -cE "^ok " "$log_dir/consumers.log" || true)
  f=$(grep -cE "^FAIL " "$log_dir/consumers.log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
fi

fuzz_seconds=${WEIR_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" != 0 ]; then
  phase "fuzzers, ${fuzz_seconds}s each"
  bash scripts/fuzz.sh "$fuzz_seconds" 2>&1 | tee "$log_dir/fuzz.log"
  p=$(grep -cE "^ok " "$log_dir/fuzz.log" || true)
  f=$(grep -cE "^FAIL " "$log_dir/fuzz.log" || true)
  passed=$((passed + p))
  failed=$((failed + f))
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
