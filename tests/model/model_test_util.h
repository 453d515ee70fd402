// Helpers shared by the model tests: a tiny random checkpoint built once per process, and the
// per-position relative error ‖a − b‖ / ‖b‖ used by every comparison.
#pragma once

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/tiny.h"

#if DSV4_HAVE_CUDA
#include "ops/cuda/ops_cuda.h"
#endif

namespace dsv4::testing {

// A CUDA device to run on (false in a build without CUDA); GPU tests skip without one.
inline bool have_device() {
#if DSV4_HAVE_CUDA
    return cuda::device_available();
#else
    return false;
#endif
}

#define DSV4_REQUIRE_DEVICE() \
    if (!::dsv4::testing::have_device()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)"

inline LoadOptions quiet_cpu() {
    LoadOptions o;
    o.backend = "cpu";
    o.verbose = false;
    return o;
}

// Writes (once) and returns the directory of a random checkpoint of `cfg`.
inline std::string tiny_checkpoint_dir(const std::string& name, const Dsv4Config& cfg,
                                       bool hf_names = false) {
    std::string dir =
        (std::filesystem::temp_directory_path() / ("dsv4_test_" + name + "_" + std::to_string(::getpid())))
            .string();
    std::filesystem::remove_all(dir);
    TinyOptions opts;
    opts.hf_names = hf_names;
    Status s = write_random_checkpoint(dir, cfg, opts);
    if (!s.is_ok()) throw std::runtime_error(s.message());
    return dir;
}

// Max over rows of ‖a_row − b_row‖ / ‖b_row‖; *worst_row gets the row.
inline double max_row_rel_err(const float* a, const float* b, int64_t rows, int64_t cols,
                              int64_t* worst_row = nullptr) {
    double worst = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        double num = 0.0, den = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
            double d = double(a[r * cols + c]) - double(b[r * cols + c]);
            num += d * d;
            den += double(b[r * cols + c]) * double(b[r * cols + c]);
        }
        double e = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
        if (!(e <= worst)) {  // also catches NaN
            worst = std::isnan(e) ? INFINITY : e;
            if (worst_row) *worst_row = r;
        }
    }
    return worst;
}

inline std::vector<int32_t> random_ids(int64_t n, int vocab, uint64_t seed) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    uint64_t s = seed;
    for (auto& id : ids) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        id = int32_t((s >> 33) % uint64_t(vocab));
    }
    return ids;
}

}  // namespace dsv4::testing
