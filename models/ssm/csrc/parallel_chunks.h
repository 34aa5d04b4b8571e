// Runs fn(next) on `threads` threads, where next() hands out chunk indices 0, 1, 2, ... one at a time
// (a value >= n_chunks means none left): a thread slowed by other work on its core simply takes fewer.
// Chunk c holds batch rows [c * chunk, (c + 1) * chunk). Sums over batch rows (dA, dD, the conv
// weights' gradients) go into one partial per chunk, accumulated row by row in order and summed by
// the caller in chunk order, so the result does not depend on the threads or their timing.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

inline int64_t n_chunks(int64_t Bsz, int64_t chunk) { return (Bsz + chunk - 1) / chunk; }

template <typename Fn>
void parallel_chunks(int64_t chunks, int threads, Fn fn) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, chunks));
  std::atomic<int64_t> counter{0};
  auto next = [&counter]() { return counter.fetch_add(1, std::memory_order_relaxed); };
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < n; ++i) pool.emplace_back([&fn, &next]() { fn(next); });
  fn(next);
  for (auto& th : pool) th.join();
}
