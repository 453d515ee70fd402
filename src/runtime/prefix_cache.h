// PrefixCache: boundary snapshots of sequence state keyed by the hash chain of the token prefix.
//
// What can be shared (serving-design §2): compressed KV entries and indexer keys are a function of the
// prefix alone, so they are shared as pages. The window state is not (the SWA rows at position t depend
// on every earlier layer's attention back to t-127), so it is shared only through a snapshot of the
// whole fixed state taken when a sequence's computed length was exactly B. B is a multiple of the block
// (page) size, which is a multiple of 128 = lcm(4, 128) for real models: at B no CSA or HCA window is
// open, and the CSA overlap rows (B-4..B-1) and the last 128 SWA rows are inside the snapshot.
// A hit restores B <= prompt_len - 1 tokens (one token is always computed to get logits).
//
// Snapshots are taken at each prompt's replay boundary (last block multiple <= len-1) and at junctions
// (the end of a block chain an earlier prompt shares with this one), LRU-evicted. Engine-thread only.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/model_runner.h"

namespace dsv4 {

struct Snapshot {
    uint64_t hash = 0;            // chain hash of the first `tokens.size()` tokens
    std::vector<int32_t> tokens;  // the prefix, for a full compare on hit
    SeqHandle handle = -1;        // runner state forked at length tokens.size()
    std::vector<int32_t> pages;   // page refs held by this snapshot
    int snapshot_slot = -1;
};

class PrefixCache {
public:
    PrefixCache(int block_tokens, size_t max_blocks_remembered = 1 << 16)
        : block_(block_tokens), max_blocks_(max_blocks_remembered) {}

    int block_tokens() const { return block_; }
    // h_k = H(h_{k-1}, tokens of block k), seeded by the salt; one hash per full block of `tokens`.
    std::vector<uint64_t> block_hashes(std::span<const int32_t> tokens, const std::string& salt) const;

    // Deepest snapshot whose prefix equals tokens[0:B] with B <= max_len; nullptr on a miss.
    const Snapshot* lookup(std::span<const int32_t> tokens, const std::vector<uint64_t>& hashes,
                           int64_t max_len);
    bool contains(uint64_t hash) const { return by_hash_.count(hash) != 0; }
    void insert(Snapshot snap);
    // Removes the least recently used snapshot into `out`; false when empty.
    bool evict_lru(Snapshot& out);
    size_t size() const { return lru_.size(); }

    // Block-chain registry (hashes only) used to find junctions with earlier prompts.
    void remember_blocks(const std::vector<uint64_t>& hashes);
    int64_t matched_blocks(const std::vector<uint64_t>& hashes) const;

private:
    int block_;
    size_t max_blocks_;
    std::list<Snapshot> lru_;  // front = most recent
    std::unordered_map<uint64_t, std::list<Snapshot>::iterator> by_hash_;
    std::unordered_set<uint64_t> blocks_;
    std::list<uint64_t> block_order_;  // FIFO for the registry bound
};

}  // namespace dsv4
