#!/usr/bin/env bash
# Installs what is missing, then builds and runs weir's whole test suite, each phase in its own build-ci/ dir:
#   gcc        GCC Release, warnings as errors: unit, header, compile-fail, documentation and integration
#              tests; builds bench/ too;
#   clang      Clang 14, warnings as errors: everything builds (tests, examples, header checks); unit and
#              compile-fail tests run;
#   asan       GCC with AddressSanitizer and UndefinedBehaviorSanitizer, warnings as errors: unit and
#              integration tests;
#   tsan       GCC with ThreadSanitizer, warnings as errors: unit tests and the multi-threaded integration
#              tests;
#              the two sanitizer phases leave out what only checks how weir compiles (WEIR_BUILD_LAYOUT_TESTS:
#              each header alone, separate compilation, header-only components), which gcc and clang build;
#   consumers  every way a project brings weir in (tests/consumers/run.sh);
#   fuzz       each libFuzzer target for a bounded time (WEIR_FUZZ_SECONDS, default 30; 0 skips).
# Ends with one line "N passed, M failed" counted over the CTest runs and the other checks; exits non-zero if
# anything failed. Logs are in build-ci/logs/.
#   scripts/test.sh [PHASE...]      (default: all phases, in the order above)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

jobs=${WEIR_JOBS:-$(nproc)}
log_dir=build-ci/logs
mkdir -p "$log_dir"
passed=0
failed=0
summary=()

if ! WEIR_FUZZ_DEPS=1 WEIR_BENCH_DEPS=1 bash scripts/install-deps.sh; then
  echo "dependency installation failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# Adds a CTest run's counts to the totals; a run that did not report counts as one failure.
count_ctest() { # LOG
  local line total fails
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$1" | tail -1)
  if [ -z "$line" ]; then
    echo "ctest did not report a result (see $1)"
    phase_passed=0
    phase_failed=1
    return
  fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  fails=$(sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
  phase_passed=$((total - fails))
  phase_failed=$fails
}

# Adds the "ok NAME" / "FAIL NAME" lines of a script's log to the totals.
count_checks() { # LOG STATUS
  phase_passed=$(grep -cE "^ok " "$1")
  phase_failed=$(grep -cE "^FAIL " "$1")
  if [ "$2" -ne 0 ] && [ "$phase_failed" -eq 0 ]; then phase_failed=1; fi
}

# Configures and builds DIR with the given CMake arguments; on failure shows the end of the log.
build() { # DIR CMAKE_ARGS...
  local dir=$1 name
  name=$(basename "$1")
  shift
  echo "building $dir"
  if ! cmake -S . -B "$dir" -G Ninja "$@" >"$log_dir/$name-configure.log" 2>&1; then
    tail -40 "$log_dir/$name-configure.log"
    return 1
  fi
  if ! cmake --build "$dir" -j"$jobs" >"$log_dir/$name-build.log" 2>&1; then
    grep -E "error|FAILED" "$log_dir/$name-build.log" | head -40
    tail -20 "$log_dir/$name-build.log"
    return 1
  fi
}

# Runs CTest in DIR with extra arguments, showing failures and the result line.
run_ctest() { # DIR LOG CTEST_ARGS...
  local dir=$1 log=$2
  shift 2
  (cd "$dir" && ctest -j"$jobs" --output-on-failure "$@") >"$log" 2>&1
  # Everything but the passing tests' lines: failures with their output, then the totals.
  grep -vE "^ +[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed" "$log" | grep -vE "^(Test project|\s*Start +[0-9]+:)" |
    sed '/^$/N;/^\n$/D'
  count_ctest "$log"
}

phase_gcc() {
  if build build-ci/gcc -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DWEIR_WERROR=ON -DWEIR_BUILD_BENCH=ON
  then
    run_ctest build-ci/gcc "$log_dir/gcc-ctest.log" --timeout 300
  else
    phase_failed=1
  fi
}

phase_clang() {
  if build build-ci/clang -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 -DWEIR_WERROR=ON; then
    run_ctest build-ci/clang "$log_dir/clang-ctest.log" -R "^(unit|compile-fail):" --timeout 300
  else
    phase_failed=1
  fi
}

# What both sanitizer phases build: warnings as errors, and not the checks of how weir compiles (nor libweir.a).
sanitizer_build=(-DCMAKE_CXX_COMPILER=g++ -DWEIR_WERROR=ON -DWEIR_BUILD_LAYOUT_TESTS=OFF -DWEIR_WITH_SEPARATE=OFF)

phase_asan() {
  if build build-ci/asan -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=address,undefined "${sanitizer_build[@]}"; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest build-ci/asan "$log_dir/asan-ctest.log" -R "^(unit|integration):" --timeout 600
  else
    phase_failed=1
  fi
}

phase_tsan() {
  if build build-ci/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_SANITIZE=thread "${sanitizer_build[@]}"; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      run_ctest build-ci/tsan "$log_dir/tsan-ctest.log" -R "^unit:|^integration: test_(threads|sse|chat|lean_core|tls|topics|redis_topics)$" \
      --timeout 600
  else
    phase_failed=1
  fi
}

phase_consumers() {
  bash tests/consumers/run.sh build-ci/consumers 2>&1 | tee "$log_dir/consumers.log"
  count_checks "$log_dir/consumers.log" "${PIPESTATUS[0]}"
}

phase_fuzz() {
  local seconds=${WEIR_FUZZ_SECONDS:-30}
  if [ "$seconds" = 0 ]; then
    echo "skipped (WEIR_FUZZ_SECONDS=0)"
    return
  fi
  bash scripts/fuzz.sh "$seconds" 2>&1 | tee "$log_dir/fuzz.log"
  count_checks "$log_dir/fuzz.log" "${PIPESTATUS[0]}"
}

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(gcc clang asan tsan consumers fuzz)
started=$SECONDS
for p in "${phases[@]}"; do
  if ! declare -F "phase_$p" >/dev/null; then
    echo "unknown phase '$p' (gcc clang asan tsan consumers fuzz)"
    exit 2
  fi
  echo
  echo "=== $p ($(date +%T))"
  phase_passed=0
  phase_failed=0
  phase_start=$SECONDS
  "phase_$p"
  took=$((SECONDS - phase_start))
  passed=$((passed + phase_passed))
  failed=$((failed + phase_failed))
  summary+=("$(printf '%-10s %4d passed, %3d failed  %3dm%02ds' "$p" "$phase_passed" "$phase_failed" \
    $((took / 60)) $((took % 60)))")
  echo "--- $p: $phase_passed passed, $phase_failed failed in $((took / 60))m$((took % 60))s"
done

echo
printf '%s\n' "${summary[@]}"
took=$((SECONDS - started))
echo "total time $((took / 60))m$((took % 60))s on $jobs jobs; logs in $root/$log_dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
