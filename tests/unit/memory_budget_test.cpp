// The per-VM memory budget (actors/executor/memory_budget.h): the limit, the
// VM's view of memory, sessions sharing one budget, RAII give-backs.
#include "actors/executor/memory_budget.h"
#include "actors/memory_limits.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace {

using vgpu::host::budget_share;
using vgpu::host::memory_budget;
using vgpu::host::memory_charge;

constexpr uint64_t kMiB = 1ull << 20;

TEST(MemoryBudget, RefusesPastTheLimitAndTakesRefunds) {
  memory_budget b("111", 256 * kMiB);
  EXPECT_TRUE(b.try_charge(200 * kMiB, "cuMemAlloc"));
  EXPECT_TRUE(b.try_charge(56 * kMiB, "cuMemAlloc"));
  EXPECT_FALSE(b.try_charge(1, "cuMemAlloc"));
  EXPECT_EQ(b.used(), 256 * kMiB);
  b.refund(56 * kMiB);
  EXPECT_TRUE(b.try_charge(56 * kMiB, "cuMemAlloc"));
  EXPECT_FALSE(b.try_charge(UINT64_MAX, "cuMemAlloc"));  // no wrap-around
}

TEST(MemoryBudget, NoLimitCountsButNeverRefuses) {
  memory_budget b("local", 0);
  EXPECT_TRUE(b.try_charge(UINT64_MAX / 2, "cuMemAlloc"));
  EXPECT_EQ(b.used(), UINT64_MAX / 2);
  uint64_t free = 0, total = 0;
  b.view(5, 10, &free, &total);  // the driver's figures, unchanged
  EXPECT_EQ(free, 5u);
  EXPECT_EQ(total, 10u);
}

TEST(MemoryBudget, ViewIsTheVmsShare) {
  memory_budget b("111", 256 * kMiB);
  ASSERT_TRUE(b.try_charge(100 * kMiB, "x"));
  uint64_t free = 0, total = 0;
  b.view(80000 * kMiB, 81000 * kMiB, &free, &total);  // a large GPU, mostly free
  EXPECT_EQ(total, 256 * kMiB);
  EXPECT_EQ(free, 156 * kMiB);
  b.view(50 * kMiB, 81000 * kMiB, &free, &total);  // others filled the GPU
  EXPECT_EQ(free, 50 * kMiB);
  b.view(10 * kMiB, 128 * kMiB, &free, &total);  // a GPU smaller than the limit
  EXPECT_EQ(total, 128 * kMiB);
  EXPECT_EQ(free, 10 * kMiB);
}

TEST(MemoryBudget, SessionsShareOneBudgetAndGiveBackTheirShareAtTheEnd) {
  auto b = std::make_shared<memory_budget>("111", 256 * kMiB);
  budget_share first(b);
  {
    budget_share second(b);
    ASSERT_TRUE(first.try_charge(192 * kMiB, "cuMemAlloc"));
    EXPECT_FALSE(second.try_charge(128 * kMiB, "cuMemAlloc"));
    EXPECT_TRUE(second.try_charge(64 * kMiB, "cuMemAlloc"));
    EXPECT_EQ(b->used(), 256 * kMiB);
    second.refund(1000 * kMiB);  // never more than it took
    EXPECT_EQ(b->used(), 192 * kMiB);
    ASSERT_TRUE(second.try_charge(32 * kMiB, "cuMemAlloc"));
  }  // `second` ended without freeing
  EXPECT_EQ(b->used(), 192 * kMiB);
  EXPECT_EQ(first.held(), 192 * kMiB);
}

TEST(MemoryBudget, ChargesGoBackUnlessKept) {
  auto b = std::make_shared<memory_budget>("111", 64 * kMiB);
  budget_share s(b);
  {
    memory_charge c(s, 64 * kMiB, "cuMemCreate");
    EXPECT_TRUE(c.ok());
    memory_charge over(s, 1, "cuMemCreate");
    EXPECT_FALSE(over.ok());
  }  // the allocation failed after the charge: nothing leaks
  EXPECT_EQ(b->used(), 0u);
  {
    memory_charge c(s, 16 * kMiB, "cuMemAlloc");
    c.keep();
  }
  EXPECT_EQ(b->used(), 16 * kMiB);
  auto shared = std::make_shared<memory_charge>(s, 16 * kMiB, "cuMemCreate");
  auto mapping = shared;  // a mapping holds the allocation's charge
  shared.reset();         // cuMemRelease while mapped
  EXPECT_EQ(b->used(), 32 * kMiB);
  mapping.reset();  // the last unmap
  EXPECT_EQ(b->used(), 16 * kMiB);
}

TEST(MemoryBudget, ConcurrentChargesNeverPassTheLimit) {
  memory_budget b("111", 1000);
  std::vector<std::thread> threads;
  std::atomic<int> granted{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (b.try_charge(1, "x")) granted.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), 1000);
  EXPECT_EQ(b.used(), 1000u);
}

// A VM's sessions (its channels) all get its budget; local processes
// (vm_id local-<pid>) share the local one.
TEST(MemoryLimits, EachVmHasOneBudgetAndLocalProcessesShareOne) {
  std::vector<vgpu::vm_config> vms(2);
  vms[0].id = "111";
  vms[0].memory_limit_bytes = 8192 * kMiB;
  vms[1].id = "112";
  const vgpu::memory_limits limits(vms, 256 * kMiB);
  EXPECT_EQ(limits.budget_for("111"), limits.budget_for("111"));
  EXPECT_EQ(limits.budget_for("111")->limit(), 8192 * kMiB);
  EXPECT_EQ(limits.budget_for("112")->limit(), 0u);  // no memory-limit-mb: none
  EXPECT_NE(limits.budget_for("111"), limits.budget_for("112"));
  EXPECT_EQ(limits.budget_for("local-100"), limits.budget_for("local-200"));
  EXPECT_EQ(limits.budget_for("local-100")->limit(), 256 * kMiB);
  EXPECT_EQ(limits.budget_for("local-100")->vm_id(), "local");
  int n = 0;
  limits.for_each([&](const memory_budget&) { ++n; });
  EXPECT_EQ(n, 3);
}

}  // namespace
