// Mamba's selective scan with its skip and gate, on the CPU, forward and backward, without a
// (batch, length, d_inner, d_state) tensor (Gu & Dao 2023, eq. 2a-2b; mamba-ssm's selective_scan_fn
// with D and z):
//
//   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,   y_t = C_t . h_t,
//   out_t = (y_t + D * x_t) * silu(z_t)
//
// Shapes (row-major): x, dt, out: (Bsz, L, D) contiguous; z: Bsz * L rows of D with row stride zs
// (so z can be a view into in_proj's output); Bm, Cm: (Bsz, L, N); A: (D, N); Dv: (D).
// The state of one batch row, h: (N, D), lives in a per-thread buffer.
//
// Backward, for one batch row and one block of 64 channels: the block's forward states h_t and decays
// exp(dt_t A) are recomputed into two per-thread scratch buffers of (L, N, 64) values, then a reverse
// sweep, with gy_t = dout_t * silu(z_t) the gradient reaching y_t + D x_t, carries
//   g_t = dL/dh_t = gy_t * C_t + exp(dt_{t+1} * A) * g_{t+1}
// and reads every gradient off it:
//   dx_t  = sum_n g_t dt_t B_t + D gy_t          dB_t += g_t dt_t x_t        dC_t += gy_t h_t
//   ddt_t = sum_n g_t (A exp(dt_t A) h_{t-1} + B_t x_t)                      dA   += g_t dt_t exp(dt_t A) h_{t-1}
//   dz_t  = dout_t (y_t + D x_t) silu'(z_t)      dD   += gy_t x_t
// dB and dC sum over channels, so a batch row belongs to one thread; dA and dD sum over batch rows,
// into one partial per chunk of rows (parallel_chunks.h), summed by the caller.
// Variable names: D is d_inner (and Dv the skip weights), N is d_state, Bsz the batch.
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel_chunks.h"
#include "transposed.h"

namespace {

constexpr int64_t kBlock = 64;  // channels per backward block

// Every loop below runs over channels d, contiguous in memory, with the state laid out (N, channels):
// the sums over the state become per-channel accumulators, and the loops vectorise (glibc's vector
// exp). Functions take __restrict__ pointers so GCC knows the arrays do not overlap.

// One position, channels [0, nd): h = exp(dt A) h + dt x B (h: (N, ld) rows), y = C . h.
template <typename T>
inline void forward_position(const T* __restrict__ AT, int64_t ldA, const T* __restrict__ Bt, const T* __restrict__ Ct,
                             const T* __restrict__ dt, const T* __restrict__ x, T* __restrict__ h, int64_t ld,
                             T* __restrict__ dtx, T* __restrict__ y, int64_t nd, int64_t N) {
  for (int64_t d = 0; d < nd; ++d) {
    dtx[d] = dt[d] * x[d];
    y[d] = 0;
  }
  for (int64_t n = 0; n < N; ++n) {
    const T bn = Bt[n], cn = Ct[n];
    const T* __restrict__ an = AT + n * ldA;
    T* __restrict__ hn = h + n * ld;
    for (int64_t d = 0; d < nd; ++d) {
      hn[d] = std::exp(dt[d] * an[d]) * hn[d] + dtx[d] * bn;
      y[d] += cn * hn[d];
    }
  }
}

// As forward_position from hprev into h without the output, recording the decays exp(dt A) in a.
template <typename T>
inline void recompute_position(const T* __restrict__ AT, int64_t ldA, const T* __restrict__ Bt,
                               const T* __restrict__ dt, const T* __restrict__ x, const T* __restrict__ hprev,
                               T* __restrict__ h, T* __restrict__ a, int64_t nd, int64_t N) {
  for (int64_t n = 0; n < N; ++n) {
    const T bn = Bt[n];
    const T* __restrict__ an = AT + n * ldA;
    for (int64_t d = 0; d < nd; ++d) {
      const T decay = std::exp(dt[d] * an[d]);
      a[n * kBlock + d] = decay;
      h[n * kBlock + d] = decay * hprev[n * kBlock + d] + dt[d] * x[d] * bn;
    }
  }
}

// One position back, channels [0, nd): g (N, kBlock) holds exp(dt_{t+1} A) dL/dh_{t+1} and becomes
// exp(dt_t A) dL/dh_t; adds to dAT (N, ldA), dB_t and dC_t; writes y_t and the scan's dx_t, ddt_t.
template <typename T>
inline void reverse_position(const T* __restrict__ AT, int64_t ldA, const T* __restrict__ Bt, const T* __restrict__ Ct,
                             const T* __restrict__ dt, const T* __restrict__ x, const T* __restrict__ gy,
                             const T* __restrict__ h, const T* __restrict__ hprev, const T* __restrict__ a,
                             T* __restrict__ g, T* __restrict__ dAT, T* __restrict__ dBt, T* __restrict__ dCt,
                             T* __restrict__ y, T* __restrict__ dx, T* __restrict__ ddt, int64_t nd, int64_t N) {
  for (int64_t d = 0; d < nd; ++d) y[d] = dx[d] = ddt[d] = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T bn = Bt[n], cn = Ct[n];
    const T* __restrict__ an = AT + n * ldA;
    T* __restrict__ dan = dAT + n * ldA;
    const int64_t o = n * kBlock;
    T db = 0, dc = 0;
    for (int64_t d = 0; d < nd; ++d) {
      const T gh = g[o + d] + gy[d] * cn;  // dL/dh_t
      y[d] += cn * h[o + d];
      dc += gy[d] * h[o + d];
      db += gh * dt[d] * x[d];
      dx[d] += gh * dt[d] * bn;
      ddt[d] += gh * (an[d] * a[o + d] * hprev[o + d] + bn * x[d]);
      dan[d] += gh * dt[d] * a[o + d] * hprev[o + d];
      g[o + d] = gh * a[o + d];
    }
    dBt[n] += db;
    dCt[n] += dc;
  }
}

// out_t = (y_t + D x_t) silu(z_t) for one position's channels.
template <typename T>
inline void gate_row(const T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ z,
                     const T* __restrict__ Dv, T* __restrict__ out, int64_t n) {
  for (int64_t d = 0; d < n; ++d) out[d] = (y[d] + Dv[d] * x[d]) * z[d] / (T(1) + std::exp(-z[d]));
}

// The gate's backward for one position's channels: gy = dout silu(z) (the gradient reaching
// y + D x), and, given y, dz = dout (y + D x) silu'(z), dD += gy x, dx += D gy.
template <typename T>
inline void gate_grad_in(const T* __restrict__ dout, const T* __restrict__ z, T* __restrict__ gy, int64_t n) {
  for (int64_t d = 0; d < n; ++d) gy[d] = dout[d] * z[d] / (T(1) + std::exp(-z[d]));
}

template <typename T>
inline void gate_grad_out(const T* __restrict__ dout, const T* __restrict__ z, const T* __restrict__ y,
                          const T* __restrict__ x, const T* __restrict__ Dv, const T* __restrict__ gy,
                          T* __restrict__ dz, T* __restrict__ dD, T* __restrict__ dx, int64_t n) {
  for (int64_t d = 0; d < n; ++d) {
    const T s = T(1) / (T(1) + std::exp(-z[d]));
    dz[d] = dout[d] * (y[d] + Dv[d] * x[d]) * s * (T(1) + z[d] * (T(1) - s));
    dD[d] += gy[d] * x[d];
    dx[d] += Dv[d] * gy[d];
  }
}

// The forward for the chunks of batch rows next() hands out.
template <typename T, typename Next>
void forward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* Dv,
                  const T* z, int64_t zs, T* out, Next next, int64_t chunk, int64_t Bsz, int64_t L, int64_t D,
                  int64_t N) {
  const std::vector<T> AT = transposed(A, D, N);
  std::vector<T> h(N * D), dtx(D), y(D);
  for (int64_t c; (c = next()) < n_chunks(Bsz, chunk);) {
    for (int64_t b = c * chunk; b < std::min(Bsz, (c + 1) * chunk); ++b) {
      std::fill(h.begin(), h.end(), T(0));
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = b * L + t;
        forward_position(AT.data(), D, Bm + row * N, Cm + row * N, dt + row * D, x + row * D, h.data(), D,
                         dtx.data(), y.data(), D, N);
        gate_row(y.data(), x + row * D, z + row * zs, Dv, out + row * D, D);
      }
    }
  }
}

// The backward for the chunks of batch rows next() hands out; chunk c's sums over its rows go to
// dA_part[c] (D, N) and dD_part[c] (D).
template <typename T, typename Next>
void backward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* Dv,
                   const T* z, int64_t zs, const T* dout, T* dx, T* ddt, T* dz, T* dA_part, T* dD_part,
                   T* dB, T* dC, Next next, int64_t chunk, int64_t Bsz, int64_t L, int64_t D, int64_t N) {
  const int64_t S = N * kBlock;  // one position's block of states
  const std::vector<T> AT = transposed(A, D, N);
  std::vector<T> dAT(N * D);
  std::vector<T> H((L + 1) * S);  // H[t + 1] = h_t of the block; H[0] = h_{-1} = 0
  std::vector<T> decay(L * S);    // decay[t] = exp(dt_t A) of the block
  std::vector<T> g(S), gy(kBlock), y(kBlock);
  for (int64_t c; (c = next()) < n_chunks(Bsz, chunk);) {
    std::fill(dAT.begin(), dAT.end(), T(0));
    T* dD = dD_part + c * D;
    for (int64_t b = c * chunk; b < std::min(Bsz, (c + 1) * chunk); ++b) {
      for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
        const int64_t nd = std::min(kBlock, D - d0);
        // 1. recompute the block's states and decays
        std::fill(H.begin(), H.begin() + S, T(0));
        for (int64_t t = 0; t < L; ++t) {
          const int64_t i0 = (b * L + t) * D + d0;
          recompute_position(AT.data() + d0, D, Bm + (b * L + t) * N, dt + i0, x + i0, H.data() + t * S,
                             H.data() + (t + 1) * S, decay.data() + t * S, nd, N);
        }
        // 2. reverse sweep
        std::fill(g.begin(), g.end(), T(0));
        for (int64_t t = L - 1; t >= 0; --t) {
          const int64_t row = b * L + t, i0 = row * D + d0;
          gate_grad_in(dout + i0, z + row * zs + d0, gy.data(), nd);
          reverse_position(AT.data() + d0, D, Bm + row * N, Cm + row * N, dt + i0, x + i0, gy.data(),
                           H.data() + (t + 1) * S, H.data() + t * S, decay.data() + t * S, g.data(),
                           dAT.data() + d0, dB + row * N, dC + row * N, y.data(), dx + i0, ddt + i0, nd, N);
          gate_grad_out(dout + i0, z + row * zs + d0, y.data(), x + i0, Dv + d0, gy.data(), dz + i0, dD + d0,
                        dx + i0, nd);
        }
      }
    }
    T* dA = dA_part + c * D * N;
    for (int64_t d = 0; d < D; ++d)
      for (int64_t n = 0; n < N; ++n) dA[d * N + n] = dAT[n * D + d];
  }
}

}  // namespace

#define MDAF_SCAN_EXPORTS(T, SUFFIX)                                                                     \
  extern "C" void mdaf_scan_fwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm,   \
                                         const T* Dv, const T* z, int64_t zs, T* out, int64_t chunk,       \
                                         int64_t Bsz, int64_t L, int64_t D, int64_t N, int threads) {      \
    parallel_chunks(n_chunks(Bsz, chunk), threads, [=](auto& next) {                                      \
      forward_rows(x, dt, A, Bm, Cm, Dv, z, zs, out, next, chunk, Bsz, L, D, N);                          \
    });                                                                                                   \
  }                                                                                                       \
  /* dA_part (chunks, D, N), dD_part (chunks, D), dB and dC: zeroed by the caller */                      \
  extern "C" void mdaf_scan_bwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm,   \
                                         const T* Dv, const T* z, int64_t zs, const T* dout, T* dx,        \
                                         T* ddt, T* dz, T* dA_part, T* dD_part, T* dB, T* dC,              \
                                         int64_t chunk, int64_t Bsz, int64_t L, int64_t D, int64_t N,      \
                                         int threads) {                                                    \
    parallel_chunks(n_chunks(Bsz, chunk), threads, [=](auto& next) {                                      \
      backward_rows(x, dt, A, Bm, Cm, Dv, z, zs, dout, dx, ddt, dz, dA_part, dD_part, dB, dC, next, chunk,  \
                    Bsz, L, D, N);                                                                        \
    });                                                                                                   \
  }

MDAF_SCAN_EXPORTS(float, f32)
MDAF_SCAN_EXPORTS(double, f64)
