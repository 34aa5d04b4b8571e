// A (rows, cols) row-major matrix -> its (cols, rows) transpose, as a new buffer. The kernels keep
// per-channel parameters (rows = channels) transposed, so their loops run over contiguous channels.
#pragma once
#include <cstdint>
#include <vector>

template <typename T>
std::vector<T> transposed(const T* a, int64_t rows, int64_t cols) {
  std::vector<T> t(cols * rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = a[r * cols + c];
  return t;
}
