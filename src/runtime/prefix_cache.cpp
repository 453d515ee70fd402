// PrefixCache: see the header.
#include "runtime/prefix_cache.h"

#include <algorithm>

namespace dsv4 {

namespace {
uint64_t mix64(uint64_t h, uint64_t v) {
    uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
}  // namespace

std::vector<uint64_t> PrefixCache::block_hashes(std::span<const int32_t> tokens,
                                                const std::string& salt) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : salt) h = mix64(h, c);
    std::vector<uint64_t> out;
    const size_t n_blocks = tokens.size() / size_t(block_);
    for (size_t b = 0; b < n_blocks; ++b) {
        for (size_t i = 0; i < size_t(block_); ++i) h = mix64(h, uint32_t(tokens[b * size_t(block_) + i]));
        out.push_back(h);
    }
    return out;
}

const Snapshot* PrefixCache::lookup(std::span<const int32_t> tokens, const std::vector<uint64_t>& hashes,
                                    int64_t max_len) {
    for (int64_t b = int64_t(hashes.size()); b >= 1; --b) {
        const int64_t len = b * block_;
        if (len > max_len) continue;
        auto it = by_hash_.find(hashes[size_t(b - 1)]);
        if (it == by_hash_.end()) continue;
        const Snapshot& s = *it->second;
        if (int64_t(s.tokens.size()) != len || !std::equal(s.tokens.begin(), s.tokens.end(), tokens.begin()))
            continue;  // hash collision
        lru_.splice(lru_.begin(), lru_, it->second);
        return &lru_.front();
    }
    return nullptr;
}

void PrefixCache::insert(Snapshot snap) {
    const uint64_t h = snap.hash;
    lru_.push_front(std::move(snap));
    by_hash_[h] = lru_.begin();
}

bool PrefixCache::evict_lru(Snapshot& out) {
    if (lru_.empty()) return false;
    out = std::move(lru_.back());
    by_hash_.erase(out.hash);
    lru_.pop_back();
    return true;
}

void PrefixCache::remember_blocks(const std::vector<uint64_t>& hashes) {
    for (uint64_t h : hashes) {
        if (!blocks_.insert(h).second) continue;
        block_order_.push_back(h);
        if (block_order_.size() > max_blocks_) {
            blocks_.erase(block_order_.front());
            block_order_.pop_front();
        }
    }
}

int64_t PrefixCache::matched_blocks(const std::vector<uint64_t>& hashes) const {
    int64_t n = 0;
    while (n < int64_t(hashes.size()) && blocks_.count(hashes[size_t(n)])) n++;
    return n;
}

}  // namespace dsv4
