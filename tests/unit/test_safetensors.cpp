// safetensors reader/writer and Checkpoint: round trips (every dtype, sharded with and without index) and
// one handcrafted broken file per header check of style.md §6, each expected to fail with a message that
// names the file, the tensor and the specific problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "format/safetensors.h"

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ =
            fs::temp_directory_path() / fmt::format("dsv4_st_{}_{}_{}", info->name(), ::getpid(), counter_++);
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    // A file with an explicit header length (defaults to the JSON's size) and data section.
    std::string write_raw(const std::string& name, const std::string& header, size_t n_data = 0,
                          int64_t header_len = -1) {
        std::string p = path(name);
        std::ofstream out(p, std::ios::binary);
        uint64_t len = header_len < 0 ? header.size() : uint64_t(header_len);
        for (int i = 0; i < 8; ++i) out.put(char(len >> (8 * i)));
        out << header;
        out << std::string(n_data, '\x5a');
        return p;
    }

    // Opens a broken file and checks that the message names the file and contains each piece.
    void expect_rejected(const std::string& header, size_t n_data, std::vector<std::string> pieces) {
        std::string p = write_raw("broken.safetensors", header, n_data);
        auto r = SafetensorsFile::open(p);
        ASSERT_FALSE(r.is_ok()) << "accepted: " << header;
        EXPECT_NE(r.message().find("broken.safetensors"), std::string::npos) << r.message();
        for (const auto& piece : pieces)
            EXPECT_NE(r.message().find(piece), std::string::npos)
                << "'" << piece << "' not in: " << r.message();
    }

    fs::path dir_;
    static inline int counter_ = 0;
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng());
    return v;
}

TEST_F(Safetensors, RoundTripEveryDtype) {
    struct Case {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;  // as stored
        std::vector<uint8_t> bytes;
    };
    std::vector<Case> cases;
    for (int i = 0; i < int(DType::count); ++i) {
        DType t = DType(i);
        std::vector<int64_t> shape = {3, 5};
        int64_t elem = t == DType::fp4_e2m1 ? 1 : dtype_bytes(t, 1);  // fp4: packed bytes, stored as I8
        cases.push_back(
            {fmt::format("t.{}", dtype_name(t)), t, shape, random_bytes(size_t(15 * elem), 7 + i)});
    }
    cases.push_back({"empty", DType::bf16, {0, 4}, {}});
    cases.push_back({"scalar", DType::f32, {}, random_bytes(4, 1)});
    cases.push_back({"a.first", DType::u8, {7}, random_bytes(7, 2)});  // odd size: later tensors unaligned

    std::vector<TensorToWrite> tw;
    for (const auto& c : cases)
        tw.push_back({c.name, c.dtype, c.shape, c.bytes.data(), int64_t(c.bytes.size())});
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "round trip"}};
    ASSERT_TRUE(write_safetensors(path("m.safetensors"), tw, meta).is_ok());

    auto r = SafetensorsFile::open(path("m.safetensors"));
    ASSERT_TRUE(r.is_ok()) << r.message();
    const SafetensorsFile& f = **r;
    EXPECT_EQ(f.metadata(), meta);
    EXPECT_EQ(f.tensors().size(), cases.size());
    const uint8_t* prev_end = nullptr;
    for (const auto& c : cases) {
        const TensorInfo* t = f.find(c.name);
        ASSERT_NE(t, nullptr) << c.name;
        EXPECT_EQ(t->dtype, c.dtype == DType::fp4_e2m1 ? DType::i8 : c.dtype) << c.name;
        EXPECT_EQ(t->shape, c.shape) << c.name;
        EXPECT_EQ(t->nbytes, int64_t(c.bytes.size())) << c.name;
        EXPECT_EQ(t->file, path("m.safetensors"));
        if (!c.bytes.empty()) {
            EXPECT_EQ(std::memcmp(t->data, c.bytes.data(), c.bytes.size()), 0) << c.name;
        }
    }
    // Tensors are laid out contiguously in name order, and the data section starts 8-byte aligned.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : f.tensors()) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->name < b->name; });
    for (const TensorInfo* t : by_offset) {
        if (prev_end) {
            EXPECT_EQ(t->data, prev_end) << t->name;
        }
        prev_end = t->data + t->nbytes;
    }
    const uint8_t* first = by_offset.front()->data;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 8, 0u);  // the mapping is page-aligned
    EXPECT_EQ(f.find("empty")->numel(), 0);
    EXPECT_EQ(f.find("scalar")->numel(), 1);
    EXPECT_EQ(f.find("t.bf16")->shape_str(), "[3, 5]");
    EXPECT_EQ(f.find("missing"), nullptr);
}

TEST_F(Safetensors, HeaderIsPaddedAndSized) {
    const float x[3] = {1, 2, 3};
    ASSERT_TRUE(write_safetensors(path("p.safetensors"), {{"x", DType::f32, {3}, x, 12}}).is_ok());
    std::ifstream in(path("p.safetensors"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
    EXPECT_EQ((8 + n) % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + 12);
    EXPECT_EQ(bytes[8], '{');
    EXPECT_EQ(bytes[8 + n - 1] == ' ' || bytes[8 + n - 1] == '}', true);
    EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, x, 12), 0);
}

TEST_F(Safetensors, WriterRejectsBadInput) {
    const float x[2] = {1, 2};
    auto s = write_safetensors(path("w.safetensors"), {{"x", DType::f32, {3}, x, 8}});
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("needs 12 bytes"), std::string::npos) << s.message();
    s = write_safetensors(path("w.safetensors"),
                          {{"x", DType::f32, {1}, x, 4}, {"x", DType::f32, {1}, x, 4}});
    EXPECT_NE(s.message().find("duplicate"), std::string::npos) << s.message();
    s = write_safetensors(path("w.safetensors"), {{"x", DType::f32, {-1}, x, 4}});
    EXPECT_NE(s.message().find("negative"), std::string::npos) << s.message();
    s = write_safetensors(path("no_such_dir/w.safetensors"), {{"x", DType::f32, {1}, x, 4}});
    EXPECT_NE(s.message().find("cannot create"), std::string::npos) << s.message();
}

// ---- one broken file per check ----

TEST_F(Safetensors, RejectsShortFile) {
    std::string p = path("short.safetensors");
    std::ofstream(p, std::ios::binary) << "abc";
    auto r = SafetensorsFile::open(p);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("shorter than the 8-byte header length"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("short.safetensors"), std::string::npos) << r.message();
}

TEST_F(Safetensors, RejectsMissingFile) {
    auto r = SafetensorsFile::open(path("nope.safetensors"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("cannot open"), std::string::npos) << r.message();
}

TEST_F(Safetensors, RejectsHeaderLongerThanFile) {
    auto r = SafetensorsFile::open(write_raw("broken.safetensors", "{}", 0, 3));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("header length 3 exceeds the file size 10"), std::string::npos) << r.message();
}

TEST_F(Safetensors, RejectsHeaderOverCap) {
    auto r = SafetensorsFile::open(write_raw("broken.safetensors", "{}", 0, int64_t(1) << 40));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("cap"), std::string::npos) << r.message();
}

TEST_F(Safetensors, RejectsInvalidJson) {
    expect_rejected(R"({"a": {"dtype": "F32",)", 0, {"invalid JSON"});
}

TEST_F(Safetensors, RejectsNonObjectHeader) {
    expect_rejected("[1, 2]", 0, {"must be a JSON object", "array"});
}

TEST_F(Safetensors, RejectsEntryNotObject) {
    expect_rejected(R"({"w": 5})", 0, {"'w'", "must be an object"});
}

TEST_F(Safetensors, RejectsMissingFields) {
    expect_rejected(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, {"'w'", "missing 'dtype'"});
    expect_rejected(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, {"'w'", "missing 'shape'"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1]}})", 4, {"'w'", "missing 'data_offsets'"});
}

TEST_F(Safetensors, RejectsWrongJsonTypes) {
    expect_rejected(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4,
                    {"'w'", "'dtype' must be a string"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4,
                    {"'w'", "'shape' must be an array"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4,
                    {"'w'", "not a non-negative integer"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4,
                    {"'w'", "not a non-negative integer"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": "0-4"}})", 4,
                    {"'w'", "data_offsets"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8,
                    {"'w'", "data_offsets"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4]}})", 4,
                    {"'w'", "data_offsets"});
}

TEST_F(Safetensors, RejectsUnknownDtype) {
    expect_rejected(R"({"w": {"dtype": "F9", "shape": [1], "data_offsets": [0, 4]}})", 4,
                    {"'w'", "unknown dtype 'F9'"});
}

TEST_F(Safetensors, RejectsNegativeDim) {
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 4]}})", 4,
                    {"'w'", "non-negative"});
}

TEST_F(Safetensors, RejectsNegativeOrReversedOffsets) {
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
                    {"'w'", "data_offsets"});
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})", 4,
                    {"'w'", "begin > end"});
}

TEST_F(Safetensors, RejectsOffsetsBeyondData) {
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 7,
                    {"'w'", "beyond the data section (7 bytes)"});
}

TEST_F(Safetensors, RejectsSizeMismatch) {
    expect_rejected(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]}})", 10,
                    {"'w'", "[2, 3]", "needs 12 bytes", "hold 10"});
}

TEST_F(Safetensors, RejectsShapeOverflow) {
    expect_rejected(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]}})",
                    4, {"'w'", "too many"});
}

TEST_F(Safetensors, RejectsOverlap) {
    expect_rejected(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                    12, {"'a'", "'b'", "overlap"});
    // The same span twice is an overlap too (two names aliasing one buffer).
    expect_rejected(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                    4, {"overlap"});
}

TEST_F(Safetensors, RejectsDuplicateNames) {
    expect_rejected(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                    8, {"duplicate tensor name 'a'"});
}

TEST_F(Safetensors, RejectsBadMetadata) {
    expect_rejected(R"({"__metadata__": {"format": 1}})", 0,
                    {"__metadata__", "'format'", "must be a string"});
    expect_rejected(R"({"__metadata__": ["pt"]})", 0, {"__metadata__", "must be an object"});
}

TEST_F(Safetensors, AcceptsEmptyTensorsAndPaddedHeader) {
    std::string p = write_raw("ok.safetensors",
                              R"({"e1": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]},
                                  "e2": {"dtype": "BF16", "shape": [5, 0], "data_offsets": [4, 4]},
                                  "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                  "__metadata__": {"format": "pt"}}     )",
                              4);
    auto r = SafetensorsFile::open(p);
    ASSERT_TRUE(r.is_ok()) << r.message();
    EXPECT_EQ((*r)->tensors().size(), 3u);
    EXPECT_EQ((*r)->find("e2")->nbytes, 0);
    EXPECT_EQ((*r)->metadata().at("format"), "pt");
    // A header with no tensors at all is a valid (empty) file.
    auto e = SafetensorsFile::open(write_raw("empty.safetensors", "{}"));
    ASSERT_TRUE(e.is_ok()) << e.message();
    EXPECT_TRUE((*e)->tensors().empty());
}

// ---- checkpoints ----

TEST_F(Safetensors, ShardedCheckpointWithIndex) {
    auto a = random_bytes(16, 1), b = random_bytes(6, 2), c = random_bytes(1, 3);
    ASSERT_TRUE(write_safetensors(path("model-00001-of-00002.safetensors"),
                                  {{"layers.0.w", DType::f32, {2, 2}, a.data(), 16},
                                   {"layers.0.s", DType::f8_e8m0, {1}, c.data(), 1}})
                    .is_ok());
    ASSERT_TRUE(write_safetensors(path("model-00002-of-00002.safetensors"),
                                  {{"head.w", DType::bf16, {3}, b.data(), 6}})
                    .is_ok());
    std::map<std::string, std::string> wm = {{"layers.0.w", "model-00001-of-00002.safetensors"},
                                             {"layers.0.s", "model-00001-of-00002.safetensors"},
                                             {"head.w", "model-00002-of-00002.safetensors"}};
    ASSERT_TRUE(write_safetensors_index(dir_.string(), wm, 23).is_ok());

    auto r = Checkpoint::open(dir_.string());
    ASSERT_TRUE(r.is_ok()) << r.message();
    EXPECT_EQ(r->n_files(), 2u);
    EXPECT_EQ(r->names(), (std::vector<std::string>{"head.w", "layers.0.s", "layers.0.w"}));
    EXPECT_EQ(r->total_bytes(), 23);
    EXPECT_GT(r->file_bytes(), 23);
    EXPECT_EQ(r->dir(), dir_.string());
    ASSERT_NE(r->find("head.w"), nullptr);
    EXPECT_EQ(r->find("head.w")->dtype, DType::bf16);
    EXPECT_EQ(std::memcmp(r->find("head.w")->data, b.data(), 6), 0);
    EXPECT_EQ(std::memcmp(r->find("layers.0.w")->data, a.data(), 16), 0);
    EXPECT_EQ(r->find("nope"), nullptr);

    // The index text is what HF writes.
    std::ifstream in(path("model.safetensors.index.json"));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("\"total_size\": 23"), std::string::npos) << text;
    EXPECT_NE(text.find("\"weight_map\""), std::string::npos) << text;

    // Without the index, every *.safetensors in the directory is taken.
    fs::remove(path("model.safetensors.index.json"));
    auto g = Checkpoint::open(dir_.string());
    ASSERT_TRUE(g.is_ok()) << g.message();
    EXPECT_EQ(g->names().size(), 3u);

    // A single file is a checkpoint too.
    auto s = Checkpoint::open(path("model-00002-of-00002.safetensors"));
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ(s->names(), std::vector<std::string>{"head.w"});
    EXPECT_EQ(s->dir(), dir_.string());
}

TEST_F(Safetensors, CheckpointRejectsMissingShard) {
    const float x = 1;
    ASSERT_TRUE(write_safetensors(path("s1.safetensors"), {{"x", DType::f32, {1}, &x, 4}}).is_ok());
    ASSERT_TRUE(write_safetensors_index(dir_.string(), {{"x", "s1.safetensors"}, {"y", "s2.safetensors"}}, 8)
                    .is_ok());
    auto r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("shard 's2.safetensors'"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("does not exist"), std::string::npos) << r.message();
}

TEST_F(Safetensors, CheckpointRejectsTensorNotInItsShard) {
    const float x = 1;
    ASSERT_TRUE(write_safetensors(path("s1.safetensors"), {{"x", DType::f32, {1}, &x, 4}}).is_ok());
    ASSERT_TRUE(write_safetensors(path("s2.safetensors"), {{"y", DType::f32, {1}, &x, 4}}).is_ok());
    // 'y' is listed in s1 but lives in s2.
    ASSERT_TRUE(write_safetensors_index(dir_.string(), {{"x", "s1.safetensors"}, {"y", "s1.safetensors"}}, 8)
                    .is_ok());
    auto r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("tensor 'y' is listed in shard 's1.safetensors'"), std::string::npos)
        << r.message();
}

TEST_F(Safetensors, CheckpointRejectsDuplicateAcrossShards) {
    const float x = 1;
    ASSERT_TRUE(write_safetensors(path("s1.safetensors"), {{"x", DType::f32, {1}, &x, 4}}).is_ok());
    ASSERT_TRUE(write_safetensors(path("s2.safetensors"), {{"x", DType::f32, {1}, &x, 4}}).is_ok());
    auto r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("tensor 'x' appears in both"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("s1.safetensors"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("s2.safetensors"), std::string::npos) << r.message();
}

TEST_F(Safetensors, CheckpointRejectsBadIndexAndEmptyDirs) {
    auto r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("no model.safetensors.index.json and no *.safetensors"), std::string::npos)
        << r.message();

    r = Checkpoint::open(path("does_not_exist"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("no such file or directory"), std::string::npos) << r.message();

    std::ofstream(path("model.safetensors.index.json")) << "{\"weight_map\": ";
    r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("invalid JSON"), std::string::npos) << r.message();

    std::ofstream(path("model.safetensors.index.json")) << R"({"metadata": {}})";
    r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("missing 'weight_map'"), std::string::npos) << r.message();

    std::ofstream(path("model.safetensors.index.json")) << R"({"weight_map": {"x": 3}})";
    r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("weight_map entry 'x'"), std::string::npos) << r.message();
}

TEST_F(Safetensors, CheckpointPropagatesShardErrors) {
    write_raw("bad.safetensors", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4);
    auto r = Checkpoint::open(dir_.string());
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.message().find("bad.safetensors"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("needs 8 bytes"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace dsv4
