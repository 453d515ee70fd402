// CUDA runtime helpers: device presence check (tests skip cleanly without a GPU) and the kernels' tuning
// switches from the environment.
#include <cuda_runtime.h>

#include <cstdlib>

#include "core/log.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {
bool device_available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

int env_choice(const char* name, int fallback, int max) {
    const char* e = std::getenv(name);
    if (!e || !*e) return fallback;
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    if (*e >= '0' && *e <= '9' && *end == '\0' && v <= max) return int(v);
    log_warn("{}='{}': expected a whole number from 0 to {}; using {}", name, e, max, fallback);
    return fallback;
}

bool pdl_enabled() {
    static const bool on = env_choice("DSV4_CUDA_PDL", 1, 1) == 1;
    return on;
}
}  // namespace dsv4::cuda
