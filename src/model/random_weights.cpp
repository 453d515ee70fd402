// Random in-memory checkpoint (see random_weights.h). The bulk buffer holds small bf16 values
// (|v| < 0.02) with every byte that would be an FP8 e4m3 NaN code (0x7f, 0xff) nudged by one mantissa bit,
// so any even offset into it is valid bf16, FP8 and packed FP4 data. Offsets are 64-byte aligned.
#include "model/random_weights.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/dtype.h"
#include "model/inventory.h"

namespace dsv4 {

namespace {

uint64_t mix(uint64_t z) {  // splitmix64 finalizer
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float unit(uint64_t z) {  // [0, 1)
    return float(mix(z) >> 40) / float(1 << 24);
}

struct Buffer {
    std::unique_ptr<uint8_t[]> p;
    size_t size = 0;
    void allocate(size_t largest) {  // room for the largest tensor plus slack, so offsets vary
        size = (largest + std::max<size_t>(largest / 16, 4096) + 63) & ~size_t(63);
        p.reset(new uint8_t[size]);
    }
    // A 64-byte aligned offset for `n` bytes, different per tensor index `i`.
    const uint8_t* at(size_t n, uint64_t i) const {
        const size_t room = size - n;  // n ≤ largest < size
        return p.get() + ((mix(i * 0x9E3779B97F4A7C15ull + 17) % (room + 1)) & ~size_t(63));
    }
};

struct Buffers {
    Buffer bulk, scales, f32s, norms;
    std::vector<std::vector<int64_t>> tid2eid;  // one table per hash layer
};

bool is_norm(const InventoryEntry& e) {
    return e.dtype == DType::bf16 && e.name.find("norm") != std::string::npos;
}

}  // namespace

Result<RandomCheckpoint> random_checkpoint(const Dsv4Config& cfg, uint64_t seed, const std::string& name) {
    Dsv4Config c = cfg;
    c.num_nextn_predict_layers = 0;
    const std::vector<InventoryEntry> inv = released_inventory(c);
    auto B = std::make_shared<Buffers>();
    size_t big = 0, scl = 0, f32 = 0, nrm = 0;
    for (const InventoryEntry& e : inv) {
        const size_t data = size_t(e.bytes - e.scale_bytes);
        if (e.dtype == DType::f32)
            f32 = std::max(f32, data);
        else if (is_norm(e))
            nrm = std::max(nrm, data);
        else if (e.dtype != DType::i64)
            big = std::max(big, data);
        scl = std::max(scl, size_t(e.scale_bytes));
    }
    B->bulk.allocate(big);
    B->scales.allocate(scl);
    B->f32s.allocate(f32);
    B->norms.allocate(nrm);

    const int64_t n_bulk = int64_t(B->bulk.size / 2);
    auto* h = reinterpret_cast<uint16_t*>(B->bulk.p.get());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_bulk; ++i) {
        uint16_t v = f32_to_bf16(0.04f * (unit(seed + uint64_t(i)) - 0.5f));
        if ((v & 0x7f) == 0x7f) v ^= 1;  // low byte as FP8: not a NaN code (the high byte never is)
        h[i] = v;
    }
    for (size_t i = 0; i < B->scales.size; ++i)  // UE8M0 118..123: 2^-9 .. 2^-4
        B->scales.p[i] = uint8_t(118 + mix(seed ^ (i * 7919 + 3)) % 6);
    auto* f = reinterpret_cast<float*>(B->f32s.p.get());
    for (size_t i = 0; i < B->f32s.size / 4; ++i) f[i] = 0.02f * (unit(seed * 31 + i) - 0.5f);
    auto* nw = reinterpret_cast<uint16_t*>(B->norms.p.get());
    for (size_t i = 0; i < B->norms.size / 2; ++i)
        nw[i] = f32_to_bf16(1.0f + 0.1f * (unit(seed * 37 + i) - 0.5f));

    const std::string label = "<random " + name + ">";
    const int64_t E = c.n_routed_experts;
    std::vector<TensorInfo> ts;
    ts.reserve(inv.size() * 2);
    RandomCheckpoint r;
    uint64_t idx = seed * 1000003;
    for (const InventoryEntry& e : inv) {
        ++idx;
        TensorInfo t;
        t.name = e.name;
        t.dtype = e.dtype == DType::fp4_e2m1 ? DType::i8 : e.dtype;  // packed FP4 is stored as I8
        t.shape = e.shape;
        if (e.dtype == DType::fp4_e2m1) t.shape.back() /= 2;
        t.nbytes = e.bytes - e.scale_bytes;
        t.file = label;
        if (e.dtype == DType::i64) {  // tid2eid [V, k]: k distinct experts per row
            const int64_t V = e.shape[0], k = e.shape[1], step = E % 7 == 0 ? 1 : 7;
            std::vector<int64_t>& tab = B->tid2eid.emplace_back(size_t(V * k));
            for (int64_t v = 0; v < V; ++v) {
                const int64_t base = int64_t(mix(idx * 131 + uint64_t(v)) % uint64_t(E));
                for (int64_t j = 0; j < k; ++j) tab[size_t(v * k + j)] = (base + j * step) % E;
            }
            t.data = reinterpret_cast<const uint8_t*>(tab.data());
        } else if (e.dtype == DType::f32) {
            t.data = B->f32s.at(size_t(t.nbytes), idx);
        } else if (is_norm(e)) {
            t.data = B->norms.at(size_t(t.nbytes), idx);
        } else {
            t.data = B->bulk.at(size_t(t.nbytes), idx);
        }
        r.tensor_bytes += t.nbytes;
        ts.push_back(std::move(t));
        if (e.scale_bytes) {
            TensorInfo s;
            s.name = e.name.substr(0, e.name.size() - std::strlen(".weight")) + ".scale";
            s.dtype = DType::f8_e8m0;
            s.shape = e.dtype == DType::f8_e4m3
                          ? std::vector<int64_t>{(e.shape[0] + 127) / 128, (e.shape[1] + 127) / 128}
                          : std::vector<int64_t>{e.shape[0], e.shape[1] / 32};
            s.nbytes = e.scale_bytes;
            s.data = B->scales.at(size_t(s.nbytes), idx * 3 + 1);
            s.file = label;
            r.tensor_bytes += s.nbytes;
            ts.push_back(std::move(s));
        }
    }
    for (Buffer* b : {&B->bulk, &B->scales, &B->f32s, &B->norms}) {
        r.buffers.emplace_back(b->p.get(), b->size);
        r.host_bytes += int64_t(b->size);
    }
    for (auto& tab : B->tid2eid) {
        r.buffers.emplace_back(tab.data(), tab.size() * 8);
        r.host_bytes += int64_t(tab.size() * 8);
    }
    DSV4_TRY_ASSIGN(r.checkpoint, Checkpoint::from_memory(std::move(ts), B, label));
    return r;
}

}  // namespace dsv4
