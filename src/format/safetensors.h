// safetensors reader (mmap, zero-copy) and writer; sharded checkpoints via model.safetensors.index.json.
// Every header check of style.md §6 is made at open time; tests/unit/test_safetensors.cpp feeds one
// handcrafted broken file per kind of damage and expects each to be rejected by name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace dsv4 {

struct TensorInfo {
    std::string name;
    DType dtype = DType::f32;  // as stored ("I8" stays i8; fp4 packing is decided by the weight table)
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // points into the mmap; valid while the owning file is open
    int64_t nbytes = 0;
    std::string file;  // file name (for messages)

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    std::string shape_str() const;  // "[4096, 1024]"
};

class SafetensorsFile {
public:
    static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& path() const { return path_; }
    int64_t file_size() const { return size_; }

private:
    SafetensorsFile() = default;
    std::string path_;
    void* map_ = nullptr;
    int64_t size_ = 0;
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// A checkpoint: a directory with model.safetensors.index.json (sharded), or with *.safetensors files,
// or a single .safetensors path. Tensor names must be unique across shards.
class Checkpoint {
public:
    static Result<Checkpoint> open(const std::string& path);
    // A checkpoint over tensors already in memory (e.g. a random-weight model that is never written to
    // disk): each TensorInfo's data points into memory that `owner` keeps alive as long as the checkpoint
    // (or a copy of it) lives; `label` stands for the directory in messages. Names must be unique and each
    // nbytes must equal numel × the dtype's size, as for a file.
    static Result<Checkpoint> from_memory(std::vector<TensorInfo> tensors, std::shared_ptr<const void> owner,
                                          const std::string& label);

    const TensorInfo* find(const std::string& name) const;
    std::vector<std::string> names() const;  // sorted
    int64_t total_bytes() const;             // sum of tensor bytes
    int64_t file_bytes() const;              // sum of file sizes
    const std::string& dir() const { return dir_; }
    size_t n_files() const { return files_.size(); }

private:
    std::string dir_;
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::shared_ptr<const std::vector<TensorInfo>> mem_tensors_;  // from_memory: the tensors
    std::shared_ptr<const void> mem_owner_;                       // ... and what keeps their data alive
    std::map<std::string, const TensorInfo*> by_name_;
};

struct TensorToWrite {
    std::string name;
    DType dtype;                 // fp4_e2m1 is written as "I8" with the packed shape given in `shape`
    std::vector<int64_t> shape;  // shape as stored
    const void* data;
    int64_t nbytes;
};

// Writes one safetensors file (tensors sorted by name, 8-byte aligned header, metadata as "__metadata__").
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

// Writes model.safetensors.index.json mapping each tensor name to its shard file name.
Status write_safetensors_index(const std::string& dir, const std::map<std::string, std::string>& weight_map,
                               int64_t total_size);

}  // namespace dsv4
