// Mamba's selective scan with its skip and gate, on the CPU, forward and backward, without a
// (batch, length, d_inner, d_state) tensor (Gu & Dao 2023, eq. 2a-2b; mamba-ssm's selective_scan_fn
// with D and z):
//
//   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,   y_t = C_t . h_t,
//   out_t = (y_t + D * x_t) * silu(z_t)
//
// Shapes (row-major): x, dt, out: (Bsz, L, D) contiguous; z: Bsz * L rows of D with row stride zs
// (so z can be a view into in_proj's output); Bm, Cm: (Bsz, L, N); A: (D, N); Dv: (D).
// The state of one batch row, h: (D, N), lives in a per-thread buffer; the innermost loops run over
// the N state entries of one channel and vectorise (glibc's vector exp, see cpu_kernels.py).
//
// Backward, for one batch row and one block of 32 channels: the block's forward states h_t and decays
// exp(dt_t A) are recomputed into two per-thread scratch buffers of (L, 32, N) values, then a reverse
// sweep, with gy_t = dout_t * silu(z_t) the gradient reaching y_t + D x_t, carries
//   g_t = dL/dh_t = gy_t * C_t + exp(dt_{t+1} * A) * g_{t+1}
// and reads every gradient off it:
//   dx_t  = sum_n g_t dt_t B_t + D gy_t          dB_t += g_t dt_t x_t        dC_t += gy_t h_t
//   ddt_t = sum_n g_t (A exp(dt_t A) h_{t-1} + B_t x_t)                      dA   += g_t dt_t exp(dt_t A) h_{t-1}
//   dz_t  = dout_t (y_t + D x_t) silu'(z_t)      dD   += gy_t x_t
// dB and dC sum over channels, so a batch row belongs to one thread; dA and dD sum over batch rows,
// so each thread has its own slice of dA_part / dD_part, summed by the caller.
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel_rows.h"

namespace {

constexpr int64_t kBlock = 32;  // channels per backward block

template <typename T>
inline T sigmoid(T v) { return T(1) / (T(1) + std::exp(-v)); }

// One channel, one step: h = exp(dt A) h + dt x B; returns C . h. (Separate functions with
// __restrict__ arguments, so GCC vectorises the loops over n.)
template <typename T>
inline T state_step(const T* __restrict__ Ad, const T* __restrict__ Bt, const T* __restrict__ Ct,
                    T* __restrict__ h, T dtv, T xv, int64_t N) {
  const T dtx = dtv * xv;
  T acc = 0;
  for (int64_t n = 0; n < N; ++n) {
    h[n] = std::exp(dtv * Ad[n]) * h[n] + dtx * Bt[n];
    acc += Ct[n] * h[n];
  }
  return acc;
}

// As state_step without the output, recording the decays a[n] = exp(dt A[n]) for the reverse sweep.
template <typename T>
inline void state_step_recording(const T* __restrict__ Ad, const T* __restrict__ Bt, T* __restrict__ h,
                                 T* __restrict__ a, T dtv, T xv, int64_t N) {
  const T dtx = dtv * xv;
  for (int64_t n = 0; n < N; ++n) {
    a[n] = std::exp(dtv * Ad[n]);
    h[n] = a[n] * h[n] + dtx * Bt[n];
  }
}

// One channel, one step back: g holds exp(dt_{t+1} A) dL/dh_{t+1} and becomes exp(dt_t A) dL/dh_t;
// adds to dA, dB_t, dC_t; returns y_t = C_t . h_t and writes the scan's parts of dx_t and ddt_t.
template <typename T>
inline T reverse_step(const T* __restrict__ Ad, const T* __restrict__ Bt, const T* __restrict__ Ct,
                      const T* __restrict__ h, const T* __restrict__ hprev, const T* __restrict__ a,
                      T* __restrict__ g, T* __restrict__ dAd, T* __restrict__ dBt, T* __restrict__ dCt,
                      T dtv, T xv, T gy, int64_t N, T* dx, T* ddt) {
  T y = 0, dx_acc = 0, ddt_acc = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T gh = g[n] + gy * Ct[n];  // dL/dh_t
    y += Ct[n] * h[n];
    dCt[n] += gy * h[n];
    dBt[n] += gh * dtv * xv;
    dx_acc += gh * dtv * Bt[n];
    ddt_acc += gh * (Ad[n] * a[n] * hprev[n] + Bt[n] * xv);
    dAd[n] += gh * dtv * a[n] * hprev[n];
    g[n] = gh * a[n];
  }
  *dx = dx_acc;
  *ddt = ddt_acc;
  return y;
}

// out_t = (y_t + D x_t) silu(z_t) for one position's channels (a loop that vectorises).
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

template <typename T, typename Next>
void forward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* Dv,
                  const T* z, int64_t zs, T* out, Next next, int64_t Bsz, int64_t L, int64_t D, int64_t N) {
  std::vector<T> h(D * N), y(D);
  for (int64_t b; (b = next()) < Bsz;) {
    std::fill(h.begin(), h.end(), T(0));
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = b * L + t;
      for (int64_t d = 0; d < D; ++d) {
        y[d] = state_step(A + d * N, Bm + row * N, Cm + row * N, h.data() + d * N, dt[row * D + d], x[row * D + d], N);
      }
      gate_row(y.data(), x + row * D, z + row * zs, Dv, out + row * D, D);
    }
  }
}

template <typename T, typename Next>
void backward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* Dv,
                   const T* z, int64_t zs, const T* dout, T* dx, T* ddt, T* dz, T* dA, T* dD, T* dB, T* dC,
                   Next next, int64_t Bsz, int64_t L, int64_t D, int64_t N) {
  std::vector<T> H((L + 1) * kBlock * N);  // H[t + 1][j] = h_t of channel d0 + j; H[0] = h_{-1} = 0
  std::vector<T> decay(L * kBlock * N);    // decay[t][j] = exp(dt_t A) of channel d0 + j
  std::vector<T> g(kBlock * N), gy(kBlock), y(kBlock);
  for (int64_t b; (b = next()) < Bsz;) {
    for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
      const int64_t nd = std::min(kBlock, D - d0);
      // 1. recompute the block's states and decays
      std::fill(H.begin(), H.begin() + kBlock * N, T(0));
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = b * L + t;
        T* Ht = H.data() + (t + 1) * kBlock * N;
        std::copy(Ht - kBlock * N, Ht, Ht);
        for (int64_t j = 0; j < nd; ++j) {
          const int64_t d = d0 + j;
          state_step_recording(A + d * N, Bm + row * N, Ht + j * N, decay.data() + (t * kBlock + j) * N,
                               dt[row * D + d], x[row * D + d], N);
        }
      }
      // 2. reverse sweep
      std::fill(g.begin(), g.end(), T(0));
      for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t row = b * L + t, i0 = row * D + d0;
        const T* Ht = H.data() + (t + 1) * kBlock * N;
        gate_grad_in(dout + i0, z + row * zs + d0, gy.data(), nd);
        for (int64_t j = 0; j < nd; ++j) {
          const int64_t d = d0 + j, i = i0 + j;
          y[j] = reverse_step(A + d * N, Bm + row * N, Cm + row * N, Ht + j * N, Ht - kBlock * N + j * N,
                              decay.data() + (t * kBlock + j) * N, g.data() + j * N, dA + d * N,
                              dB + row * N, dC + row * N, dt[i], x[i], gy[j], N, dx + i, ddt + i);
        }
        gate_grad_out(dout + i0, z + row * zs + d0, y.data(), x + i0, Dv + d0, gy.data(), dz + i0, dD + d0,
                      dx + i0, nd);
      }
    }
  }
}

}  // namespace

#define MDAF_SCAN_EXPORTS(T, SUFFIX)                                                                     \
  extern "C" void mdaf_scan_fwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm,   \
                                         const T* Dv, const T* z, int64_t zs, T* out, int64_t Bsz,         \
                                         int64_t L, int64_t D, int64_t N, int threads) {                   \
    parallel_rows(Bsz, threads, [=](int64_t, auto& next) {                                                \
      forward_rows(x, dt, A, Bm, Cm, Dv, z, zs, out, next, Bsz, L, D, N);                                 \
    });                                                                                                   \
  }                                                                                                       \
  /* dA_part (threads, D, N), dD_part (threads, D), dB and dC: zeroed by the caller */                    \
  extern "C" void mdaf_scan_bwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm,   \
                                         const T* Dv, const T* z, int64_t zs, const T* dout, T* dx,        \
                                         T* ddt, T* dz, T* dA_part, T* dD_part, T* dB, T* dC, int64_t Bsz, \
                                         int64_t L, int64_t D, int64_t N, int threads) {                   \
    parallel_rows(Bsz, threads, [=](int64_t i, auto& next) {                                              \
      backward_rows(x, dt, A, Bm, Cm, Dv, z, zs, dout, dx, ddt, dz, dA_part + i * D * N, dD_part + i * D, \
                    dB, dC, next, Bsz, L, D, N);                                                          \
    });                                                                                                   \
  }

MDAF_SCAN_EXPORTS(float, f32)
MDAF_SCAN_EXPORTS(double, f64)
