// Encode throughput of dsv4's tokenizer on a JSONL corpus ({"text": ...} per line), one document per
// encode() call, on one thread; best of N runs. Run through bench/tokenizer/run.sh, which also times
// HF's tokenizers on the same corpus. Usage: bench-tokenizer TOKENIZER.json CORPUS.jsonl [REPEATS]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: bench-tokenizer TOKENIZER.json CORPUS.jsonl [REPEATS]\n");
        return 2;
    }
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
    auto tok = dsv4::Tokenizer::load(argv[1]);
    if (!tok.is_ok()) {
        std::fprintf(stderr, "bench-tokenizer: %s\n", tok.message().c_str());
        return 1;
    }
    std::vector<std::string> docs;
    std::ifstream in(argv[2]);
    size_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        docs.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
        bytes += docs.back().size();
    }
    if (docs.empty()) {
        std::fprintf(stderr, "bench-tokenizer: %s: no documents\n", argv[2]);
        return 1;
    }
    double best = 1e30;
    size_t tokens = 0;
    std::vector<int32_t> ids;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        size_t n = 0;
        for (const auto& d : docs) {
            ids.clear();
            tok->encode_append(d, /*allow_special=*/true, ids);
            n += ids.size();
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s);
        tokens = n;
    }
    std::printf("dsv4 tokens=%zu best_s=%.4f tokens_per_s=%.0f MB_per_s=%.2f\n", tokens, best, tokens / best,
                bytes / best / 1e6);
    return 0;
}
