# CMake toolchain: cross-compile EdgeFuse's kernel for 64-bit ARM Linux (Raspberry Pi 5, Jetson, Cortex-A53
# boards) on an x86-64 Debian host. Used by `make wheel-arm` (tools/arm/arm.py wheel), which also sets
# EDGEFUSE_ARM_SYSROOT to a folder holding Debian's libpython3.11-dev:arm64 extracted (headers only are used:
# an extension module never links libpython).
#
# Needs: g++-aarch64-linux-gnu (apt-get install g++-aarch64-linux-gnu). No -march: the compiler's default
# for aarch64 (Armv8-A, NEON/AdvSIMD always present) is what the portable wheel targets; CMakeLists.txt adds
# the same -O3 -fopenmp-simd -fno-math-errno as on x86-64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Programs run on the build machine; libraries and headers come from the target's side only.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

if(DEFINED ENV{EDGEFUSE_ARM_SYSROOT})
  set(_edgefuse_sysroot "$ENV{EDGEFUSE_ARM_SYSROOT}")
  list(APPEND CMAKE_FIND_ROOT_PATH "${_edgefuse_sysroot}")
  # FindPython cannot run the target's interpreter: give it the aarch64 headers and the module suffix.
  set(Python_INCLUDE_DIR "${_edgefuse_sysroot}/usr/include/python3.11" CACHE PATH "aarch64 Python headers" FORCE)
  set(Python_SOABI "cpython-311-aarch64-linux-gnu" CACHE STRING "" FORCE)
  set(PYTHON_MODULE_EXTENSION ".cpython-311-aarch64-linux-gnu.so" CACHE STRING "" FORCE)
  set(PYTHON_MODULE_EXT_SUFFIX ".cpython-311-aarch64-linux-gnu.so" CACHE STRING "" FORCE)
  # Debian's pyconfig.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>: the sysroot's include root.
  # (Only Python's headers are extracted there, so nothing else of the target shadows the cross libc.)
  include_directories(SYSTEM "${_edgefuse_sysroot}/usr/include")
endif()
