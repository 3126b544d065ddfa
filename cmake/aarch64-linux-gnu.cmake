# Cross-compiling for arm64 (Raspberry Pi 3/4/5 on a 64-bit OS) on Debian 12
# x86-64 with crossbuild-essential-arm64 and the multiarch :arm64 -dev
# packages (scripts/install-deps-arm64.sh). Use through scripts/build-arm64.sh
# or: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries, headers and CMake packages come from the arm64 multiarch paths
# (/usr/lib/aarch64-linux-gnu, /usr/include, arch-independent /usr/share);
# programs (pkg-config, python3, the TPM tools) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR}
    /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# ctest and gtest_discover_tests run the arm64 test programs through
# qemu-user directly, so no binfmt_misc registration is needed. The programs
# load the multiarch libc6:arm64 (/lib/ld-linux-aarch64.so.1 and
# /lib/aarch64-linux-gnu) like every other arm64 library; `-L
# /usr/aarch64-linux-gnu` would pair the cross package's ld.so with that
# libc, and a mismatched pair hangs in the first pthread_create.
find_program(KGR_QEMU_AARCH64 qemu-aarch64-static)
if(KGR_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${KGR_QEMU_AARCH64})
endif()
