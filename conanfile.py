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
    exports_sources = "include/*", "cmake/*", "CMakeLists.txt", "LICENSE"
    no_copy_source = True

    def requirements(self):
        self.requires("asio/1.29.0")
        self.requires("fmt/10.2.1")

    def layout(self):
        cmake_layout(self)

    def package_id(self):
        self.info.clear()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "weir")
        self.cpp_info.set_property("cmake_target_name", "weir::weir")
        self.cpp_info.set_property("pkg_config_name", "weir")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.defines = ["ASIO_STANDALONE", "ASIO_NO_DEPRECATED"]
        self.cpp_info.requires = ["asio::asio", "fmt::fmt"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
