// DSV4_CUDA_CHECK: turns a failed CUDA runtime call into a Status with file:line and the CUDA error
// string (style.md §6), and DSV4_CUDA_LAUNCH_CHECK for the cudaGetLastError() after every launch.
#pragma once

#include <cuda_runtime_api.h>

#include "core/status.h"

#define DSV4_CUDA_CHECK(expr)                                                                       \
    do {                                                                                            \
        cudaError_t dsv4_cuda_e_ = (expr);                                                          \
        if (dsv4_cuda_e_ != cudaSuccess)                                                            \
            return ::dsv4::error("{}:{}: CUDA error in '{}': {} ({})", __FILE__, __LINE__, #expr,   \
                                 cudaGetErrorString(dsv4_cuda_e_), cudaGetErrorName(dsv4_cuda_e_)); \
    } while (0)

// After a kernel launch: reports a bad launch configuration (and any earlier asynchronous error).
#define DSV4_CUDA_LAUNCH_CHECK(name)                                                         \
    do {                                                                                     \
        cudaError_t dsv4_cuda_e_ = cudaGetLastError();                                       \
        if (dsv4_cuda_e_ != cudaSuccess)                                                     \
            return ::dsv4::error("{}:{}: launch of {} failed: {}", __FILE__, __LINE__, name, \
                                 cudaGetErrorString(dsv4_cuda_e_));                          \
    } while (0)

// A cuBLAS / cuBLASLt call (the file using it includes cublas_v2.h or cublasLt.h).
#define DSV4_CUBLAS_CHECK(expr)                                                                \
    do {                                                                                       \
        cublasStatus_t dsv4_blas_s_ = (expr);                                                  \
        if (dsv4_blas_s_ != CUBLAS_STATUS_SUCCESS)                                             \
            return ::dsv4::error("{}:{}: cuBLAS error in '{}': {}", __FILE__, __LINE__, #expr, \
                                 cublasGetStatusString(dsv4_blas_s_));                         \
    } while (0)
