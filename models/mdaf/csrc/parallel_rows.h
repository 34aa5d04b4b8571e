// Runs fn(thread_index, next) on `threads` threads, where next() hands out batch rows 0, 1, 2, ...
// one at a time (a value >= Bsz means none left): a thread slowed by other work on its core simply
// takes fewer rows.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

template <typename Fn>
void parallel_rows(int64_t Bsz, int threads, Fn fn) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, Bsz));
  std::atomic<int64_t> counter{0};
  auto next = [&counter]() { return counter.fetch_add(1, std::memory_order_relaxed); };
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < n; ++i) pool.emplace_back([&fn, &next, i]() { fn(i, next); });
  fn(0, next);
  for (auto& th : pool) th.join();
}
