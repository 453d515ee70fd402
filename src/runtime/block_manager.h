// BlockManager: state-memory accounting in fixed-size units sized once at start-up (serving-design §1.5):
//  - slots: one per running sequence (window rings + compressor rows, StateGeometry::fixed_bytes);
//  - pages: `page_tokens` positions of compressed state each, ref-counted so prefix snapshots and the
//    sequences restored from them share pages;
//  - snapshot slots: the fixed state kept by each prefix-cache snapshot.
// Allocate and free are O(1) (free stacks). Pools here are bookkeeping only; backends own the buffers.
// Invariants: a page's ref count equals the number of page tables holding it; all counts return to the
// start-up values when every request has ended and the prefix cache is cleared (test_block_manager.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "runtime/state_geometry.h"

namespace dsv4 {

struct PoolOptions {
    int max_seqs = 8;
    int64_t ctx_size = 4096;  // tokens one sequence may hold (prompt + output)
    int page_tokens = 256;    // also the prefix-cache block
    int max_snapshots = 16;
    int64_t memory_budget = 0;  // bytes for all state; 0 = max_seqs full-length sequences
};

struct PoolUsage {
    int64_t pages_total = 0, pages_used = 0;
    int slots_total = 0, slots_used = 0;
    int snapshots_total = 0, snapshots_used = 0;
    int64_t page_bytes = 0, slot_bytes = 0;
};

class BlockManager {
public:
    static Result<BlockManager> create(const PoolOptions& opts, const StateGeometry& geo);

    int page_tokens() const { return page_tokens_; }
    int64_t pages_for(int64_t n_tokens) const { return (n_tokens + page_tokens_ - 1) / page_tokens_; }

    bool can_allocate_slot() const { return !free_slots_.empty(); }
    int allocate_slot();
    void free_slot(int slot);

    bool can_allocate_snapshot() const { return !free_snapshots_.empty(); }
    int allocate_snapshot();
    void free_snapshot(int id);

    // Pages a table needs added to cover `n_tokens` positions.
    int64_t pages_needed(const std::vector<int32_t>& table, int64_t n_tokens) const;
    bool can_grow(const std::vector<int32_t>& table, int64_t n_tokens) const;
    // Appends pages until the table covers n_tokens; the caller checked can_grow.
    void grow(std::vector<int32_t>& table, int64_t n_tokens);
    void ref(int32_t page);
    void unref(int32_t page);
    void release(std::vector<int32_t>& table);  // unref all, clear

    int64_t free_pages() const { return int64_t(free_pages_.size()); }
    PoolUsage usage() const;

private:
    int page_tokens_ = 256;
    int64_t page_bytes_ = 0, slot_bytes_ = 0;
    std::vector<int32_t> free_pages_;  // stack
    std::vector<int32_t> page_refs_;
    std::vector<int> free_slots_;
    std::vector<uint8_t> slot_used_;
    std::vector<int> free_snapshots_;
    std::vector<uint8_t> snapshot_used_;
};

}  // namespace dsv4
