// Checkpoint: the tensors of one model across its safetensors shards, found through
// model.safetensors.index.json, else every *.safetensors in a directory, else one file; or tensors
// already in memory (from_memory, e.g. the random real-size model of `dsv4 bench`).
// Names must be unique across shards; tested in tests/unit/test_safetensors.cpp (sharded round trip).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "format/safetensors.h"

namespace dsv4 {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";

// Reads the index's weight_map (tensor name -> shard file name).
Status read_index(const fs::path& path, std::map<std::string, std::string>& weight_map) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return error("{}: cannot open", path.string());
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::exception& e) {
        return error("{}: invalid JSON: {}", path.string(), e.what());
    }
    if (!j.is_object()) return error("{}: must be a JSON object", path.string());
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object())
        return error("{}: missing 'weight_map' object (tensor name -> shard file)", path.string());
    for (const auto& [name, file] : wm->items()) {
        if (!file.is_string())
            return error("{}: weight_map entry '{}' must be a file name string", path.string(), name);
        weight_map[name] = file.get<std::string>();
    }
    return Status::ok();
}

}  // namespace

Result<Checkpoint> Checkpoint::open(const std::string& path) {
    Checkpoint ck;
    std::error_code ec;
    fs::path p(path);
    std::vector<fs::path> shard_paths;
    std::vector<std::string> shard_keys;  // the index's file names, parallel to shard_paths
    std::map<std::string, std::string> weight_map;
    bool have_index = false;

    if (fs::is_regular_file(p, ec)) {
        ck.dir_ = p.has_parent_path() ? p.parent_path().string() : std::string(".");
        shard_paths.push_back(p);
    } else if (fs::is_directory(p, ec)) {
        ck.dir_ = path;
        if (fs::exists(p / kIndexName, ec)) {
            have_index = true;
            DSV4_TRY(read_index(p / kIndexName, weight_map));
            std::set<std::string> files;
            for (const auto& [name, file] : weight_map) {
                if (files.insert(file).second && !fs::is_regular_file(p / file, ec))
                    return error("{}: shard '{}' (holding tensor '{}') does not exist in {}", kIndexName,
                                 file, name, path);
            }
            for (const auto& file : files) {
                shard_keys.push_back(file);
                shard_paths.push_back(p / file);
            }
        } else {
            for (const auto& e : fs::directory_iterator(p, ec)) {
                if (e.is_regular_file() && e.path().extension() == ".safetensors")
                    shard_paths.push_back(e.path());
            }
            if (ec) return error("{}: cannot list directory: {}", path, ec.message());
            // Without an index, model*.safetensors are the weights when present (HF names its shards
            // model-0000k-of-0000n); other .safetensors files beside them (e.g. golden activations) are not.
            std::vector<fs::path> model_files;
            for (const auto& sp : shard_paths)
                if (sp.filename().string().rfind("model", 0) == 0) model_files.push_back(sp);
            if (!model_files.empty()) shard_paths = model_files;
            std::sort(shard_paths.begin(), shard_paths.end());
            if (shard_paths.empty())
                return error("{}: no model.safetensors.index.json and no *.safetensors files", path);
        }
    } else {
        return error("{}: no such file or directory", path);
    }

    std::map<std::string, size_t> file_of;  // index file name -> position in files_
    for (size_t i = 0; i < shard_paths.size(); ++i) {
        DSV4_TRY_ASSIGN(auto f, SafetensorsFile::open(shard_paths[i].string()));
        if (have_index) file_of[shard_keys[i]] = ck.files_.size();
        ck.files_.push_back(std::shared_ptr<SafetensorsFile>(std::move(f)));
    }
    for (const auto& f : ck.files_) {
        for (const auto& t : f->tensors()) {
            auto [it, inserted] = ck.by_name_.emplace(t.name, &t);
            if (!inserted)
                return error("tensor '{}' appears in both {} and {}", t.name, it->second->file, t.file);
            if (have_index && !weight_map.count(t.name))
                log_warn("{}: tensor '{}' is not listed in {}", t.file, t.name, kIndexName);
        }
    }
    for (const auto& [name, file] : weight_map) {
        const SafetensorsFile& f = *ck.files_[file_of.at(file)];
        if (!f.find(name))
            return error("{}: tensor '{}' is listed in shard '{}', but that shard does not hold it",
                         kIndexName, name, file);
    }
    return ck;
}

Result<Checkpoint> Checkpoint::from_memory(std::vector<TensorInfo> tensors, std::shared_ptr<const void> owner,
                                           const std::string& label) {
    Checkpoint ck;
    ck.dir_ = label;
    ck.mem_owner_ = std::move(owner);
    for (const TensorInfo& t : tensors) {
        int64_t numel = 1;
        bool overflow = false;
        for (int64_t d : t.shape) overflow = overflow || d < 0 || __builtin_mul_overflow(numel, d, &numel);
        int64_t nbytes = 0;
        overflow = overflow || __builtin_mul_overflow(numel, dtype_bytes(t.dtype, 1), &nbytes);
        if (overflow || nbytes != t.nbytes)
            return error("{}: tensor '{}' of dtype {} and shape {} holds {} bytes, expected {}", label,
                         t.name, dtype_name(t.dtype), t.shape_str(), t.nbytes,
                         overflow ? std::string("too many") : std::to_string(nbytes));
        if (!t.data && t.nbytes > 0) return error("{}: tensor '{}' has no data", label, t.name);
    }
    auto held = std::make_shared<const std::vector<TensorInfo>>(std::move(tensors));
    for (const TensorInfo& t : *held)
        if (!ck.by_name_.emplace(t.name, &t).second)
            return error("{}: tensor '{}' appears twice", label, t.name);
    ck.mem_tensors_ = std::move(held);
    return ck;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, t] : by_name_) out.push_back(name);
    return out;
}

int64_t Checkpoint::total_bytes() const {
    int64_t n = 0;
    for (const auto& [name, t] : by_name_) n += t->nbytes;
    return n;
}

int64_t Checkpoint::file_bytes() const {
    int64_t n = 0;
    for (const auto& f : files_) n += f->file_size();
    return n;
}

}  // namespace dsv4
