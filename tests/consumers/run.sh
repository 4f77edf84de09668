#!/usr/bin/env bash
# Builds and runs a tiny consumer project against weir in every supported way; prints "ok NAME" or
# "FAIL NAME" per way and "consumers: N passed, M failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
report() {
  if [ "$2" -eq 0 ]; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; tail -30 "$work/$1.log"; failed=$((failed + 1)); fi
}

# The installed layout that find_package, pkg-config, vcpkg and conan rely on.
cmake -S "$root" -B "$work/weir-build" -G Ninja -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_EXAMPLES=OFF \
      -DCMAKE_INSTALL_PREFIX="$work/prefix" >"$work/install.log" 2>&1 &&
  cmake --install "$work/weir-build" >>"$work/install.log" 2>&1 &&
  test -f "$work/prefix/include/weir/weir.hpp" &&
  test -f "$work/prefix/share/weir/cmake/weirConfig.cmake" &&
  test -f "$work/prefix/share/weir/cmake/weirConfigVersion.cmake" &&
  test -f "$work/prefix/share/pkgconfig/weir.pc"
report install $?

consume_cmake() {
  local name=$1
  shift
  cmake -S "$root/tests/consumers/app" -B "$work/$name" -G Ninja "$@" >"$work/$name.log" 2>&1 &&
    cmake --build "$work/$name" >>"$work/$name.log" 2>&1 &&
    "$work/$name/app" >>"$work/$name.log" 2>&1
  report "$name" $?
}
consume_cmake cmake-find-package -DWEIR_CONSUME=package -DCMAKE_PREFIX_PATH="$work/prefix"
consume_cmake cmake-add-subdirectory -DWEIR_CONSUME=subdirectory -DWEIR_SOURCE_DIR="$root"
consume_cmake cmake-fetchcontent -DWEIR_CONSUME=fetchcontent -DWEIR_SOURCE_DIR="$root"

# Meson: through pkg-config, and as a subproject (the wrap's directory provided locally).
cp -rL "$root/tests/consumers/subproject_app" "$work/meson-app"
(PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" meson setup "$work/meson-pc" "$work/meson-app" -Dfrom=pkgconfig &&
   meson compile -C "$work/meson-pc" && "$work/meson-pc/app") >"$work/meson-pkgconfig.log" 2>&1
report meson-pkgconfig $?
mkdir -p "$work/meson-app/subprojects/weir"
cp -r "$root/include" "$root/meson.build" "$root/meson_options.txt" "$work/meson-app/subprojects/weir/"
(meson setup "$work/meson-sub" "$work/meson-app" -Dfrom=subproject && meson compile -C "$work/meson-sub" &&
   "$work/meson-sub/app") >"$work/meson-subproject.log" 2>&1
report meson-subproject $?

# Plain compiler with pkg-config flags.
(PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" &&
   export PKG_CONFIG_PATH &&
   g++ $(pkg-config --cflags weir) "$root/tests/consumers/app/app.cpp" -o "$work/plain-app" $(pkg-config --libs weir) &&
   "$work/plain-app") >"$work/pkg-config-flags.log" 2>&1
report pkg-config-flags $?

# One version everywhere: the header, meson, vcpkg and conan.
(
  v=$(sed -nE 's/#define WEIR_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)/\2/p' "$root/include/weir/version.hpp" | paste -sd.)
  grep -q "version : '$v'" "$root/meson.build" &&
    grep -q "\"version-semver\": \"$v\"" "$root/ports/weir/vcpkg.json" &&
    grep -q "version = \"$v\"" "$root/conanfile.py"
) >"$work/version.log" 2>&1
report version-consistency $?

echo "consumers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
