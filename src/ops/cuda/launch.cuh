// Kernel launches with programmatic dependent launch (PDL, sm_90): a kernel may be scheduled while the
// previous kernel of its stream runs, so its CTAs are resident and past their launch latency when the
// predecessor completes. Every kernel of this directory starts with pdl_wait(), which blocks until
// the preceding grid has completed and its memory is visible — the kernels are ordered exactly as with
// <<<>>>; only the launch gap overlaps (decode steps are ~120 small kernels, hopper-kernels.md §6).
// DSV4_CUDA_PDL=0 launches without the attribute (pdl_wait() is then a no-op). H200, 2026-12-02: batch-1
// slice decode 1.759 -> 1.701 ms; test-ops -b cuda and the CUDA model tests pass with it on and off.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <utility>

namespace dsv4::cuda {

bool pdl_enabled();  // device.cu: DSV4_CUDA_PDL

// First statement of every kernel launched through launch_pdl: nothing before it may write global memory
// or read what a kernel writes. (The one exception: the dense GEMV issues its first weight loads before
// it, linear_sm90.cu — weights are never written by kernels, and when this kernel passes the wait every
// kernel before the immediately preceding one has completed.)
// Then lets the next kernel of the stream be scheduled (its CTAs start and block in their own pdl_wait()
// until this grid has completed), so its launch latency hides behind this kernel's run.
__device__ __forceinline__ void pdl_wait() {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// k<<<grid, block, smem, s>>>(args...) with the PDL attribute (and, cooperative, the cooperative-launch
// attribute: every CTA resident at once, or the launch fails); errors are left for DSV4_CUDA_LAUNCH_CHECK
// (cudaGetLastError), as with <<<>>>.
template <typename... P, typename... A>
void launch_pdl_ex(bool cooperative, void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   A&&... args) {
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    attr[1].id = cudaLaunchAttributeCooperative;
    attr[1].val.cooperative = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = cooperative ? 2 : 1;
    (void)cudaLaunchKernelEx(&cfg, k, std::forward<A>(args)...);
}
template <typename... P, typename... A>
void launch_pdl(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
    launch_pdl_ex(false, k, grid, block, smem, s, std::forward<A>(args)...);
}
// For kernels with grid-wide barriers (hc_sm90.cu's decode path).
template <typename... P, typename... A>
void launch_pdl_coop(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
    launch_pdl_ex(true, k, grid, block, smem, s, std::forward<A>(args)...);
}

// Lets Kernel take `bytes` of dynamic shared memory (the attribute, once per kernel and device; every call
// for one Kernel must pass the same bytes). False if the attribute cannot be set: the caller then takes a
// path that needs less.
template <auto Kernel>
bool allow_dynamic_smem(int bytes) {
    static std::atomic<uint64_t> set{0}, failed{0};
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev >= 64) {
        cudaGetLastError();
        return false;
    }
    const uint64_t bit = uint64_t(1) << dev;
    if (set.load(std::memory_order_acquire) & bit) return true;
    if (failed.load(std::memory_order_acquire) & bit) return false;
    if (cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) == cudaSuccess) {
        set.fetch_or(bit, std::memory_order_acq_rel);
        return true;
    }
    cudaGetLastError();
    failed.fetch_or(bit, std::memory_order_acq_rel);
    return false;
}

}  // namespace dsv4::cuda
