// CUDA runtime helpers: device presence check (tests skip cleanly without a GPU).
#include <cuda_runtime.h>

namespace dsv4::cuda {
bool device_available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
}  // namespace dsv4::cuda
