// test-ops: runs every OpCase (op_cases.cpp) on the backends `cpu` and `cuda` (when built and a device
// is present), compares against the reference and prints a failure's worst coordinates. Usage:
//   test-ops                      every op, every backend (gtest flags pass through)
//   test-ops -b cuda -o linear    one backend / one op (mapped to a gtest filter)
// Test names: <backend>.<op>__<vars>; worst errors per op are printed at the end of the run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <cmath>
#include <cstdio>
#include <map>

#include "op_harness.h"

namespace dsv4::testops {

std::vector<CaseFactory>& case_registry() {
    static std::vector<CaseFactory> r;
    return r;
}

HostWeight f32_weight(const std::vector<float>& v, int64_t rows, int64_t cols) {
    HostWeight w;
    w.data.resize(v.size() * 4);
    std::memcpy(w.data.data(), v.data(), w.data.size());
    w.ref.dtype = DType::f32;
    w.ref.data = w.data.data();
    w.ref.n_rows = rows;
    w.ref.n_cols = cols;
    return w;
}

HostWeight random_weight(Rng& rng, DType dt, int64_t N, int64_t K) {
    HostWeight w;
    w.ref.dtype = dt;
    w.ref.n_rows = N;
    w.ref.n_cols = K;
    auto e8m0 = [&] { return uint8_t(120 + rng.below(11)); };  // 2^-7 .. 2^3
    switch (dt) {
        case DType::f32:
            return f32_weight(rng.uniform_vec(N * K, -1.0f, 1.0f), N, K);
        case DType::bf16:
        case DType::f16: {
            w.data.resize(size_t(N * K) * 2);
            auto* h = reinterpret_cast<uint16_t*>(w.data.data());
            for (int64_t i = 0; i < N * K; ++i) {
                float v = rng.uniform(-1.0f, 1.0f);
                h[i] = dt == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
            }
            break;
        }
        case DType::f8_e4m3: {
            w.data.resize(size_t(N * K));
            for (auto& b : w.data) {
                do b = uint8_t(rng.next() & 0xff);
                while ((b & 0x7f) == 0x7f);  // no NaN codes
            }
            w.ref.block_rows = w.ref.block_cols = 128;
            w.ref.scale_cols = (K + 127) / 128;
            w.scale.resize(size_t(((N + 127) / 128) * w.ref.scale_cols));
            for (auto& s : w.scale) s = e8m0();
            break;
        }
        case DType::fp4_e2m1: {
            w.data.resize(size_t(N * K / 2));
            for (auto& b : w.data) b = uint8_t(rng.next() & 0xff);
            w.ref.block_rows = 1;
            w.ref.block_cols = 32;
            w.ref.scale_cols = K / 32;
            w.scale.resize(size_t(N * (K / 32)));
            for (auto& s : w.scale) s = e8m0();
            break;
        }
        default:
            DSV4_ASSERT(false, "random_weight: dtype {}", dtype_name(dt));
    }
    w.ref.data = w.data.data();
    w.ref.scale = w.scale.empty() ? nullptr : w.scale.data();
    return w;
}

Compare compare_f32(const float* out, const float* ref, int64_t count, double budget) {
    Compare c;
    // NaN and ±Inf must sit at the same positions
    for (int64_t i = 0; i < count; ++i) {
        const bool on = std::isnan(out[i]), rn = std::isnan(ref[i]);
        const bool oi = std::isinf(out[i]), ri = std::isinf(ref[i]);
        if (on != rn || oi != ri || (oi && ri && (out[i] > 0) != (ref[i] > 0))) {
            c.ok = false;
            c.err = INFINITY;
            c.msg = fmt::format("non-finite mismatch at [{}]: out {} ref {}{}", i, out[i], ref[i],
                                on ? " (unwritten output?)" : "");
            return c;
        }
    }
    double num = 0.0, den = 0.0, worst_abs = -1.0, worst_rel = -1.0;
    int64_t at_abs = 0, at_rel = 0;
    for (int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(ref[i])) continue;
        const double d = double(out[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
        const double rel = std::fabs(d) / std::max(std::fabs(double(ref[i])), 1e-30);
        if (std::fabs(d) > worst_abs) worst_abs = std::fabs(d), at_abs = i;
        if (rel > worst_rel) worst_rel = rel, at_rel = i;
    }
    c.err = den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
    if (c.err <= budget) return c;
    c.ok = false;
    c.msg = fmt::format(
        "‖out−ref‖/‖ref‖ = {:.3e} > {:.1e}; worst abs {:.3e} at [{}] (out {} ref {}); worst rel "
        "{:.3e} at [{}] (out {} ref {}); first pairs:",
        c.err, budget, worst_abs, at_abs, out[at_abs], ref[at_abs], worst_rel, at_rel, out[at_rel],
        ref[at_rel]);
    for (int64_t i = 0; i < std::min<int64_t>(5, count); ++i)
        c.msg += fmt::format(" ({}, {})", out[i], ref[i]);
    return c;
}

Compare compare_exact(const int32_t* out, const int32_t* ref, int64_t count) {
    Compare c;
    for (int64_t i = 0; i < count; ++i)
        if (out[i] != ref[i]) {
            c.ok = false;
            c.err = INFINITY;
            c.msg = fmt::format("first difference at [{}]: out {} ref {}", i, out[i], ref[i]);
            return c;
        }
    return c;
}

#if DSV4_HAVE_CUDA
Dev::~Dev() {
    for (void* p : ptrs_) cudaFree(p);
}
void* Dev::alloc(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(bytes, 16)) != cudaSuccess)
        throw std::runtime_error("cudaMalloc failed");
    ptrs_.push_back(p);
    return p;
}
void* Dev::upload(const void* src, size_t bytes) {
    void* p = alloc(bytes);
    if (bytes && cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        throw std::runtime_error("cudaMemcpy H2D failed");
    return p;
}
WeightRef Dev::weight(const HostWeight& w) {
    WeightRef r = w.ref;
    r.data = up(w.data);
    r.scale = w.scale.empty() ? nullptr : up(w.scale);
    return r;
}
#endif

namespace {

constexpr int64_t kGuard = 64;                // elements after every output
constexpr uint32_t kPoisonF32 = 0x7fc00000u;  // quiet NaN
constexpr uint32_t kPoisonI32 = 0x5a5a5a5au;
constexpr uint32_t kGuardBits = 0x7fa5a5a5u;  // a NaN payload nothing computes

// A host output buffer: count elements poisoned, then the guard band.
std::vector<uint32_t> poisoned(const OutSpec& s) {
    std::vector<uint32_t> v(size_t(s.count + kGuard), kGuardBits);
    std::fill_n(v.begin(), s.count, s.kind == OutKind::f32 ? kPoisonF32 : kPoisonI32);
    return v;
}

std::string guard_problem(const std::vector<uint32_t>& v, const OutSpec& s) {
    for (int64_t i = s.count; i < s.count + kGuard; ++i)
        if (v[size_t(i)] != kGuardBits)
            return fmt::format("output '{}' written out of bounds at element {} (count {})", s.name, i,
                               s.count);
    return "";
}

uint64_t name_seed(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
    return h;
}

std::map<std::string, double>& worst_per_op() {
    static std::map<std::string, double> m;
    return m;
}

// Runs one case on one backend and reports through gtest.
void run_case(const CaseFactory& make, const std::string& backend) {
    std::unique_ptr<OpCase> c = make();
    Rng rng(name_seed(c->op() + c->vars()));
    c->init(rng);
    const std::vector<OutSpec> specs = c->outputs();
    std::vector<std::vector<uint32_t>> ref, got;
    Outs ref_o, got_o;
    for (const auto& s : specs) {
        ref.push_back(poisoned(s));
        got.push_back(poisoned(s));
    }
    for (auto& v : ref) ref_o.p.push_back(v.data());
    for (auto& v : got) got_o.p.push_back(v.data());

    const bool naive = backend == "cpu" && c->run_naive(ref_o);
    if (!naive) c->run_cpu(ref_o);
    for (size_t i = 0; i < specs.size(); ++i) {
        std::string g = guard_problem(ref[i], specs[i]);
        ASSERT_TRUE(g.empty()) << "reference: " << g;
    }
    if (backend == "cpu") {
        c->run_cpu(got_o);
    } else {
#if DSV4_HAVE_CUDA
        Dev dev;
        Outs dev_o;
        for (auto& v : got) dev_o.p.push_back(dev.up(v));
        Status st = c->run_cuda(dev, dev_o);
        ASSERT_TRUE(st.is_ok()) << st.message();
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << cudaGetErrorString(cudaGetLastError());
        for (size_t i = 0; i < specs.size(); ++i)
            ASSERT_EQ(cudaMemcpy(got[i].data(), dev_o.p[i], got[i].size() * 4, cudaMemcpyDeviceToHost),
                      cudaSuccess);
#endif
    }
    double worst = 0.0;
    for (size_t i = 0; i < specs.size(); ++i) {
        const OutSpec& s = specs[i];
        std::string g = guard_problem(got[i], s);
        EXPECT_TRUE(g.empty()) << c->op() << " " << c->vars() << ": " << g;
        Compare r = s.kind == OutKind::f32
                        ? compare_f32(reinterpret_cast<float*>(got[i].data()),
                                      reinterpret_cast<float*>(ref[i].data()), s.count, c->max_err())
                        : compare_exact(reinterpret_cast<int32_t*>(got[i].data()),
                                        reinterpret_cast<int32_t*>(ref[i].data()), s.count);
        EXPECT_TRUE(r.ok) << backend << " " << c->op() << " [" << c->vars() << "] output '" << s.name
                          << "': " << r.msg << (naive ? " (reference: naive fp64)" : " (reference: cpu op)");
        worst = std::max(worst, r.err);
    }
    auto& w = worst_per_op()[backend + " " + c->op()];
    w = std::max(w, worst);
}

std::string test_name(const OpCase& c) {
    std::string v;
    for (char ch : c.vars())
        v += (std::isalnum(uint8_t(ch)) ? ch : (ch == ',' ? '_' : ch == '=' ? '\0' : '_'));
    v.erase(std::remove(v.begin(), v.end(), '\0'), v.end());
    return c.op() + "__" + v;
}

class OpTest : public ::testing::Test {
public:
    OpTest(CaseFactory f, std::string backend) : f_(std::move(f)), backend_(std::move(backend)) {}
    void TestBody() override {
#if DSV4_HAVE_CUDA
        if (backend_ == "cuda" && !cuda::device_available()) GTEST_SKIP() << "no CUDA device";
#endif
        run_case(f_, backend_);
    }

private:
    CaseFactory f_;
    std::string backend_;
};

class WorstPrinter : public ::testing::EmptyTestEventListener {
    void OnTestProgramEnd(const ::testing::UnitTest&) override {
        if (worst_per_op().empty()) return;
        std::printf("\nworst ‖out−ref‖/‖ref‖ per op:\n");
        for (auto& [k, v] : worst_per_op()) std::printf("  %-28s %.3e\n", k.c_str(), v);
    }
};

}  // namespace
}  // namespace dsv4::testops

int main(int argc, char** argv) {
    using namespace dsv4::testops;
    // -b BACKEND / -o OP become a gtest filter; everything else goes to gtest.
    std::string backend = "*", op = "*";
    std::vector<char*> args{argv[0]};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "-b" || a == "-o") && i + 1 < argc)
            (a == "-b" ? backend : op) = argv[++i];
        else
            args.push_back(argv[i]);
    }
    std::string filter = "--gtest_filter=" + backend + "." + op + "__*";
    if (backend != "*" || op != "*") args.push_back(filter.data());
    int n = int(args.size());
    ::testing::InitGoogleTest(&n, args.data());

    std::vector<std::string> backends{"cpu"};
#if DSV4_HAVE_CUDA
    backends.push_back("cuda");
#endif
    for (const auto& be : backends)
        for (const auto& f : case_registry()) {
            const std::string name = test_name(*f());
            ::testing::RegisterTest(be.c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                                    [f, be]() -> ::testing::Test* { return new OpTest(f, be); });
        }
    ::testing::UnitTest::GetInstance()->listeners().Append(new WorstPrinter);
    return RUN_ALL_TESTS();
}
