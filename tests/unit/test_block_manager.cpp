// BlockManager and state_geometry: spec §11 byte counts, O(1) pools, ref counts, budget errors.
#include <gtest/gtest.h>

#include "runtime/block_manager.h"
#include "runtime/prefix_cache.h"

namespace dsv4 {
namespace {

Dsv4Config flash_like() {
    Dsv4Config c;  // defaults are Flash's dimensions
    c.num_hidden_layers = 43;
    c.compress_ratios = {0, 0};
    for (int i = 2; i < 43; ++i) c.compress_ratios.push_back(i % 2 == 0 ? 4 : 128);
    c.num_nextn_predict_layers = 0;
    return c;
}

TEST(StateGeometry, MatchesSpecFlashNumbers) {
    StateGeometry g = state_geometry(flash_like());
    EXPECT_EQ(g.bytes_per_token, 6880);            // spec §11.3, bf16
    EXPECT_EQ(g.fixed_bytes, 5636096 + 12206080);  // spec §11.2 rings + compressor rows
    Dsv4Config with_mtp = flash_like();
    with_mtp.num_nextn_predict_layers = 1;
    EXPECT_EQ(state_geometry(with_mtp).fixed_bytes, g.fixed_bytes + 128 * 512 * 2);
}

TEST(BlockManager, SizesPoolFromSeqsAndContext) {
    PoolOptions o;
    o.max_seqs = 3;
    o.ctx_size = 1000;
    o.page_tokens = 256;
    auto bm = BlockManager::create(o, StateGeometry{100, 10});
    ASSERT_TRUE(bm.is_ok()) << bm.message();
    PoolUsage u = bm->usage();
    EXPECT_EQ(u.pages_total, 3 * 4);
    EXPECT_EQ(u.slots_total, 3);
    EXPECT_EQ(u.page_bytes, 2560);
}

TEST(BlockManager, BudgetTooSmallIsAClearError) {
    PoolOptions o;
    o.max_seqs = 4;
    o.ctx_size = 4096;
    o.max_snapshots = 0;
    o.memory_budget = 1000;
    auto bm = BlockManager::create(o, StateGeometry{100, 10});
    ASSERT_FALSE(bm.is_ok());
    EXPECT_NE(bm.message().find("memory budget of 1000 bytes is too small"), std::string::npos)
        << bm.message();
    EXPECT_NE(bm.message().find("--ctx-size 4096"), std::string::npos) << bm.message();
    o.memory_budget = 4 * 100 + 16 * 2560 * 2;  // room for two full sequences' pages
    auto ok = BlockManager::create(o, StateGeometry{100, 10});
    ASSERT_TRUE(ok.is_ok()) << ok.message();
    EXPECT_EQ(ok->usage().pages_total, 32);
    o.max_seqs = 0;
    EXPECT_FALSE(BlockManager::create(o, StateGeometry{100, 10}).is_ok());
}

TEST(BlockManager, GrowReleaseAndRefCounts) {
    PoolOptions o;
    o.max_seqs = 2;
    o.ctx_size = 64;
    o.page_tokens = 16;
    auto r = BlockManager::create(o, StateGeometry{1, 1});
    ASSERT_TRUE(r.is_ok());
    BlockManager& bm = *r;
    EXPECT_EQ(bm.free_pages(), 8);
    std::vector<int32_t> a, b;
    EXPECT_EQ(bm.pages_needed(a, 17), 2);
    bm.grow(a, 17);
    EXPECT_EQ(a.size(), 2u);
    bm.grow(a, 32);  // still 2 pages: a page boundary exactly
    EXPECT_EQ(a.size(), 2u);
    bm.grow(a, 33);
    EXPECT_EQ(a.size(), 3u);
    // b shares a's first two pages (a prefix snapshot would)
    for (int i = 0; i < 2; ++i) {
        b.push_back(a[size_t(i)]);
        bm.ref(a[size_t(i)]);
    }
    EXPECT_FALSE(bm.can_grow(b, 16 * 8 + 1));
    EXPECT_TRUE(bm.can_grow(b, 16 * 7));
    bm.grow(b, 16 * 7);
    EXPECT_EQ(bm.free_pages(), 0);
    bm.release(a);
    EXPECT_EQ(bm.free_pages(), 1);  // only a's unshared third page
    bm.release(b);
    EXPECT_EQ(bm.free_pages(), 8);
    EXPECT_EQ(bm.usage().pages_used, 0);
}

TEST(BlockManager, SlotsAreExclusive) {
    PoolOptions o;
    o.max_seqs = 2;
    o.ctx_size = 16;
    auto r = BlockManager::create(o, StateGeometry{1, 1});
    ASSERT_TRUE(r.is_ok());
    int s0 = r->allocate_slot(), s1 = r->allocate_slot();
    EXPECT_NE(s0, s1);
    EXPECT_FALSE(r->can_allocate_slot());
    r->free_slot(s0);
    EXPECT_EQ(r->allocate_slot(), s0);
}

TEST(PrefixCache, HashChainDependsOnWholePrefixAndSalt) {
    PrefixCache c(4);
    std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    auto h = c.block_hashes(t, "");
    ASSERT_EQ(h.size(), 2u);
    std::vector<int32_t> u = t;
    u[0] = 100;
    auto hu = c.block_hashes(u, "");
    EXPECT_NE(h[0], hu[0]);
    EXPECT_NE(h[1], hu[1]);  // block 2 is equal but its chain is not
    EXPECT_NE(c.block_hashes(t, "tenant-a")[0], h[0]);
}

TEST(PrefixCache, LookupDeepestWithinLimitAndLru) {
    PrefixCache c(4);
    std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    auto h = c.block_hashes(t, "");
    c.insert(Snapshot{h[0], {1, 2, 3, 4}, 10, {}, 0});
    c.insert(Snapshot{h[1], {1, 2, 3, 4, 5, 6, 7, 8}, 11, {}, 1});
    const Snapshot* s = c.lookup(t, h, 9);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->handle, 11);
    s = c.lookup(t, h, 7);  // B must be <= max_len
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->handle, 10);
    Snapshot out;
    ASSERT_TRUE(c.evict_lru(out));
    EXPECT_EQ(out.handle, 11);  // 10 was used last
    c.remember_blocks({h[0]});
    EXPECT_EQ(c.matched_blocks(h), 1);
}

}  // namespace
}  // namespace dsv4
