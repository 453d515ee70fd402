// Fuzz target for the safetensors reader: any bytes must give a Status, never a crash, and every tensor
// of a file that opens must lie inside it with nbytes matching its shape. Under clang it is a libFuzzer
// target; otherwise main() replays the corpus in tests/fuzz/corpus/safetensors/, where files named
// valid_* must open and invalid_* must be rejected (ctest label fuzz; run under cpu-asan in CI).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace {

// One temp file per process, rewritten for every input (the reader only takes paths).
const std::string& scratch_path() {
    static const std::string path =
        (std::filesystem::temp_directory_path() / fmt::format("dsv4_fuzz_st_{}.safetensors", ::getpid()))
            .string();
    return path;
}

// Opens `data` as a safetensors file; returns whether it was accepted.
bool run_one(const uint8_t* data, size_t size) {
    const std::string& path = scratch_path();
    std::FILE* fp = std::fopen(path.c_str(), "wb");
    DSV4_ASSERT(fp != nullptr, "cannot create {}", path);
    if (size > 0) DSV4_ASSERT(std::fwrite(data, 1, size, fp) == size, "short write to {}", path);
    std::fclose(fp);

    auto r = dsv4::SafetensorsFile::open(path);
    if (!r.is_ok()) {
        DSV4_ASSERT(!r.message().empty(), "error without a message");
        return false;
    }
    const auto& f = **r;
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors()) {
        int64_t elem = dsv4::dtype_bytes(t.dtype, 1);
        DSV4_ASSERT(t.nbytes == t.numel() * elem, "tensor '{}': nbytes {} != numel {} * {}", t.name, t.nbytes,
                    t.numel(), elem);
        DSV4_ASSERT(t.nbytes <= f.file_size(), "tensor '{}' larger than its file", t.name);
        // Touch both ends: a pointer outside the mapping faults here (mmap memory is not ASan-tracked).
        if (t.nbytes > 0) sink = sink + t.data[0] + t.data[t.nbytes - 1];
        DSV4_ASSERT(f.find(t.name) == &t, "find('{}') does not return the tensor", t.name);
    }
    (void)sink;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run_one(data, size);
    return 0;
}

#ifndef DSV4_LIBFUZZER
// Corpus replay: fuzz-safetensors [file-or-dir ...] (default: the committed corpus).
int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    std::vector<std::string> args(argv + 1, argv + argc);
#ifdef DSV4_FUZZ_CORPUS
    if (args.empty()) args.push_back(DSV4_FUZZ_CORPUS);
#endif
    std::vector<fs::path> files;
    for (const auto& a : args) {
        if (fs::is_directory(a)) {
            for (const auto& e : fs::directory_iterator(a))
                if (e.is_regular_file()) files.push_back(e.path());
        } else {
            files.push_back(a);
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::fprintf(stderr, "usage: fuzz-safetensors FILE_OR_DIR...  (no inputs found)\n");
        return 2;
    }
    int n_wrong = 0;
    for (const auto& p : files) {
        std::FILE* fp = std::fopen(p.c_str(), "rb");
        if (!fp) {
            std::fprintf(stderr, "%s: cannot open\n", p.c_str());
            return 1;
        }
        std::vector<uint8_t> bytes;
        uint8_t buf[4096];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, fp)) > 0;) bytes.insert(bytes.end(), buf, buf + n);
        std::fclose(fp);
        bool ok = run_one(bytes.data(), bytes.size());
        std::string name = p.filename().string();
        bool want_ok = name.rfind("valid_", 0) == 0, want_bad = name.rfind("invalid_", 0) == 0;
        if ((want_ok && !ok) || (want_bad && ok)) {
            std::fprintf(stderr, "%s: %s, expected the opposite\n", name.c_str(),
                         ok ? "accepted" : "rejected");
            ++n_wrong;
        }
    }
    std::remove(scratch_path().c_str());
    std::printf("fuzz-safetensors: %zu inputs, %d with the wrong verdict\n", files.size(), n_wrong);
    return n_wrong == 0 ? 0 : 1;
}
#endif
