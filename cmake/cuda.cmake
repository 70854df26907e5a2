# The CUDA backend (-DLLAMATRAIN_CUDA=ON): kernels, cuBLASLt GEMMs, cuDNN attention and NCCL.
#
# Everything CUDA-specific is compiled into one object library, lt_cuda, whose objects go into
# `lt`, so tests, benchmarks and the binary link the same code and no static-library cycle
# arises (the CUDA code uses core/, and the model code above it calls into the CUDA code).
# Only the kernels (*.cu) go through nvcc; the host code (*.cpp: cuBLASLt, cuDNN, NCCL calls)
# is plain C++ built by the host compiler with the CUDA headers on its include path.
#
# Machine code for Hopper (sm_90a, so wgmma/setmaxnreg-capable code is allowed) plus PTX for
# compute capability 8.0, which the driver compiles at load time for any other card (A100,
# Ada, Blackwell). CMake's CUDA_ARCHITECTURES is switched off and the -gencode flags are given
# directly: the "a" (architecture-specific) targets are not understood by every CMake version.
set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "nvcc")
set(CMAKE_CUDA_ARCHITECTURES OFF)
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
if(CUDAToolkit_VERSION VERSION_LESS 12.0)
  message(FATAL_ERROR "LLAMATRAIN_CUDA needs CUDA 12 or newer; found ${CUDAToolkit_VERSION} "
                      "at ${CUDAToolkit_BIN_DIR}")
endif()

# cuDNN and NCCL ship no CMake targets: find them beside the toolkit.
find_path(CUDNN_INCLUDE_DIR cudnn_backend.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 REQUIRED)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 REQUIRED)

set(LT_CUDA_GENCODE
    -gencode=arch=compute_90a,code=sm_90a
    -gencode=arch=compute_80,code=compute_80
    CACHE STRING "nvcc -gencode flags of the CUDA backend")

file(GLOB_RECURSE LT_CUDA_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_SOURCE_DIR}/src/*/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/*/cuda/*.cpp
     ${CMAKE_SOURCE_DIR}/src/parallel/nccl_comm.cpp)
list(FILTER LT_CUDA_SOURCES EXCLUDE REGEX "_sizes\\.cpp$")  # built in every configuration (CMakeLists.txt)
add_library(lt_cuda OBJECT ${LT_CUDA_SOURCES})
target_include_directories(lt_cuda PUBLIC ${CMAKE_SOURCE_DIR}/src ${CUDNN_INCLUDE_DIR} ${NCCL_INCLUDE_DIR})
target_link_libraries(lt_cuda PUBLIC fmt::fmt CUDA::cudart CUDA::cublasLt CUDA::cublas
                      ${CUDNN_LIBRARY} ${NCCL_LIBRARY})
target_compile_definitions(lt_cuda PUBLIC LLAMATRAIN_HAVE_CUDA=1)
# The .cu files include only kernel headers, for which C++17 is enough (and it is a dialect
# every CMake knows nvcc for); the host .cpp files are C++20 like the rest. The project's
# -Wall -Wextra -march=native reach nvcc's host compiler through CMake's
# -forward-unknown-to-host-compiler; -lineinfo keeps profiles readable.
set_target_properties(lt_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
target_compile_options(lt_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:${LT_CUDA_GENCODE} -lineinfo --expt-relaxed-constexpr>)

target_sources(lt PRIVATE $<TARGET_OBJECTS:lt_cuda>)
target_link_libraries(lt PUBLIC CUDA::cudart CUDA::cublasLt CUDA::cublas ${CUDNN_LIBRARY} ${NCCL_LIBRARY})
target_include_directories(lt PUBLIC ${CUDNN_INCLUDE_DIR} ${NCCL_INCLUDE_DIR})
target_compile_definitions(lt PUBLIC LLAMATRAIN_HAVE_CUDA=1)
