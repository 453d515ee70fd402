// CPU reference linear: y = x · Wᵀ with the weight dequantized one row at a time (fp32 accumulation).
// Parallel over weight rows so a prefill of n tokens converts each row once.
#include <vector>

#include "ops/cpu/ops_cpu.h"
#include "ops/cpu/quant.h"

namespace dsv4::cpu {

void linear(const float* x, int64_t n, const WeightRef& w, float* y) {
    const int64_t N = w.n_rows, K = w.n_cols;
    // Threads only pay off for real work; tiny calls would spend more on the fork/join than on math.
#pragma omp parallel if (n * N * K >= (1 << 20))
    {
        std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < N; ++r) {
            dequant_row(w, r, row.data());  // table lookups for FP8/FP4
            for (int64_t i = 0; i < n; ++i) {
                const float* xi = x + i * K;
                float acc = 0.0f;
                for (int64_t k = 0; k < K; ++k) acc += xi[k] * row[size_t(k)];
                y[i * N + r] = acc;
            }
        }
    }
}

}  // namespace dsv4::cpu
