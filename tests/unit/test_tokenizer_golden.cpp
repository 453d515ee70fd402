// Golden ids from HF's official Rust `tokenizers` 0.23.2 (npm) on the DeepSeek V4 tokenizer
// fixture: tests/fixtures/tokenizer/golden.jsonl, made by tools/gen_tokenizer_golden.mjs. Every
// case must match exactly, with special-token matching on (ids) and off (ids_plain), also when
// several threads encode at once.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_tokenizer_util.h"
#include "tokenizer/utf8.h"

namespace dsv4 {
namespace {

struct GoldenCase {
    std::string name, text;
    std::vector<int32_t> ids, ids_plain;
};

std::string from_hex(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

const std::vector<GoldenCase>& golden_cases() {
    static const std::vector<GoldenCase> cases = [] {
        std::vector<GoldenCase> v;
        std::ifstream f(std::string(DSV4_FIXTURES_DIR) + "/tokenizer/golden.jsonl");
        std::string line;
        while (std::getline(f, line)) {
            auto j = nlohmann::json::parse(line);
            GoldenCase c;
            c.name = j["name"];
            c.text = j.contains("hex") ? from_hex(j["hex"]) : j["text"].get<std::string>();
            c.ids = j["ids"].get<std::vector<int32_t>>();
            c.ids_plain = j.contains("ids_plain") ? j["ids_plain"].get<std::vector<int32_t>>() : c.ids;
            v.push_back(std::move(c));
        }
        return v;
    }();
    return cases;
}

std::string describe_mismatch(const GoldenCase& c, const std::vector<int32_t>& got,
                              const std::vector<int32_t>& want) {
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    return fmt::format("{}: {} ids, expected {}; first difference at index {}: got {}, expected {}", c.name,
                       got.size(), want.size(), i, i < got.size() ? std::to_string(got[i]) : "(end)",
                       i < want.size() ? std::to_string(want[i]) : "(end)");
}

TEST(TokenizerGolden, FileHasEnoughCases) {
    const auto& cases = golden_cases();
    ASSERT_GE(cases.size(), 5000u)
        << "golden.jsonl missing or short; regenerate with tools/gen_tokenizer_golden.mjs";
    size_t n_invalid = 0, n_files = 0, n_special = 0;
    for (const auto& c : cases) {
        n_invalid += c.name.rfind("invalid_", 0) == 0;
        n_files += c.name.rfind("file:", 0) == 0;
        n_special += c.ids != c.ids_plain;
    }
    EXPECT_GE(n_invalid, 100u);
    EXPECT_GE(n_files, 3u);
    EXPECT_GE(n_special, 500u);
}

TEST(TokenizerGolden, AllCasesMatchReference) {
    const Tokenizer& tok = test::v4_tokenizer();
    size_t mismatches = 0, n_ids = 0;
    for (const auto& c : golden_cases()) {
        const auto got = tok.encode(c.text, /*allow_special=*/true);
        const auto got_plain = tok.encode(c.text, /*allow_special=*/false);
        n_ids += c.ids.size();
        if (got != c.ids && ++mismatches <= 5)
            ADD_FAILURE() << "allow_special: " << describe_mismatch(c, got, c.ids);
        if (got_plain != c.ids_plain && ++mismatches <= 5)
            ADD_FAILURE() << "plain: " << describe_mismatch(c, got_plain, c.ids_plain);
    }
    EXPECT_EQ(mismatches, 0u) << "of " << golden_cases().size() << " cases, " << n_ids << " ids";
}

TEST(TokenizerGolden, DecodeRoundTrips) {
    // Byte-level BPE is lossless: decoding gives back the (repaired) input.
    const Tokenizer& tok = test::v4_tokenizer();
    size_t bad = 0;
    for (const auto& c : golden_cases()) {
        if (tok.decode(c.ids) != utf8::repair(c.text) && ++bad <= 5)
            ADD_FAILURE() << c.name << ": decode differs";
        if (tok.decode(c.ids_plain) != utf8::repair(c.text) && ++bad <= 5)
            ADD_FAILURE() << c.name << ": plain decode";
    }
    EXPECT_EQ(bad, 0u);
}

TEST(TokenizerGolden, ConcurrentEncodeMatches) {
    // The server encodes on several HTTP threads: shared caches must not change any result.
    const Tokenizer& tok = test::v4_tokenizer();
    const auto& cases = golden_cases();
    std::atomic<size_t> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (size_t i = static_cast<size_t>(t); i < cases.size() + static_cast<size_t>(t); ++i) {
                const auto& c = cases[(i * 7 + static_cast<size_t>(t) * 131) % cases.size()];
                if (tok.encode(c.text, true) != c.ids) ++mismatches;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(mismatches.load(), 0u);
}

}  // namespace
}  // namespace dsv4
