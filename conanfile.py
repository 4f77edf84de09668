import os

from conan import ConanFile
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class WeirConan(ConanFile):
    name = "weir"
    version = "0.1.0"
    license = "MIT"
    description = ("Header-only C++20 HTTP/1.1, Server-Sent Events and WebSocket server library on standalone "
                   "Asio, with typed pipelines")
    topics = ("http", "server", "sse", "websocket", "asio", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    # with_tls: HTTPS and WSS on OpenSSL 3 (<weir/tls.hpp>); with_zlib: the gzip stage; with_redis: topics carried
    # by Redis Streams on hiredis (<weir/topics/redis.hpp>); separate: weir's non-template code compiled once into
    # libweir.a, and every consumer built with WEIR_SEPARATE_COMPILATION (the CMake target weir::separate).
    options = {"with_tls": [True, False], "with_zlib": [True, False], "with_redis": [True, False],
               "separate": [True, False]}
    default_options = {"with_tls": False, "with_zlib": False, "with_redis": False, "separate": False}
    exports_sources = "include/*", "src/*", "cmake/*", "CMakeLists.txt", "LICENSE"
    no_copy_source = True

    def requirements(self):
        self.requires("asio/1.29.0")
        self.requires("fmt/10.2.1")
        if self.options.with_tls:
            self.requires("openssl/[>=3 <4]")
        if self.options.with_zlib:
            self.requires("zlib/[>=1.2.11 <2]")
        if self.options.with_redis:
            self.requires("hiredis/[>=0.14 <2]")

    def layout(self):
        cmake_layout(self)

    def configure(self):
        if self.options.separate:
            self.package_type = "static-library"

    def package_id(self):
        if not self.info.options.separate:
            self.info.clear()

    def generate(self):
        if self.options.separate:
            toolchain = CMakeToolchain(self)
            toolchain.cache_variables["WEIR_BUILD_TESTS"] = False
            toolchain.cache_variables["WEIR_BUILD_EXAMPLES"] = False
            toolchain.cache_variables["WEIR_WITH_TLS"] = False
            toolchain.cache_variables["WEIR_WITH_REDIS"] = False
            toolchain.cache_variables["WEIR_WITH_ZLIB"] = False
            toolchain.generate()

    def build(self):
        if self.options.separate:
            cmake = CMake(self)
            cmake.configure()
            cmake.build(target="weir_separate")

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        for pattern in ("*.hpp", "*.ipp"):
            copy(self, pattern, os.path.join(self.source_folder, "include"),
                 os.path.join(self.package_folder, "include"))
        if self.options.separate:
            copy(self, "*.a", self.build_folder, os.path.join(self.package_folder, "lib"), keep_path=False)
            copy(self, "*.lib", self.build_folder, os.path.join(self.package_folder, "lib"), keep_path=False)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "weir")
        self.cpp_info.set_property("cmake_target_name", "weir::weir")
        self.cpp_info.set_property("pkg_config_name", "weir")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.defines = ["ASIO_STANDALONE", "ASIO_NO_DEPRECATED"]
        if self.options.separate:
            self.cpp_info.libdirs = ["lib"]
            self.cpp_info.libs = ["weir"]
            self.cpp_info.defines.append("WEIR_SEPARATE_COMPILATION=1")
        self.cpp_info.requires = ["asio::asio", "fmt::fmt"]
        if self.options.with_tls:
            self.cpp_info.defines.append("WEIR_HAS_OPENSSL=1")
            self.cpp_info.requires.append("openssl::openssl")
        if self.options.with_zlib:
            self.cpp_info.defines.append("WEIR_HAS_ZLIB=1")
            self.cpp_info.requires.append("zlib::zlib")
        if self.options.with_redis:
            self.cpp_info.defines.append("WEIR_HAS_HIREDIS=1")
            self.cpp_info.requires.append("hiredis::hiredis")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
