// Sequence: the engine's record of one request while it waits or runs. Engine-thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/model_runner.h"
#include "runtime/request.h"
#include "runtime/sampler.h"

namespace dsv4 {

using Clock = std::chrono::steady_clock;

struct Sequence {
    Request req;
    std::shared_ptr<EventChannel> events;
    std::vector<int32_t> tokens;  // prompt + generated
    int n_prompt = 0;
    int n_output = 0;
    int64_t n_computed = 0;  // tokens the runner state has consumed
    SeqHandle handle = -1;   // -1 while waiting
    int slot = -1;
    std::vector<int32_t> pages;  // page table covering n_computed (+ this step's chunk)
    PenaltyState penalties;
    int n_cached = 0;  // prompt tokens restored from the prefix cache
    std::vector<uint64_t> block_hashes;
    std::vector<int64_t> snapshot_at;  // ascending positions where a prefix snapshot is wanted
    bool admitted_once = false;
    Clock::time_point t_arrival, t_admitted, t_first_token, t_last_token;

    int64_t remaining() const { return int64_t(tokens.size()) - n_computed; }
    bool is_decode() const { return n_computed > 0 && remaining() == 1; }
};

}  // namespace dsv4
