// test-ops harness (style.md §3, after ggml's test-backend-ops): every op of ops/cpu/ops_cpu.h is an
// OpCase with odd shapes; each backend's output is compared against a reference: for backend `cpu` an
// independent naive fp64 implementation where cheap (else the CPU op against itself), for `cuda` the
// CPU op. Outputs are poisoned with NaN and followed by a guard band before every run.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "ops/weight.h"

#if DSV4_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "ops/cuda/ops_cuda.h"
#endif

namespace dsv4::testops {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform(float a, float b) { return a + (b - a) * float(double(next() >> 11) * 0x1.0p-53); }
    int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
    std::vector<float> uniform_vec(int64_t n, float a, float b) {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = uniform(a, b);
        return v;
    }
};

// A weight in a stored format with its own bytes (the WeightRef points into them).
struct HostWeight {
    std::vector<uint8_t> data, scale;
    WeightRef ref;
    std::vector<float> dequant() const {  // [n_rows, n_cols] f32
        std::vector<float> v(size_t(ref.numel()));
        for (int64_t r = 0; r < ref.n_rows; ++r) ref.row_to_f32(r, v.data() + r * ref.n_cols);
        return v;
    }
};
HostWeight random_weight(Rng& rng, DType dt, int64_t N, int64_t K);
HostWeight f32_weight(const std::vector<float>& v, int64_t rows, int64_t cols);

enum class OutKind { f32, exact_i32 };
struct OutSpec {
    std::string name;
    OutKind kind;
    int64_t count;
};

// Output pointers of one run (host or device), in outputs() order.
struct Outs {
    std::vector<void*> p;
    float* f(size_t i) const { return static_cast<float*>(p[i]); }
    int32_t* i32(size_t i) const { return static_cast<int32_t*>(p[i]); }
};

#if DSV4_HAVE_CUDA
// Device copies of a case's inputs; everything is freed with the object.
class Dev {
public:
    ~Dev();
    void* alloc(size_t bytes);
    template <typename T>
    T* up(const std::vector<T>& v) {
        return static_cast<T*>(upload(v.data(), v.size() * sizeof(T)));
    }
    WeightRef weight(const HostWeight& w);  // same WeightRef, device data/scale
    cudaStream_t stream = nullptr;

private:
    void* upload(const void* src, size_t bytes);
    std::vector<void*> ptrs_;
};
#endif

#if DSV4_HAVE_CUDA
// Workspace paths (op_cases_hc_attn.cpp): a workspace of `floats` floats poisoned with NaN and followed by a
// guard band; run_twice runs `launch` twice (outputs re-poisoned in between), requires bitwise-equal
// outputs (determinism) and an untouched guard band.
float* poisoned_work(Dev& dev, int64_t floats);
Status run_twice(Dev& dev, const Outs& o, const std::vector<OutSpec>& specs, const float* work,
                 int64_t work_floats, const std::function<Status()>& launch);
#endif

class OpCase {
public:
    virtual ~OpCase() = default;
    virtual std::string op() const = 0;
    virtual std::string vars() const = 0;
    virtual void init(Rng& rng) = 0;  // fresh random inputs on the host
    virtual std::vector<OutSpec> outputs() const = 0;
    virtual void run_cpu(const Outs& o) = 0;               // the cpu:: op
    virtual bool run_naive(const Outs&) { return false; }  // independent fp64 reference, if written
#if DSV4_HAVE_CUDA
    virtual Status run_cuda(Dev& dev, const Outs& o) = 0;  // o holds device pointers
#endif
    virtual double max_err() const {
        return 1e-5;
    }  // ‖out − ref‖ / ‖ref‖
};

using CaseFactory = std::function<std::unique_ptr<OpCase>()>;
std::vector<CaseFactory>& case_registry();

// One parameter list (possibly shared by several case types: one shape list, several kernels).
template <typename T>
bool register_cases(const std::vector<typename T::P>& params) {
    for (const auto& p : params)
        case_registry().push_back([p] {
            auto c = std::make_unique<T>();
            c->p = p;
            return std::unique_ptr<OpCase>(std::move(c));
        });
    return true;
}
template <typename T>
bool register_cases(std::initializer_list<typename T::P> params) {
    return register_cases<T>(std::vector<typename T::P>(params));
}

#define DSV4_OPS_CAT2(a, b) a##b
#define DSV4_OPS_CAT(a, b) DSV4_OPS_CAT2(a, b)
#define DSV4_OP_CASES(T, ...)                                  \
    static const bool DSV4_OPS_CAT(dsv4_op_cases_, __LINE__) = \
        ::dsv4::testops::register_cases<T>({__VA_ARGS__})
#define DSV4_OP_CASES_V(T, vec) \
    static const bool DSV4_OPS_CAT(dsv4_op_cases_, __LINE__) = ::dsv4::testops::register_cases<T>(vec)

// Base's cases on the FP8 GEMM kernel `Mode` (cuda::fp8_gemm_set_kernel, DSV4_FP8_WGMMA's modes) instead
// of the default one; op name Base's + "_wgmma<Mode>". The wgmma kernel's FP8 accumulation keeps ~13
// mantissa bits inside a 128-K block (2.4e-4 = 2^-12 measured on H200, docs/kernels/fp8_gemm.md), so 5e-4;
// layout or scale bugs give errors of order 1.
template <class Base, int Mode>
struct OnFp8Kernel : Base {
    std::string op() const override { return Base::op() + "_wgmma" + std::to_string(Mode); }
    double max_err() const override { return 5e-4; }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        cuda::fp8_gemm_set_kernel(Mode);  // before the case builds its chunk table (fp8_gemm_group_rows)
        Status st = Base::run_cuda(dev, o);
        cuda::fp8_gemm_set_kernel(-1);
        return st;
    }
#endif
};

// Result of comparing one output: empty message = pass.
struct Compare {
    bool ok = true;
    double err = 0.0;
    std::string msg;
};
Compare compare_f32(const float* out, const float* ref, int64_t count, double budget);
Compare compare_exact(const int32_t* out, const int32_t* ref, int64_t count);

}  // namespace dsv4::testops
