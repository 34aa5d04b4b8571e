// Selective scan on the CPU, forward and backward, without a (batch, length, d_inner, d_state) tensor.
//
//   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,   y_t = C_t . h_t        (Gu & Dao 2023, eq. 2a-2b)
//
// Shapes (row-major, contiguous): x, dt, y: (Bsz, L, D); Bm, Cm: (Bsz, L, N); A: (D, N).
// The state of one batch row, h: (D, N), lives in a small per-thread buffer. The innermost loop runs
// over the N state entries of one channel; it vectorises (the exponentials go to glibc's vector math
// when this file is compiled with -ffast-math, see scan_cpu_build.py).
//
// Backward, for one batch row and one block of DB channels: the forward states of the block are
// recomputed into a scratch buffer of (L, DB, N) values, then a reverse sweep carries
//   g_t = dL/dh_t = dy_t * C_t + exp(dt_{t+1} * A) * g_{t+1}
// and reads every gradient off it:
//   dx_t  = sum_n g_t dt_t B_t                 dB_t += g_t dt_t x_t        dC_t += dy_t h_t
//   ddt_t = sum_n g_t (A exp(dt_t A) h_{t-1} + B_t x_t)                    dA   += g_t dt_t exp(dt_t A) h_{t-1}
// dB and dC sum over channels, so a batch row belongs to one thread; dA sums over batch rows, so each
// thread has its own (D, N) slice of dA_part, summed by the caller.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kBlock = 32;  // channels per backward block: scratch is L * 32 * N values

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

// One channel, one step back: g holds exp(dt_{t+1} A) dL/dh_{t+1} and becomes exp(dt_t A) dL/dh_t;
// adds to dA, dB_t, dC_t and returns dx_t and ddt_t.
template <typename T>
inline void reverse_step(const T* __restrict__ Ad, const T* __restrict__ Bt, const T* __restrict__ Ct,
                         const T* __restrict__ h, const T* __restrict__ hprev, T* __restrict__ g,
                         T* __restrict__ dAd, T* __restrict__ dBt, T* __restrict__ dCt,
                         T dtv, T xv, T dyv, int64_t N, T* dx, T* ddt) {
  T dx_acc = 0, ddt_acc = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T a = std::exp(dtv * Ad[n]);
    const T gh = g[n] + dyv * Ct[n];  // dL/dh_t
    dCt[n] += dyv * h[n];
    dBt[n] += gh * dtv * xv;
    dx_acc += gh * dtv * Bt[n];
    ddt_acc += gh * (Ad[n] * a * hprev[n] + Bt[n] * xv);
    dAd[n] += gh * dtv * a * hprev[n];
    g[n] = gh * a;
  }
  *dx = dx_acc;
  *ddt = ddt_acc;
}

template <typename T>
void forward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, T* y,
                  int64_t b0, int64_t b1, int64_t L, int64_t D, int64_t N) {
  std::vector<T> h(D * N);
  for (int64_t b = b0; b < b1; ++b) {
    std::fill(h.begin(), h.end(), T(0));
    for (int64_t t = 0; t < L; ++t) {
      const int64_t row = b * L + t;
      for (int64_t d = 0; d < D; ++d) {
        y[row * D + d] = state_step(A + d * N, Bm + row * N, Cm + row * N, h.data() + d * N,
                                    dt[row * D + d], x[row * D + d], N);
      }
    }
  }
}

template <typename T>
void backward_rows(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* dy,
                   T* dx, T* ddt, T* dA, T* dB, T* dC,
                   int64_t b0, int64_t b1, int64_t L, int64_t D, int64_t N) {
  std::vector<T> H((L + 1) * kBlock * N);  // H[t + 1][j] = h_t of channel d0 + j; H[0] = h_{-1} = 0
  std::vector<T> g(kBlock * N);
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
      const int64_t nd = std::min(kBlock, D - d0);
      // 1. recompute the block's states
      std::fill(H.begin(), H.begin() + kBlock * N, T(0));
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = b * L + t;
        T* Ht = H.data() + (t + 1) * kBlock * N;
        std::copy(Ht - kBlock * N, Ht, Ht);
        for (int64_t j = 0; j < nd; ++j) {
          const int64_t d = d0 + j;
          state_step(A + d * N, Bm + row * N, Cm + row * N, Ht + j * N, dt[row * D + d], x[row * D + d], N);
        }
      }
      // 2. reverse sweep
      std::fill(g.begin(), g.end(), T(0));
      for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t row = b * L + t;
        const T* Ht = H.data() + (t + 1) * kBlock * N;
        for (int64_t j = 0; j < nd; ++j) {
          const int64_t d = d0 + j;
          reverse_step(A + d * N, Bm + row * N, Cm + row * N, Ht + j * N, Ht - kBlock * N + j * N,
                       g.data() + j * N, dA + d * N, dB + row * N, dC + row * N,
                       dt[row * D + d], x[row * D + d], dy[row * D + d], N, dx + row * D + d, ddt + row * D + d);
        }
      }
    }
  }
}

// Runs fn(b0, b1, thread_index) on `threads` contiguous ranges of batch rows.
template <typename Fn>
void parallel_rows(int64_t Bsz, int threads, Fn fn) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, Bsz));
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < n; ++i) pool.emplace_back(fn, i * Bsz / n, (i + 1) * Bsz / n, i);
  fn(0, Bsz / n, 0);
  for (auto& th : pool) th.join();
}

template <typename T>
void scan_fwd(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, T* y,
              int64_t Bsz, int64_t L, int64_t D, int64_t N, int threads) {
  parallel_rows(Bsz, threads, [=](int64_t b0, int64_t b1, int64_t) {
    forward_rows(x, dt, A, Bm, Cm, y, b0, b1, L, D, N);
  });
}

// dA_part: (threads, D, N), zeroed by the caller, like dB and dC.
template <typename T>
void scan_bwd(const T* x, const T* dt, const T* A, const T* Bm, const T* Cm, const T* dy,
              T* dx, T* ddt, T* dA_part, T* dB, T* dC,
              int64_t Bsz, int64_t L, int64_t D, int64_t N, int threads) {
  parallel_rows(Bsz, threads, [=](int64_t b0, int64_t b1, int64_t i) {
    backward_rows(x, dt, A, Bm, Cm, dy, dx, ddt, dA_part + i * D * N, dB, dC, b0, b1, L, D, N);
  });
}

}  // namespace

#define MDAF_SCAN_EXPORTS(T, SUFFIX)                                                               \
  extern "C" void mdaf_scan_fwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm,          \
                                         const T* Cm, T* y, int64_t Bsz, int64_t L, int64_t D,      \
                                         int64_t N, int threads) {                                  \
    scan_fwd<T>(x, dt, A, Bm, Cm, y, Bsz, L, D, N, threads);                                        \
  }                                                                                                 \
  extern "C" void mdaf_scan_bwd_##SUFFIX(const T* x, const T* dt, const T* A, const T* Bm,          \
                                         const T* Cm, const T* dy, T* dx, T* ddt, T* dA_part,       \
                                         T* dB, T* dC, int64_t Bsz, int64_t L, int64_t D,           \
                                         int64_t N, int threads) {                                  \
    scan_bwd<T>(x, dt, A, Bm, Cm, dy, dx, ddt, dA_part, dB, dC, Bsz, L, D, N, threads);             \
  }

MDAF_SCAN_EXPORTS(float, f32)
MDAF_SCAN_EXPORTS(double, f64)
