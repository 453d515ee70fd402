// Whole-model CUDA forward vs the CPU reference (issue 6 item 3): logits of every position on the HF
// golden fixtures tiny_a / tiny_b within 1e-3 relative, 32 greedy tokens identical, prefill == prefill +
// decode on the GPU, cloned device states, a released-format FP8/FP4 tiny checkpoint, and decode steps
// run as CUDA graphs equal to the same steps run eagerly. Skips cleanly without a CUDA build or device.
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "format/safetensors.h"
#include "model/forward_cuda.h"
#include "model_test_util.h"

#if DSV4_HAVE_CUDA
#include "ops/cuda/ops_cuda.h"
#endif

namespace dsv4 {
namespace {

using testing::max_row_rel_err;

using testing::have_device;

std::unique_ptr<Model> load(const std::string& dir, const std::string& backend) {
    LoadOptions o;
    o.backend = backend;
    o.verbose = false;
    o.numerics = Numerics::exact;
    auto m = Model::load(dir, o);
    EXPECT_TRUE(m.is_ok()) << backend << ": " << m.message();
    return m.is_ok() ? std::move(m).value() : nullptr;
}

std::vector<int32_t> golden_ids(const std::string& dir) {
    std::vector<int32_t> v;
    auto g = SafetensorsFile::open(dir + "/golden.safetensors");
    if (!g.is_ok()) return v;
    const TensorInfo* t = g.value()->find("input_ids");
    if (!t) return v;
    auto* p = reinterpret_cast<const int64_t*>(t->data);
    for (int64_t i = 0; i < t->numel(); ++i) v.push_back(int32_t(p[i]));
    return v;
}

std::vector<int32_t> greedy(const Model& m, const std::vector<int32_t>& prompt, int steps) {
    auto st = m.new_state();
    std::vector<float> lg;
    std::vector<int32_t> out, cur = prompt;
    for (int s = 0; s < steps; ++s) {
        EXPECT_TRUE(m.forward(*st, cur, lg).is_ok());
        const int32_t next = int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin());
        out.push_back(next);
        cur = {next};
    }
    return out;
}

// CPU vs CUDA on one checkpoint: all-position logits and 32 greedy tokens.
void compare_backends(const std::string& dir, std::vector<int32_t> ids, const char* what) {
    auto cpu = load(dir, "cpu"), gpu = load(dir, "cuda");
    ASSERT_TRUE(cpu && gpu);
    const int64_t V = cpu->config().vocab_size, T = int64_t(ids.size());
    std::vector<float> lc, lg;
    auto sc = cpu->new_state(), sg = gpu->new_state();
    ASSERT_TRUE(cpu->forward(*sc, ids, lc, true).is_ok());
    Status s = gpu->forward(*sg, ids, lg, true);
    ASSERT_TRUE(s.is_ok()) << s.message();
    int64_t worst_row = -1;
    const double err = max_row_rel_err(lg.data(), lc.data(), T, V, &worst_row);
    std::printf("[ cuda-vs-cpu ] %s: %lld positions, max per-position rel err %.3e (position %lld)\n", what,
                (long long)T, err, (long long)worst_row);
    EXPECT_LE(err, 1e-3) << what << ": worst position " << worst_row;

    const auto tc = greedy(*cpu, ids, 32), tg = greedy(*gpu, ids, 32);
    EXPECT_EQ(tc, tg) << what << ": greedy tokens differ";
}

class CudaModel : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModel, GoldenFixtureLogitsAndGreedy) {
    DSV4_REQUIRE_DEVICE();
    const std::string dir = std::string(DSV4_FIXTURES_DIR) + "/" + GetParam();
    auto ids = golden_ids(dir);
    ASSERT_FALSE(ids.empty());
    compare_backends(dir, ids, GetParam().c_str());
}
INSTANTIATE_TEST_SUITE_P(Fixtures, CudaModel, ::testing::Values("tiny_a", "tiny_b"));

TEST(CudaModelRandom, LongSequenceMatchesCpu) {  // past several windows of every compressor
    DSV4_REQUIRE_DEVICE();
    const std::string dir = testing::tiny_checkpoint_dir("cuda_long", tiny_config());
    auto ids = testing::random_ids(150, tiny_config().vocab_size, 11);
    compare_backends(dir, ids, "tiny random, 150 tokens");
}

TEST(CudaModelRandom, QuantizedCheckpointMatchesCpu) {  // FP8 128x128 + FP4 per-32 weights, exact numerics
    DSV4_REQUIRE_DEVICE();
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("dsv4_test_cuda_quant_" + std::to_string(::getpid())))
            .string();
    std::filesystem::remove_all(dir);
    TinyOptions o;
    o.quantized = true;
    Status s = write_random_checkpoint(dir, tiny_config(), o);
    ASSERT_TRUE(s.is_ok()) << s.message();
    compare_backends(dir, testing::random_ids(40, tiny_config().vocab_size, 5), "tiny quantized FP8/FP4");
}

// On the GPU alone: full prefill == prefill(P) + token-by-token decode, and a cloned state continues
// exactly like the original.
TEST(CudaModelConsistency, PrefillEqualsPrefillPlusDecode) {
    DSV4_REQUIRE_DEVICE();
    const std::string dir = testing::tiny_checkpoint_dir("cuda_consistency", tiny_config());
    auto gpu = load(dir, "cuda");
    ASSERT_TRUE(gpu);
    const int64_t T = 72, V = gpu->config().vocab_size;
    auto ids = testing::random_ids(T, int(V), 7);
    std::vector<float> full, out;
    auto st = gpu->new_state();
    ASSERT_TRUE(gpu->forward(*st, ids, full, true).is_ok());
    for (int64_t P : {1, 3, 8, 9, 17, 33, 64, 65}) {
        auto s2 = gpu->new_state();
        std::vector<float> got;
        ASSERT_TRUE(gpu->forward(*s2, std::span(ids).first(size_t(P)), out, true).is_ok());
        got = out;
        for (int64_t t = P; t < T; ++t) {
            ASSERT_TRUE(gpu->forward(*s2, std::span(ids).subspan(size_t(t), 1), out, true).is_ok());
            got.insert(got.end(), out.begin(), out.end());
        }
        int64_t worst = -1;
        const double err = max_row_rel_err(got.data(), full.data(), T, V, &worst);
        EXPECT_LE(err, 1e-5) << "prefill " << P << " + decode: worst position " << worst;
    }
    // clone after 40 tokens; both continue with the same tokens
    auto a = gpu->new_state();
    ASSERT_TRUE(gpu->forward(*a, std::span(ids).first(40), out).is_ok());
    auto b = Model::clone_state(*a);
    std::vector<float> la, lb;
    ASSERT_TRUE(gpu->forward(*a, std::span(ids).subspan(40, 20), la, true).is_ok());
    ASSERT_TRUE(gpu->forward(*b, std::span(ids).subspan(40, 20), lb, true).is_ok());
    EXPECT_EQ(la, lb);
}

// Model::forward_batch: three sequences fed in mixed steps (prefill chunks of different lengths next to
// single decode tokens, sequences joining and finishing at different steps) give, per sequence, the
// logits of that sequence run alone. CPU always; CUDA when a device is there (the batched GPU step
// stacks all tokens, so this checks the per-sequence slicing of every state-reading op).
void check_mixed_batch(const std::string& backend) {
    const std::string dir = std::string(DSV4_FIXTURES_DIR) + "/tiny_a";  // SWA, CSA (indexer), HCA layers
    auto m = load(dir, backend);
    ASSERT_TRUE(m);
    const int64_t V = m->config().vocab_size;
    const std::vector<std::vector<int32_t>> seqs = {testing::random_ids(41, int(V), 21),
                                                    testing::random_ids(73, int(V), 22),
                                                    testing::random_ids(9, int(V), 23)};
    // chunk sizes per step for each sequence (0 = not in this step)
    const std::vector<std::vector<int64_t>> plan = {{17, 1, 1, 0, 20, 1, 1},   // 41
                                                    {30, 25, 1, 1, 1, 15, 0},  // 73
                                                    {0, 5, 1, 1, 1, 1, 0}};    // 9
    std::vector<std::unique_ptr<SeqState>> st;
    std::vector<std::vector<float>> got(seqs.size());
    std::vector<size_t> used(seqs.size(), 0);
    for (size_t q = 0; q < seqs.size(); ++q) st.push_back(m->new_state());
    for (size_t step = 0; step < plan[0].size(); ++step) {
        std::vector<BatchItem> items;
        std::vector<size_t> who;
        for (size_t q = 0; q < seqs.size(); ++q) {
            const size_t c = size_t(plan[q][step]);
            if (c == 0) continue;
            items.push_back({st[q].get(), std::span(seqs[q]).subspan(used[q], c), true});
            who.push_back(q);
            used[q] += c;
        }
        std::vector<float> lg;
        Status s = m->forward_batch(items, lg);
        ASSERT_TRUE(s.is_ok()) << backend << " step " << step << ": " << s.message();
        size_t off = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            const size_t rows = items[i].ids.size() * size_t(V);
            got[who[i]].insert(got[who[i]].end(), lg.begin() + long(off), lg.begin() + long(off + rows));
            off += rows;
        }
        ASSERT_EQ(off, lg.size());
    }
    for (size_t q = 0; q < seqs.size(); ++q) {
        ASSERT_EQ(used[q], seqs[q].size()) << "plan does not cover sequence " << q;
        auto alone = m->new_state();
        std::vector<float> ref;
        ASSERT_TRUE(m->forward(*alone, seqs[q], ref, true).is_ok());
        int64_t worst = -1;
        const double err = max_row_rel_err(got[q].data(), ref.data(), int64_t(seqs[q].size()), V, &worst);
        std::printf("[ batch ] %s sequence %zu: max per-position rel err vs alone %.3e\n", backend.c_str(), q,
                    err);
        EXPECT_LE(err, 1e-5) << backend << " sequence " << q << " worst position " << worst;
    }
    // a sequence twice in one step is refused; so is a bad token id (before anything runs)
    std::vector<float> lg;
    const int32_t one = 1, bad = int32_t(V);
    const BatchItem twice[] = {{st[0].get(), std::span(&one, 1), false},
                               {st[0].get(), std::span(&one, 1), false}};
    EXPECT_FALSE(m->forward_batch(twice, lg).is_ok());
    const int64_t before = Model::n_past(*st[1]);
    const BatchItem bad_id[] = {{st[1].get(), std::span(&one, 1), false},
                                {st[2].get(), std::span(&bad, 1), false}};
    Status s = m->forward_batch(bad_id, lg);
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s.message();
    EXPECT_EQ(Model::n_past(*st[1]), before) << "a refused batch must not advance any sequence";
}

TEST(ModelBatch, MixedBatchEqualsAloneCpu) {
    check_mixed_batch("cpu");
}

TEST(CudaModelBatch, MixedBatchEqualsAlone) {
    DSV4_REQUIRE_DEVICE();
    check_mixed_batch("cuda");
}

// ---- decode steps as CUDA graphs (forward_cuda.h): the same greedy decode with graphs on (reused, and
// recorded every step) and off gives the same logits, and the graph path is really taken.

// Sets DSV4_CUDA_GRAPHS for the models loaded in its scope (CudaForward::create reads it).
class GraphsEnv {
public:
    explicit GraphsEnv(const char* v) {
        const char* old = std::getenv("DSV4_CUDA_GRAPHS");
        had_ = old != nullptr;
        if (had_) old_ = old;
        ::setenv("DSV4_CUDA_GRAPHS", v, 1);
    }
    ~GraphsEnv() {
        if (had_)
            ::setenv("DSV4_CUDA_GRAPHS", old_.c_str(), 1);
        else
            ::unsetenv("DSV4_CUDA_GRAPHS");
    }

private:
    bool had_ = false;
    std::string old_;
};

int32_t argmax(const float* v, int64_t n) {
    return int32_t(std::max_element(v, v + n) - v);
}

// Each prompt is prefilled alone; then decode step k feeds the greedy next token of every sequence of
// steps[k] in one forward_batch call (a decode-only step). Returns the logits of all decode steps in order.
std::vector<float> greedy_steps(const std::string& dir, const char* graphs,
                                const std::vector<std::vector<int32_t>>& prompts,
                                const std::vector<std::vector<int>>& steps) {
    GraphsEnv env(graphs);
    auto m = load(dir, "cuda");
    if (!m) return {};
    const int64_t V = m->config().vocab_size;
    std::vector<std::unique_ptr<SeqState>> st;
    std::vector<int32_t> next;
    std::vector<float> lg, all;
    for (const auto& p : prompts) {
        st.push_back(m->new_state());
        const Status s = m->forward(*st.back(), p, lg);
        EXPECT_TRUE(s.is_ok()) << s.message();
        if (!s.is_ok()) return {};
        next.push_back(argmax(lg.data(), V));
    }
    for (size_t k = 0; k < steps.size(); ++k) {
        std::vector<BatchItem> items;
        for (int q : steps[k]) items.push_back({st[size_t(q)].get(), std::span(&next[size_t(q)], 1), false});
        const Status s = m->forward_batch(items, lg);
        EXPECT_TRUE(s.is_ok()) << "DSV4_CUDA_GRAPHS=" << graphs << " step " << k << ": " << s.message();
        if (!s.is_ok() || lg.size() != items.size() * size_t(V)) return {};
        for (size_t i = 0; i < steps[k].size(); ++i)
            next[size_t(steps[k][i])] = argmax(lg.data() + i * size_t(V), V);
        all.insert(all.end(), lg.begin(), lg.end());
    }
    return all;
}

void check_graphs(const std::vector<std::vector<int32_t>>& prompts,
                  const std::vector<std::vector<int>>& steps, const char* what) {
    const std::string dir = testing::tiny_checkpoint_dir("cuda_graphs", tiny_config());
    const int64_t V = tiny_config().vocab_size;
    auto before = CudaForward::graph_stats();
    const auto ref = greedy_steps(dir, "0", prompts, steps);
    ASSERT_FALSE(ref.empty());
    EXPECT_EQ(CudaForward::graph_stats().launches, before.launches) << "DSV4_CUDA_GRAPHS=0 launched a graph";
    for (const char* mode : {"1", "capture"}) {
        before = CudaForward::graph_stats();
        const auto got = greedy_steps(dir, mode, prompts, steps);
        const auto after = CudaForward::graph_stats();
        ASSERT_EQ(got.size(), ref.size()) << mode;
        int64_t worst = -1;
        const double err = max_row_rel_err(got.data(), ref.data(), int64_t(ref.size()) / V, V, &worst);
        const bool bitwise = std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)) == 0;
        const int64_t launches = after.launches - before.launches,
                      captures = after.captures - before.captures;
        std::printf(
            "[ graphs ] %s, DSV4_CUDA_GRAPHS=%s: %zu steps, %lld launches, %lld captures, %lld updates, %lld "
            "instantiations, %lld refused; rel err vs eager %.3e (%s)\n",
            what, mode, steps.size(), (long long)launches, (long long)captures,
            (long long)(after.updates - before.updates),
            (long long)(after.instantiations - before.instantiations),
            (long long)(after.refused - before.refused), err, bitwise ? "bitwise equal" : "not bitwise");
        EXPECT_LE(err, 1e-6) << what << " DSV4_CUDA_GRAPHS=" << mode << ": worst row " << worst;
        // every size's first step is eager; all later decode steps are graph launches
        EXPECT_GE(launches, int64_t(steps.size()) / 2) << what << " DSV4_CUDA_GRAPHS=" << mode;
        if (std::string(mode) == "1") {
            EXPECT_LT(captures, launches) << what << ": no graph was launched again without recording";
        } else {
            EXPECT_EQ(captures, launches) << what << ": capture mode records every step";
            EXPECT_GT(after.updates, before.updates) << what << ": no cudaGraphExecUpdate was accepted";
        }
    }
}

std::vector<std::vector<int>> repeat_step(std::vector<int> seqs, int n) {
    return std::vector<std::vector<int>>(size_t(n), seqs);
}

TEST(CudaModelGraphs, Batch1EqualsEager) {  // positions 5..44: CSA (m=4), HCA (m=8) windows and the ring
    DSV4_REQUIRE_DEVICE();
    check_graphs({testing::random_ids(5, tiny_config().vocab_size, 31)}, repeat_step({0}, 40), "batch 1");
}

TEST(CudaModelGraphs, Batch3AtDifferentPositionsEqualsEager) {
    DSV4_REQUIRE_DEVICE();
    const int V = tiny_config().vocab_size;
    check_graphs(
        {testing::random_ids(3, V, 41), testing::random_ids(10, V, 42), testing::random_ids(29, V, 43)},
        repeat_step({0, 1, 2}, 26), "batch 3");
}

TEST(CudaModelGraphs, BatchSizeChangesEqualEager) {  // 3 -> 2 -> 17 (cuBLAS path, n >= 16) -> 1 -> 3 again
    DSV4_REQUIRE_DEVICE();
    const int V = tiny_config().vocab_size;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int> all;
    for (int q = 0; q < 17; ++q) {
        prompts.push_back(testing::random_ids(1 + (q * 7) % 23, V, 50 + uint64_t(q)));
        all.push_back(q);
    }
    std::vector<std::vector<int>> steps;
    for (auto part : {repeat_step({0, 1, 2}, 7), repeat_step({0, 2}, 5), repeat_step(all, 7),
                      repeat_step({1}, 5), repeat_step({0, 1, 2}, 7)})
        steps.insert(steps.end(), part.begin(), part.end());
    check_graphs(prompts, steps, "batch sizes 3, 2, 17, 1, 3");
}

TEST(CudaModelGraphs, BadSettingIsRefused) {
    DSV4_REQUIRE_DEVICE();
    const std::string dir = std::string(DSV4_FIXTURES_DIR) + "/tiny_a";
    GraphsEnv env("sometimes");
    LoadOptions o;
    o.backend = "cuda";
    o.verbose = false;
    auto m = Model::load(dir, o);
    ASSERT_FALSE(m.is_ok());
    EXPECT_NE(m.message().find("DSV4_CUDA_GRAPHS"), std::string::npos) << m.message();
}

}  // namespace
}  // namespace dsv4
