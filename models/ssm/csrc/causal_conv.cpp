// Mamba's depthwise causal convolution with its activation and padding mask, on the CPU, forward and
// backward (the `x = silu(conv1d(x))` step of mamba_simple.py, with the mixer's mask fused in):
//
//   pre_t = bias + sum_{k<K} w[k] * m_s x_s  (s = t - K + 1 + k; x_s = 0 for s < 0),   out_t = m_t silu(pre_t)
//
// per channel, with m the padding mask (1 at real positions; no mask means all ones).
// Shapes: x: Bsz * L rows of D with row stride xs (a view into in_proj's output); w: (D, K);
// bias: (D); out, dout, dx: (Bsz, L, D) contiguous; mask: (Bsz, L) bytes or null.
// The loops run over the D channels of one position, contiguous in memory, and vectorise.
// Backward: dpre_t = dout_t m_t silu'(pre_t) (pre recomputed), then
//   dbias += sum_t dpre_t,   dw[k] += sum_t dpre_t m_s x_s,   dx_s = m_s sum_k dpre_{s+K-1-k} w[k];
// dw and dbias sum over batch rows, into one partial per chunk of rows (parallel_chunks.h).
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel_chunks.h"
#include "transposed.h"

namespace {

inline bool real(const uint8_t* mask, int64_t row) { return mask == nullptr || mask[row] != 0; }

// pre[d] for position t of batch row b (wT: (K, D), the kernel transposed).
template <typename T>
void preactivation(const T* x, int64_t xs, const uint8_t* mask, const T* __restrict__ wT, const T* __restrict__ bias,
                   T* __restrict__ pre, int64_t b, int64_t t, int64_t L, int64_t D, int64_t K) {
  for (int64_t d = 0; d < D; ++d) pre[d] = bias[d];
  for (int64_t k = 0; k < K; ++k) {
    const int64_t s = t - K + 1 + k;
    if (s < 0 || !real(mask, b * L + s)) continue;
    const T* __restrict__ xr = x + (b * L + s) * xs;
    const T* __restrict__ wk = wT + k * D;
    for (int64_t d = 0; d < D; ++d) pre[d] += wk[d] * xr[d];
  }
}

template <typename T, typename Next>
void forward_rows(const T* x, int64_t xs, const uint8_t* mask, const T* w, const T* bias, T* out,
                  Next next, int64_t chunk, int64_t Bsz, int64_t L, int64_t D, int64_t K) {
  const std::vector<T> wT = transposed(w, D, K);
  std::vector<T> pre(D);
  for (int64_t c; (c = next()) < n_chunks(Bsz, chunk);) {
    for (int64_t b = c * chunk; b < std::min(Bsz, (c + 1) * chunk); ++b) {
      for (int64_t t = 0; t < L; ++t) {
        T* __restrict__ o = out + (b * L + t) * D;
        if (!real(mask, b * L + t)) {
          std::fill(o, o + D, T(0));
          continue;
        }
        preactivation(x, xs, mask, wT.data(), bias, pre.data(), b, t, L, D, K);
        for (int64_t d = 0; d < D; ++d) o[d] = pre[d] / (T(1) + std::exp(-pre[d]));
      }
    }
  }
}

// dw_part (chunks, D, K), dbias_part (chunks, D): chunk c's sums over its rows.
template <typename T, typename Next>
void backward_rows(const T* x, int64_t xs, const uint8_t* mask, const T* w, const T* bias, const T* dout,
                   T* dx, T* dw_part, T* dbias_part, Next next, int64_t chunk, int64_t Bsz, int64_t L, int64_t D,
                   int64_t K) {
  const std::vector<T> wT = transposed(w, D, K);
  std::vector<T> dwT(K * D);
  std::vector<T> dpre(L * D);  // one row's dL/dpre
  for (int64_t c; (c = next()) < n_chunks(Bsz, chunk);) {
    std::fill(dwT.begin(), dwT.end(), T(0));
    T* __restrict__ dbias = dbias_part + c * D;
    for (int64_t b = c * chunk; b < std::min(Bsz, (c + 1) * chunk); ++b) {
      for (int64_t t = 0; t < L; ++t) {
        T* __restrict__ g = dpre.data() + t * D;
        if (!real(mask, b * L + t)) {
          std::fill(g, g + D, T(0));
          continue;
        }
        preactivation(x, xs, mask, wT.data(), bias, g, b, t, L, D, K);
        const T* __restrict__ go = dout + (b * L + t) * D;
        for (int64_t d = 0; d < D; ++d) {
          const T s = T(1) / (T(1) + std::exp(-g[d]));
          g[d] = go[d] * s * (T(1) + g[d] * (T(1) - s));
          dbias[d] += g[d];
        }
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t - K + 1 + k;
          if (s < 0 || !real(mask, b * L + s)) continue;
          const T* __restrict__ xr = x + (b * L + s) * xs;
          T* __restrict__ dwk = dwT.data() + k * D;
          for (int64_t d = 0; d < D; ++d) dwk[d] += g[d] * xr[d];
        }
      }
      for (int64_t s = 0; s < L; ++s) {
        T* __restrict__ dxr = dx + (b * L + s) * D;
        std::fill(dxr, dxr + D, T(0));
        if (!real(mask, b * L + s)) continue;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t t = s + K - 1 - k;
          if (t >= L) continue;
          const T* __restrict__ g = dpre.data() + t * D;
          const T* __restrict__ wk = wT.data() + k * D;
          for (int64_t d = 0; d < D; ++d) dxr[d] += g[d] * wk[d];
        }
      }
    }
    T* dw = dw_part + c * D * K;
    for (int64_t d = 0; d < D; ++d)
      for (int64_t k = 0; k < K; ++k) dw[d * K + k] = dwT[k * D + d];
  }
}

}  // namespace

#define MDAF_CONV_EXPORTS(T, SUFFIX)                                                                      \
  extern "C" void mdaf_conv_fwd_##SUFFIX(const T* x, int64_t xs, const uint8_t* mask, const T* w,          \
                                         const T* bias, T* out, int64_t chunk, int64_t Bsz, int64_t L,     \
                                         int64_t D, int64_t K, int threads) {                              \
    parallel_chunks(n_chunks(Bsz, chunk), threads, [=](auto& next) {                                       \
      forward_rows(x, xs, mask, w, bias, out, next, chunk, Bsz, L, D, K);                                  \
    });                                                                                                    \
  }                                                                                                        \
  /* dw_part (chunks, D, K) and dbias_part (chunks, D): zeroed by the caller */                            \
  extern "C" void mdaf_conv_bwd_##SUFFIX(const T* x, int64_t xs, const uint8_t* mask, const T* w,          \
                                         const T* bias, const T* dout, T* dx, T* dw_part, T* dbias_part,   \
                                         int64_t chunk, int64_t Bsz, int64_t L, int64_t D, int64_t K,      \
                                         int threads) {                                                    \
    parallel_chunks(n_chunks(Bsz, chunk), threads, [=](auto& next) {                                       \
      backward_rows(x, xs, mask, w, bias, dout, dx, dw_part, dbias_part, next, chunk, Bsz, L, D, K);       \
    });                                                                                                    \
  }

MDAF_CONV_EXPORTS(float, f32)
MDAF_CONV_EXPORTS(double, f64)
