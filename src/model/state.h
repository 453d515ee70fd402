// SeqState: everything one sequence carries between forward calls (spec §11.1, HF cache semantics):
// per layer a window ring of the last `sliding_window` kv vectors, and for compressed layers the
// compressor's pending tokens, the CSA overlap half of the previous window, the compressed entries, and
// (CSA) the indexer's own compressor state and index keys. All f32 (the CPU reference / HF-parity layout).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace dsv4 {

// Pending state of one compressor (spec §6.5). Token t sits in slot t % m of the current window.
struct CompressorState {
    int m = 0;                  // ratio
    int c = 1;                  // 2 = overlapping (CSA), 1 = HCA
    int d = 0;                  // entry width
    std::vector<float> pend_a;  // [m, c·d] projections of the current window's tokens
    std::vector<float> pend_z;  // [m, c·d] gate logits incl. ape
    std::vector<float> prev_a;  // [m, d]   A halves of the last complete window (CSA only)
    std::vector<float> prev_z;  // [m, d]
    bool has_prev = false;
    std::vector<float> entries;  // [n_entries, d] normed, RoPE'd compressed entries
    int64_t n_entries() const { return d ? int64_t(entries.size()) / d : 0; }
};

struct LayerState {
    std::vector<float> window;  // [W, head_dim] ring; position p lives in slot p % W
    CompressorState cmp;        // main compressor (CSA, HCA)
    CompressorState idx;        // indexer compressor (CSA): entries are the index keys
};

// Opaque per-sequence state of a device backend (model/forward_cuda.cpp); copying a SeqState deep-copies it.
struct DeviceSeqState {
    virtual ~DeviceSeqState() = default;
    virtual std::unique_ptr<DeviceSeqState> clone() const = 0;
};
struct DeviceStatePtr {
    std::unique_ptr<DeviceSeqState> p;
    DeviceStatePtr() = default;
    DeviceStatePtr(const DeviceStatePtr& o) : p(o.p ? o.p->clone() : nullptr) {}
    DeviceStatePtr(DeviceStatePtr&&) noexcept = default;
    DeviceStatePtr& operator=(const DeviceStatePtr& o) {
        if (this != &o) p = o.p ? o.p->clone() : nullptr;
        return *this;
    }
    DeviceStatePtr& operator=(DeviceStatePtr&&) noexcept = default;
};

struct SeqState {
    int64_t n_past = 0;              // tokens consumed so far
    std::vector<LayerState> layers;  // CPU backend
    DeviceStatePtr device;           // CUDA backend (layers stays empty)
};

// One sequence's part of a batched forward call (Model::forward_batch): its new tokens, and whether it
// wants logits for all of them or only for the last.
struct BatchItem {
    SeqState* st;
    std::span<const int32_t> ids;
    bool all_logits = false;
};

}  // namespace dsv4
