// safetensors reader: mmap (read-only, zero-copy) plus every header check of style.md §6, and the writer.
// Layout: 8-byte little-endian header length N, N bytes of JSON, then the data section that all
// data_offsets are relative to. Tested by tests/unit/test_safetensors.cpp (one broken file per check)
// and fuzzed by tests/fuzz/fuzz_safetensors.cpp. Sharded checkpoints live in checkpoint.cpp.
#include "format/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace dsv4 {

namespace {

using json = nlohmann::json;

// A header larger than this is not a real checkpoint (the biggest real ones are a few MB); the cap keeps
// a corrupt length from making us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

// Non-negative integer from a JSON value; false for floats, negatives, other types.
bool as_nonneg_int(const json& v, int64_t& out) {
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > uint64_t(INT64_MAX)) return false;
        out = int64_t(u);
        return true;
    }
    if (v.is_number_integer()) {
        out = v.get<int64_t>();
        return out >= 0;
    }
    return false;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
    return s + "]";
}

// Parses the header JSON, rejecting duplicate top-level keys (nlohmann would silently keep the last one,
// so a tensor could be shadowed).
Status parse_header(const char* begin, const char* end, json& out) {
    std::string duplicate;
    std::set<std::string> seen;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
            if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty())
                duplicate = parsed.get<std::string>();
        }
        return true;
    };
    try {
        out = json::parse(begin, end, cb);
    } catch (const json::exception& e) {
        return error("invalid JSON in header: {}", e.what());
    }
    if (!duplicate.empty()) return error("duplicate tensor name '{}' in header", duplicate);
    return Status::ok();
}

Status parse_metadata(const json& v, std::map<std::string, std::string>& out) {
    if (!v.is_object()) return error("'__metadata__' must be an object of strings, found {}", v.type_name());
    for (const auto& [k, val] : v.items()) {
        if (!val.is_string())
            return error("'__metadata__' value of '{}' must be a string, found {}", k, val.type_name());
        out[k] = val.get<std::string>();
    }
    return Status::ok();
}

// One header entry -> TensorInfo (data pointer set later); checks types, dtype, shape and offsets.
Status parse_entry(const std::string& name, const json& v, int64_t data_size, TensorInfo& t, int64_t& begin,
                   int64_t& end) {
    if (!v.is_object()) return error("tensor '{}': entry must be an object, found {}", name, v.type_name());
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end()) return error("tensor '{}': missing 'dtype'", name);
    if (sh == v.end()) return error("tensor '{}': missing 'shape'", name);
    if (off == v.end()) return error("tensor '{}': missing 'data_offsets'", name);
    if (!dt->is_string())
        return error("tensor '{}': 'dtype' must be a string, found {}", name, dt->type_name());
    auto dtype = dtype_from_safetensors(dt->get<std::string>());
    if (!dtype) return error("tensor '{}': unknown dtype '{}'", name, dt->get<std::string>());
    if (!sh->is_array())
        return error("tensor '{}': 'shape' must be an array, found {}", name, sh->type_name());

    t.name = name;
    t.dtype = *dtype;
    t.shape.clear();
    int64_t numel = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
        int64_t n = 0;
        if (!as_nonneg_int(d, n))
            return error("tensor '{}': shape {} has a dimension that is not a non-negative integer", name,
                         sh->dump());
        t.shape.push_back(n);
        overflow = overflow || __builtin_mul_overflow(numel, n, &numel);
    }
    if (!off->is_array() || off->size() != 2 || !as_nonneg_int((*off)[0], begin) ||
        !as_nonneg_int((*off)[1], end))
        return error("tensor '{}': 'data_offsets' must be [begin, end] with non-negative integers, found {}",
                     name, off->dump());
    if (begin > end) return error("tensor '{}': data_offsets [{}, {}] has begin > end", name, begin, end);
    if (end > data_size)
        return error("tensor '{}': data_offsets end {} is beyond the data section ({} bytes)", name, end,
                     data_size);
    int64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, dtype_bytes(*dtype, 1), &nbytes);
    if (overflow || nbytes != end - begin)
        return error("tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", name,
                     shape_to_string(t.shape), dt->get<std::string>(),
                     overflow ? std::string("too many") : std::to_string(nbytes), begin, end, end - begin);
    t.nbytes = nbytes;
    return Status::ok();
}

}  // namespace

std::string TensorInfo::shape_str() const {
    return shape_to_string(shape);
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) munmap(map_, size_t(size_));
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error("{}: cannot open: {}", path, std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return error("{}: not a regular file", path);
    }
    f->size_ = int64_t(st.st_size);
    if (f->size_ < 8) {
        ::close(fd);
        return error("{}: file is {} bytes, shorter than the 8-byte header length", path, f->size_);
    }
    void* m = mmap(nullptr, size_t(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);  // the mapping keeps the file alive
    if (m == MAP_FAILED) return error("{}: mmap failed: {}", path, std::strerror(errno));
    f->map_ = m;
    const auto* base = static_cast<const uint8_t*>(m);

    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];  // little-endian on any host
    if (header_len > kMaxHeaderBytes)
        return error("{}: header length {} exceeds the {} byte cap (corrupt file?)", path, header_len,
                     kMaxHeaderBytes);
    if (header_len > uint64_t(f->size_ - 8))
        return error("{}: header length {} exceeds the file size {} minus 8", path, header_len, f->size_);

    json header;
    const char* hbegin = reinterpret_cast<const char*>(base + 8);
    if (Status s = parse_header(hbegin, hbegin + header_len, header); !s) return s.with_context(path);
    if (!header.is_object())
        return error("{}: header must be a JSON object, found {}", path, header.type_name());

    const int64_t data_start = 8 + int64_t(header_len);
    const int64_t data_size = f->size_ - data_start;
    struct Span {
        int64_t begin, end;
        size_t idx;
    };
    std::vector<Span> spans;
    for (const auto& [name, v] : header.items()) {
        if (name == "__metadata__") {
            if (Status s = parse_metadata(v, f->metadata_); !s) return s.with_context(path);
            continue;
        }
        TensorInfo t;
        int64_t begin = 0, end = 0;
        if (Status s = parse_entry(name, v, data_size, t, begin, end); !s) return s.with_context(path);
        t.data = base + data_start + begin;
        t.file = path;
        spans.push_back({begin, end, f->tensors_.size()});
        f->index_[name] = f->tensors_.size();
        f->tensors_.push_back(std::move(t));
    }

    // Overlap: sort non-empty spans by begin; each must end at or before the next one starts.
    spans.erase(std::remove_if(spans.begin(), spans.end(), [](const Span& s) { return s.begin == s.end; }),
                spans.end());
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < spans.size(); ++i) {
        if (spans[i].begin < spans[i - 1].end) {
            return error("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap in the data section", path,
                         f->tensors_[spans[i - 1].idx].name, spans[i - 1].begin, spans[i - 1].end,
                         f->tensors_[spans[i].idx].name, spans[i].begin, spans[i].end);
        }
    }
    return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------------------
// Writer

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
    std::vector<const TensorToWrite*> order;
    for (const auto& t : tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });

    json header = json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    int64_t offset = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        const TensorToWrite& t = *order[i];
        if (i > 0 && order[i - 1]->name == t.name)
            return error("{}: duplicate tensor name '{}'", path, t.name);
        if (t.name == "__metadata__") return error("{}: '__metadata__' is not a valid tensor name", path);
        // fp4 is stored as I8 with the packed shape, so the size check uses the on-disk dtype.
        const char* st_name = dtype_safetensors_name(t.dtype);
        int64_t elem = dtype_bytes(*dtype_from_safetensors(st_name), 1);
        int64_t numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0) return error("{}: tensor '{}' has a negative dimension", path, t.name);
            numel *= d;
        }
        if (numel * elem != t.nbytes)
            return error("{}: tensor '{}' shape {} of {} needs {} bytes, given {}", path, t.name,
                         shape_to_string(t.shape), st_name, numel * elem, t.nbytes);
        header[t.name] = {
            {"dtype", st_name}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string text = header.dump();
    // Pad with spaces so the data section starts 8-byte aligned (readers may then cast in place).
    text.append((8 - text.size() % 8) % 8, ' ');

    std::FILE* fp = std::fopen(path.c_str(), "wb");
    if (!fp) return error("{}: cannot create: {}", path, std::strerror(errno));
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    bool ok = std::fwrite(len, 1, 8, fp) == 8 && std::fwrite(text.data(), 1, text.size(), fp) == text.size();
    for (const TensorToWrite* t : order) {
        if (ok && t->nbytes > 0) ok = std::fwrite(t->data, 1, size_t(t->nbytes), fp) == size_t(t->nbytes);
    }
    ok = (std::fclose(fp) == 0) && ok;
    if (!ok) return error("{}: write failed: {}", path, std::strerror(errno));
    return Status::ok();
}

Status write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                               int64_t total_size) {
    json j = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
    std::string path = dir + "/model.safetensors.index.json";
    std::FILE* fp = std::fopen(path.c_str(), "wb");
    if (!fp) return error("{}: cannot create: {}", path, std::strerror(errno));
    std::string text = j.dump(2) + "\n";
    bool ok = std::fwrite(text.data(), 1, text.size(), fp) == text.size();
    ok = (std::fclose(fp) == 0) && ok;
    if (!ok) return error("{}: write failed: {}", path, std::strerror(errno));
    return Status::ok();
}

}  // namespace dsv4
