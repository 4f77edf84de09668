#!/usr/bin/env bash
# Builds and runs a tiny consumer program against weir in every supported way, and checks the installed
# layout that vcpkg and conan rely on. Prints "ok   NAME" or "FAIL NAME" per check, then
# "consumers: N passed, M failed"; exits non-zero if any failed.
#   tests/consumers/run.sh [WORK_DIR]     (default: a temporary directory, removed afterwards)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
consumers=$root/tests/consumers
if [ $# -ge 1 ]; then
  work=$1
  rm -rf "$work" && mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
work=$(cd "$work" && pwd)
clang=${WEIR_CLANG:-clang++-14}
# Consumers build with warnings as errors: weir's headers must be clean in other people's projects too.
warnings="-Wall -Wextra -Wpedantic -Werror"
passed=0
failed=0
report() { # NAME STATUS
  if [ "$2" -eq 0 ]; then
    echo "ok   $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1 (log: $work/$1.log)"
    tail -30 "$work/$1.log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

# 1. cmake --install: headers, CMake package and pkg-config file, as find_package, pkg-config, vcpkg
#    (share/weir/cmake, share/pkgconfig) and conan (include/) expect them. The prefix given at configure time
#    is not where it lands, so the package and weir.pc must both be relocatable.
prefix=$work/prefix
(
  set -e
  cmake -S "$root" -B "$work/weir-build" -G Ninja -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_EXAMPLES=OFF \
        -DWEIR_WITH_SEPARATE=ON -DCMAKE_INSTALL_PREFIX=/nonexistent/weir
  cmake --build "$work/weir-build"   # libweir.a (weir::separate), libweir_tls.a, libweir_redis.a; the rest is headers
  cmake --install "$work/weir-build" --prefix "$prefix"
  for f in include/weir/weir.hpp include/weir/version.hpp include/weir/detail/connection.hpp \
           share/weir/cmake/weirConfig.cmake share/weir/cmake/weirConfigVersion.cmake \
           share/weir/cmake/weirTargets.cmake share/pkgconfig/weir.pc share/pkgconfig/weir-tls.pc \
           share/pkgconfig/weir-redis.pc share/pkgconfig/weir-separate.pc lib/libweir.a lib/libweir_tls.a \
           lib/libweir_redis.a \
           include/weir/impl/src.hpp; do
    test -f "$prefix/$f" || { echo "missing $f"; exit 1; }
  done
  # Exactly the public headers, nothing else under include/.
  diff <(cd "$root/include" && find . -type f | sort) <(cd "$prefix/include" && find . -type f | sort)
  ! grep -rq "/nonexistent" "$prefix/share"
) >"$work/install.log" 2>&1
report install $?

consume_cmake() { # NAME CXX CMAKE_ARGS...
  local name=$1 cxx=$2
  shift 2
  cmake -S "$consumers/app" -B "$work/$name" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$warnings" \
        "$@" >"$work/$name.log" 2>&1 &&
    cmake --build "$work/$name" >>"$work/$name.log" 2>&1 &&
    "$work/$name/app" >>"$work/$name.log" 2>&1 &&
    { [ ! -x "$work/$name/serve" ] || "$work/$name/serve" >>"$work/$name.log" 2>&1; }
  report "$name" $?
}

# 2. find_package(weir CONFIG) from the installed prefix, with GCC (and the zlib, tls and redis components) and with
#    Clang 14 (whose coroutine definitions come from the exported target).
consume_cmake cmake-find-package g++ -DWEIR_CONSUME=package -DCMAKE_PREFIX_PATH="$prefix" -DWEIR_CONSUMER_ZLIB=ON \
  -DWEIR_CONSUMER_TLS=ON -DWEIR_CONSUMER_REDIS=ON -DWEIR_CONSUMER_SEPARATE=ON
consume_cmake cmake-find-package-clang "$clang" -DWEIR_CONSUME=package -DCMAKE_PREFIX_PATH="$prefix"
# 3. add_subdirectory of the source tree (with weir::tls).
consume_cmake cmake-add-subdirectory g++ -DWEIR_CONSUME=subdirectory -DWEIR_SOURCE_DIR="$root" -DWEIR_CONSUMER_TLS=ON \
  -DWEIR_WITH_SEPARATE=ON -DWEIR_CONSUMER_SEPARATE=ON
# weir::separate (weir compiled once) from the installed prefix with Clang 14 too.
consume_cmake cmake-separate-clang "$clang" -DWEIR_CONSUME=package -DCMAKE_PREFIX_PATH="$prefix" \
  -DWEIR_CONSUMER_SEPARATE=ON
# 4. FetchContent: from a local directory, and from a release-style archive (URL file://) holding only what
#    the conan recipe exports: CMakeLists.txt, cmake/, include/, src/, LICENSE.
consume_cmake cmake-fetchcontent-dir g++ -DWEIR_CONSUME=fetchcontent -DWEIR_SOURCE_DIR="$root"
tar -C "$root" --transform 's,^,weir-src/,' -czf "$work/weir-src.tar.gz" CMakeLists.txt cmake include src LICENSE
consume_cmake cmake-fetchcontent-archive g++ -DWEIR_CONSUME=fetchcontent -DWEIR_SOURCE_ARCHIVE="$work/weir-src.tar.gz"

# 5. Meson: dependency('weir') through the installed weir.pc, and as a subproject through
#    subprojects/weir.wrap (the wrap's directory put in place, as after a download).
cp -rL "$consumers/subproject_app" "$work/meson-app"
(
  set -e
  export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
  meson setup "$work/meson-pkgconfig" "$work/meson-app" -Dfrom=pkgconfig
  meson compile -C "$work/meson-pkgconfig"
  "$work/meson-pkgconfig/app"
) >"$work/meson-pkgconfig.log" 2>&1
report meson-pkgconfig $?
mkdir -p "$work/meson-app/subprojects/weir"
cp -r "$root/include" "$root/src" "$root/meson.build" "$root/meson_options.txt" "$root/LICENSE" "$work/meson-app/subprojects/weir/"
(
  set -e
  meson setup "$work/meson-subproject" "$work/meson-app" -Dfrom=subproject --force-fallback-for=weir
  grep -q "Executing subproject weir" "$work/meson-subproject/meson-logs/meson-log.txt"
  meson compile -C "$work/meson-subproject"
  "$work/meson-subproject/app"
) >"$work/meson-subproject.log" 2>&1
report meson-subproject $?
# weir's own meson build: its example option builds a program (hello; the others are the same recipe), and its
# separate_compilation option builds libweir.a and weir-separate.pc, against which serve.cpp builds and serves.
(
  set -e
  meson setup "$work/meson-weir" "$root" -Dexamples=true -Dwerror=true -Dseparate_compilation=true \
    --prefix "$work/meson-prefix"
  meson compile -C "$work/meson-weir" hello
  test -x "$work/meson-weir/hello"
  meson install -C "$work/meson-weir" >/dev/null
  pc=$(dirname "$(find "$work/meson-prefix" -name weir-separate.pc | head -1)")
  # shellcheck disable=SC2046
  g++ $warnings $(PKG_CONFIG_PATH=$pc pkg-config --cflags weir-separate) "$consumers/app/serve.cpp" \
    $(PKG_CONFIG_PATH=$pc pkg-config --libs weir-separate) -o "$work/meson-serve"
  "$work/meson-serve"
) >"$work/meson-examples.log" 2>&1
report meson-examples $?

# 6. A plain compiler command: flags from the installed weir.pc (GCC and Clang 14), and weir's include
#    directory straight from the source tree with {fmt}'s pkg-config flags.
plain() { # NAME COMMAND...
  local name=$1
  shift
  ("$@" -o "$work/$name-app" && "$work/$name-app") >"$work/$name.log" 2>&1
  report "$name" $?
}
export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
# shellcheck disable=SC2046,SC2086
plain pkg-config-flags g++ $warnings $(pkg-config --cflags weir) "$consumers/app/app.cpp" $(pkg-config --libs weir)
# shellcheck disable=SC2046,SC2086
plain pkg-config-flags-clang "$clang" $warnings $(pkg-config --cflags weir) "$consumers/app/app.cpp" $(pkg-config --libs weir)
# shellcheck disable=SC2046,SC2086
plain pkg-config-tls-flags g++ $warnings $(pkg-config --cflags weir-tls) "$consumers/app/app.cpp" \
  $(pkg-config --libs weir-tls)
# shellcheck disable=SC2046,SC2086
plain pkg-config-redis-flags g++ $warnings $(pkg-config --cflags weir-redis) "$consumers/app/app.cpp" \
  $(pkg-config --libs weir-redis)
# shellcheck disable=SC2046,SC2086
plain pkg-config-separate-flags g++ $warnings $(pkg-config --cflags weir-separate) "$consumers/app/serve.cpp" \
  $(pkg-config --libs weir-separate)
# Separate compilation without any build system: the program compiles <weir/impl/src.hpp> in a unit of its own.
# shellcheck disable=SC2046,SC2086
plain include-flags-separate sh -c "g++ $warnings -std=c++20 -I$root/include -DASIO_STANDALONE \
  -DWEIR_SEPARATE_COMPILATION $(pkg-config --cflags fmt) -c $root/src/weir.cpp -o $work/weir-src.o &&
  g++ $warnings -std=c++20 -I$root/include -DASIO_STANDALONE -DWEIR_SEPARATE_COMPILATION $(pkg-config --cflags fmt) \
  $consumers/app/serve.cpp $work/weir-src.o $(pkg-config --libs fmt) -pthread \"\$@\"" --
# shellcheck disable=SC2046,SC2086
plain include-flags g++ $warnings -std=c++20 -I"$root/include" -DASIO_STANDALONE $(pkg-config --cflags fmt) \
  "$consumers/app/app.cpp" $(pkg-config --libs fmt) -pthread
# TLS and the Redis backend header-only, as conan packages them (no libweir_tls.a, no libweir_redis.a).
# shellcheck disable=SC2046,SC2086
plain include-flags-tls-redis g++ $warnings -std=c++20 -I"$root/include" -DASIO_STANDALONE -DWEIR_HAS_OPENSSL=1 \
  -DWEIR_HAS_HIREDIS=1 $(pkg-config --cflags fmt openssl hiredis) "$consumers/app/app.cpp" \
  $(pkg-config --libs fmt openssl hiredis) -pthread
unset PKG_CONFIG_PATH

# 7. vcpkg and conan cannot run here: check their files parse, and build conan's test_package with plain CMake
#    against the installed prefix (the layout both tools install).
(
  set -e
  /usr/bin/python3 -m json.tool "$root/ports/weir/vcpkg.json" >/dev/null
  /usr/bin/python3 -m py_compile "$root/conanfile.py" "$root/test_package/conanfile.py"
  grep -q "vcpkg_cmake_config_fixup(CONFIG_PATH share/weir/cmake)" "$root/ports/weir/portfile.cmake"
  cmake -S "$root/test_package" -B "$work/conan-test-package" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_CXX_FLAGS="$warnings"
  cmake --build "$work/conan-test-package"
  "$work/conan-test-package/test_package"
) >"$work/package-recipes.log" 2>&1
report package-recipes $?

# 8. One version everywhere (the header, CMake, meson, vcpkg, conan, CHANGELOG), and meson builds the same
#    examples as CMake.
(
  set -e
  v=$(sed -nE 's/^#define WEIR_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)$/\2/p' "$root/include/weir/version.hpp" | paste -sd.)
  echo "version.hpp: $v"
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]
  grep -q "^Version: $v\$" "$prefix/share/pkgconfig/weir.pc"
  grep -q "version : '$v'" "$root/meson.build"
  grep -q "\"version-semver\": \"$v\"" "$root/ports/weir/vcpkg.json"
  grep -q "version = \"$v\"" "$root/conanfile.py"
  grep -q "^## $v" "$root/CHANGELOG.md"
  cmake_examples=$(cd "$root/examples" && ls ./*.cpp | sed 's,^\./,,; s,\.cpp$,,' | sort | paste -sd' ')
  meson_examples=$(sed -nE "s/.*foreach ex : \[(.*)\].*/\1/p" "$root/meson.build" | tr -d "',")
  meson_examples=$(echo "$meson_examples" | tr ' ' '\n' | sort | paste -sd' ')
  echo "examples: cmake '$cmake_examples', meson '$meson_examples'"
  [ "$cmake_examples" = "$meson_examples" ]
) >"$work/version-consistency.log" 2>&1
report version-consistency $?

echo "consumers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
