// Byte-level BPE model ("model" of tokenizer.json, type BPE): vocab, merge ranks and the per-piece
// merge loop. Merges live in an open-addressing table keyed by the (left id, right id) pair, so a
// merge step is one hash probe on integers; a sharded piece cache skips BPE for repeated pieces.
// Invariants: every byte has a token (no unk, no byte fallback); ranks are merge-list indices.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace dsv4 {

class BpeModel {
public:
    static Result<std::unique_ptr<BpeModel>> from_json(const nlohmann::json& model);

    // Appends the ids of one pre-tokenized piece (raw bytes, not the byte-level spelling). Thread-safe.
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

    // The piece's ids without the cache: the plain algorithm, for tests and for cache misses.
    void merge_piece(std::string_view piece, std::vector<int32_t>& out) const;

    const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }  // spelled -> id
    size_t num_merges() const { return num_merges_; }

private:
    struct MergeSlot {
        uint64_t key = kEmpty;  // (left << 32) | right
        int32_t rank = 0;
        int32_t merged = 0;
    };
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    const MergeSlot* find_merge(int32_t left, int32_t right) const;
    void insert_merge(int32_t left, int32_t right, int32_t rank, int32_t merged);

    std::unordered_map<std::string, int32_t> vocab_;
    std::array<int32_t, 256> byte_ids_{};  // raw byte -> id of its one-character token
    std::vector<MergeSlot> merges_;        // open addressing, power-of-two size, linear probing
    size_t num_merges_ = 0;

    // NOTE(tok): HF caps its cache at 10k pieces and stops inserting when full; so do we, per shard.
    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct CacheShard {
        std::mutex mu;
        std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
    };
    static constexpr size_t kCacheShards = 32;
    static constexpr size_t kCacheShardCapacity = 2048;
    mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace dsv4
