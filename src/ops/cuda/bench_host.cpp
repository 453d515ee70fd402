// Host-side device queries for `dsv4 bench` (ops_bench.h): device name and memory, pinned host memory.
#include <cuda_runtime_api.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_bench.h"

namespace dsv4::cuda {

Result<DeviceInfo> device_info() {
    int dev = 0;
    DSV4_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp p{};
    DSV4_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    size_t free_b = 0, total_b = 0;
    DSV4_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    DeviceInfo d;
    d.name = p.name;
    d.free_bytes = int64_t(free_b);
    d.total_bytes = int64_t(total_b);
    d.sm_count = p.multiProcessorCount;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    return d;
}

Status host_register(void* p, size_t bytes) {
    DSV4_CUDA_CHECK(cudaHostRegister(p, bytes, cudaHostRegisterDefault));
    return Status::ok();
}

void host_unregister(void* p) {
    cudaHostUnregister(p);
}

}  // namespace dsv4::cuda
