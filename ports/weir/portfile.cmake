# weir is header-only: configure without tests or examples, install the headers and the CMake package. The
# "separate" feature also installs libweir.a (weir compiled once) and the weir::separate target; the "tls" and
# "redis" features install libweir_tls.a and libweir_redis.a (weir::tls and weir::redis are compiled libraries).
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO weir-cpp/weir
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        redis WEIR_WITH_REDIS
        separate WEIR_WITH_SEPARATE
        tls WEIR_WITH_TLS
        zlib WEIR_WITH_ZLIB
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DWEIR_BUILD_TESTS=OFF
        -DWEIR_BUILD_EXAMPLES=OFF
        -DWEIR_BUILD_BENCH=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/weir/cmake)
vcpkg_fixup_pkgconfig()

if("separate" IN_LIST FEATURES OR "tls" IN_LIST FEATURES OR "redis" IN_LIST FEATURES)
    file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
else()
    file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")
endif()
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
