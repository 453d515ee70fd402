// Byte-level BPE; see bpe_model.h. The merge loop follows HF tokenizers' Word::merge_all: a min-heap
// of candidate pairs ordered by (rank, position), stale entries skipped when popped. Cost is
// O(n log n) per piece of n bytes, so long pieces (CJK runs, whitespace runs) stay cheap.
#include "tokenizer/bpe_model.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"

namespace dsv4 {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

size_t mix(uint64_t k) {  // splitmix64 finalizer: ids are small and dense, so spread them
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    k ^= k >> 31;
    return static_cast<size_t>(k);
}

}  // namespace

const BpeModel::MergeSlot* BpeModel::find_merge(int32_t left, int32_t right) const {
    const uint64_t key = pair_key(left, right);
    const size_t mask = merges_.size() - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
        const MergeSlot& s = merges_[i];
        if (s.key == key) return &s;
        if (s.key == kEmpty) return nullptr;
    }
}

void BpeModel::insert_merge(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t key = pair_key(left, right);
    const size_t mask = merges_.size() - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
        MergeSlot& s = merges_[i];
        if (s.key == key) return;  // a duplicate merge line: the first (lowest) rank wins, as in HF
        if (s.key == kEmpty) {
            s = {key, rank, merged};
            ++num_merges_;
            return;
        }
    }
}

Result<std::unique_ptr<BpeModel>> BpeModel::from_json(const nlohmann::json& m) {
    if (!m.is_object() || m.value("type", "") != "BPE")
        return error("model: type must be 'BPE', found {}",
                     m.is_object() ? m.value("type", "(none)") : m.dump());
    if (m.contains("dropout") && !m["dropout"].is_null()) return error("model: BPE dropout is not supported");
    if (m.value("byte_fallback", false))
        return error("model: byte_fallback is not supported (byte-level BPE only)");
    if (m.value("ignore_merges", false)) return error("model: ignore_merges=true is not supported");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (m.contains(k) && !m[k].is_null() && m[k] != "") return error("model: '{}' is not supported", k);
    if (!m.contains("vocab") || !m["vocab"].is_object()) return error("model: missing 'vocab' object");
    if (!m.contains("merges") || !m["merges"].is_array()) return error("model: missing 'merges' array");

    auto bpe = std::make_unique<BpeModel>();
    bpe->vocab_.reserve(m["vocab"].size());
    for (const auto& [tok, id] : m["vocab"].items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
            return error("model.vocab: token '{}' has id {}, expected a non-negative 32-bit integer", tok,
                         id.dump());
        bpe->vocab_.emplace(tok, id.get<int32_t>());
    }
    for (int b = 0; b < 256; ++b) {
        const std::string spelled = byte_level::from_bytes(std::string(1, static_cast<char>(b)));
        auto it = bpe->vocab_.find(spelled);
        if (it == bpe->vocab_.end())
            return error(
                "model.vocab: no token for byte 0x{:02x} ('{}'); a byte-level BPE vocab needs all 256", b,
                spelled);
        bpe->byte_ids_[b] = it->second;
    }

    const auto& merges = m["merges"];
    size_t cap = 1;
    while (cap < merges.size() * 2 + 16) cap <<= 1;  // load factor <= 0.5
    bpe->merges_.assign(cap, MergeSlot{});
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const auto& e = merges[rank];
        std::string left, right;
        if (e.is_string()) {  // "left right": exactly one space (tokens never contain ' ', it is 'Ġ')
            const std::string& s = e.get_ref<const std::string&>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                return error("model.merges[{}]: '{}' is not 'left right'", rank, s);
            left = s.substr(0, sp);
            right = s.substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            left = e[0].get<std::string>();
            right = e[1].get<std::string>();
        } else {
            return error("model.merges[{}]: expected a string or a pair of strings, found {}", rank,
                         e.dump());
        }
        const auto l = bpe->vocab_.find(left), r = bpe->vocab_.find(right),
                   lr = bpe->vocab_.find(left + right);
        if (l == bpe->vocab_.end() || r == bpe->vocab_.end() || lr == bpe->vocab_.end())
            return error("model.merges[{}]: '{} {}' uses or makes a token missing from the vocab", rank, left,
                         right);
        bpe->insert_merge(l->second, r->second, static_cast<int32_t>(rank), lr->second);
    }
    return bpe;
}

void BpeModel::merge_piece(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 0) return;
    if (n == 1) {
        out.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
        return;
    }
    // Symbols are indexed by the byte where they start; a merge keeps the left index alive.
    struct Sym {
        int32_t id, prev, next;  // prev/next: index of the neighbouring live symbol, -1 at the ends
    };
    struct Cand {
        int32_t rank, pos, left, right;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<Sym> syms;
    thread_local std::vector<Cand> heap;
    syms.resize(n);
    heap.clear();
    for (size_t i = 0; i < n; ++i)
        syms[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], static_cast<int32_t>(i) - 1,
                   i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
    auto push = [&](int32_t pos) {
        const int32_t nx = syms[pos].next;
        if (nx < 0) return;
        if (const MergeSlot* mslot = find_merge(syms[pos].id, syms[nx].id)) {
            heap.push_back({mslot->rank, pos, syms[pos].id, syms[nx].id});
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
    };
    for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        const Cand c = heap.back();
        heap.pop_back();
        Sym& s = syms[c.pos];
        // Stale if the left symbol grew or its right neighbour changed since this entry was pushed.
        if (s.id != c.left || s.next < 0 || syms[s.next].id != c.right) continue;
        const int32_t dead = s.next;
        s.id = find_merge(c.left, c.right)->merged;
        s.next = syms[dead].next;
        if (s.next >= 0) syms[s.next].prev = c.pos;
        syms[dead].id = -1;
        if (s.prev >= 0) push(s.prev);
        push(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.size() <= 1) return merge_piece(piece, out);
    CacheShard& shard = cache_[std::hash<std::string_view>{}(piece) % kCacheShards];
    {
        std::lock_guard<std::mutex> lock(shard.mu);
        auto it = shard.map.find(piece);
        if (it != shard.map.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    merge_piece(piece, out);
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.map.size() < kCacheShardCapacity)
        shard.map.emplace(std::string(piece), std::vector<int32_t>(out.begin() + first, out.end()));
}

}  // namespace dsv4
