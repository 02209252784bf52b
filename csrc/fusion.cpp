#include "fusion.h"

#include <cstring>

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace edgefuse {
namespace {

inline bool is_present(const FusionArgs& a, std::int64_t b, std::int64_t m) noexcept {
  if (a.emb[m] == nullptr) return false;
  if (a.mask == nullptr) return true;
  return a.mask[b * a.mask_stride_b + m * a.mask_stride_m] != 0;
}

// Fused value of element d: the weighted sum of the n present rows, in double.
inline double fused_wide(const float* const* rows, const float* wts, int n, std::int64_t d) noexcept {
  double x = 0.0;
  for (int k = 0; k < n; ++k) x += static_cast<double>(wts[k]) * static_cast<double>(rows[k][d]);
  return x;
}

// One row recomputed from the inputs with double accumulators: taken only when the float32 statistics
// of the row overflowed (|values| beyond ~1e19), so the fast path is unchanged. No scratch memory: the
// fused value is recomputed in each of the three passes. (x - mean) * rstd is bounded by sqrt(D), so
// its conversion to float is always in range.
void fuse_row_wide(const FusionArgs& a, const float* const* rows, const float* wts, int n,
                   float* __restrict out) noexcept {
  const std::int64_t D = a.dim;
  double sum = 0.0;
  for (std::int64_t d = 0; d < D; ++d) sum += fused_wide(rows, wts, n, d);
  const double mean = sum / static_cast<double>(D);
  double sq = 0.0;
  for (std::int64_t d = 0; d < D; ++d) {
    const double c = fused_wide(rows, wts, n, d) - mean;
    sq += c * c;
  }
  const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(D) + static_cast<double>(a.eps));
  for (std::int64_t d = 0; d < D; ++d) {
    const float v = static_cast<float>((fused_wide(rows, wts, n, d) - mean) * rstd);
    const float g = a.gamma ? v * a.gamma[d] : v;
    out[d] = a.beta ? g + a.beta[d] : g;
  }
}

}  // namespace

void fuse_rows(const FusionArgs& a, std::int64_t row_begin, std::int64_t row_end) noexcept {
  const std::int64_t D = a.dim;
  const float inv_d = D > 0 ? 1.0f / static_cast<float>(D) : 0.0f;
  const float* __restrict gamma = a.gamma;
  const float* __restrict beta = a.beta;

  const float* rows[kMaxModalities];
  float wts[kMaxModalities];

  for (std::int64_t b = row_begin; b < row_end; ++b) {
    float* __restrict out = a.out + b * a.out_row_stride;
    // This row's weights: the shared (M,) vector (row stride 0) or row b of a (B, M) array.
    const float* wrow = a.weights ? a.weights + b * a.weights_row_stride : nullptr;

    // Which modalities are used in this row (present, weight > 0), and the renormalised weights.
    int n = 0;
    float wsum = 0.0f;
    for (std::int64_t m = 0; m < a.modalities; ++m) {
      if (!is_present(a, b, m)) continue;
      const float w = wrow ? wrow[m] : 1.0f;
      if (w == 0.0f) continue;  // weight 0 = absent: the row's data is not read
      rows[n] = a.emb[m] + b * a.emb_row_stride[m];
      wts[n] = w;
      wsum += w;
      ++n;
    }
    if (a.counts) a.counts[b] = n;

    if (n == 0 || D == 0) {
      // No modality used (none present, or all weighted 0): the fused vector is zero; LayerNorm(0) = 0,
      // so the row is beta (or zeros). (D = 0: nothing to write.)
      if (beta) {
        std::copy(beta, beta + D, out);
      } else {
        std::fill(out, out + D, 0.0f);
      }
      continue;
    }

    // Renormalise over the present modalities. A division per weight, not a reciprocal: with wsum above
    // 2^126 the reciprocal is denormal (0 under flush-to-zero), w / wsum is in (0, 1] (wsum is finite:
    // the float32 sum of the row's M weights is, and a subset sum in the same order is no larger; it is
    // >= FLT_MIN > 0: every used weight is normal).
    for (int k = 0; k < n; ++k) wts[k] /= wsum;

    // Weighted mean, accumulated in the output row (D floats: stays in L1). Each present embedding
    // row is read exactly once from memory.
    {
      const float* __restrict r0 = rows[0];
      const float w0 = wts[0];
      if (n == 1) {
#pragma omp simd
        for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d];
      } else {
        const float* __restrict r1 = rows[1];
        const float w1 = wts[1];
        if (n == 2) {
#pragma omp simd
          for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d] + w1 * r1[d];
        } else {
          const float* __restrict r2 = rows[2];
          const float w2 = wts[2];
#pragma omp simd
          for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d] + w1 * r1[d] + w2 * r2[d];
          for (int k = 3; k < n; ++k) {
            const float* __restrict rk = rows[k];
            const float wk = wts[k];
#pragma omp simd
            for (std::int64_t d = 0; d < D; ++d) out[d] += wk * rk[d];
          }
        }
      }
    }

    // LayerNorm over D: two passes over the cached row (mean, then centred variance) for accuracy.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::int64_t d = 0; d < D; ++d) sum += out[d];
    const float mean = sum * inv_d;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (std::int64_t d = 0; d < D; ++d) {
      const float c = out[d] - mean;
      sq += c * c;
    }
    // Overflow anywhere above (a fused value, the sum, a centred square, variance + eps) leaves the
    // denominator Inf or NaN: redo the row in double from the inputs (never aliased by out). One
    // well-predicted branch per row.
    const float var_eps = sq * inv_d + a.eps;
    if (!std::isfinite(var_eps)) {
      fuse_row_wide(a, rows, wts, n, out);
      continue;
    }
    const float rstd = 1.0f / std::sqrt(var_eps);
    if (gamma && beta) {
#pragma omp simd
      for (std::int64_t d = 0; d < D; ++d) out[d] = (out[d] - mean) * rstd * gamma[d] + beta[d];
    } else if (gamma) {
#pragma omp simd
      for (std::int64_t d = 0; d < D; ++d) out[d] = (out[d] - mean) * rstd * gamma[d];
    } else if (beta) {
#pragma omp simd
      for (std::int64_t d = 0; d < D; ++d) out[d] = (out[d] - mean) * rstd + beta[d];
    } else {
#pragma omp simd
      for (std::int64_t d = 0; d < D; ++d) out[d] = (out[d] - mean) * rstd;
    }
  }
}

void fuse(const FusionArgs& a, std::int64_t threads_requested) {
  const std::int64_t B = a.batch;
  if (B <= 0) return;
  const int threads =
      static_cast<int>(std::clamp<std::int64_t>(threads_requested, 1, std::min(B, kMaxThreads)));
  if (threads == 1) {
    fuse_rows(a, 0, B);
    return;
  }
  std::vector<std::thread> pool;
  try {
    pool.reserve(static_cast<std::size_t>(threads - 1));
  } catch (const std::exception& e) {
    throw ThreadStartError(std::string("could not allocate the list of worker threads (") + e.what() + ")", 1,
                           threads);
  }
  const std::int64_t chunk = (B + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const std::int64_t lo = t * chunk;
    const std::int64_t hi = std::min(B, lo + chunk);
    if (lo >= hi) break;
    try {
      pool.emplace_back([&a, lo, hi] { fuse_rows(a, lo, hi); });
    } catch (const std::exception& e) {
      // std::system_error (EAGAIN: no memory for the stack, or the thread quota) or std::bad_alloc.
      // A std::thread left joinable would call std::terminate: join every one that started first.
      for (auto& th : pool) th.join();
      throw ThreadStartError("could not start worker thread " + std::to_string(t) + " of " +
                                 std::to_string(threads) + " (" + e.what() + ")",
                             t, threads);
    }
  }
  fuse_rows(a, 0, std::min(B, chunk));
  for (auto& th : pool) th.join();
}

bool all_finite(const float* data, std::int64_t n) noexcept {
  constexpr std::uint32_t kExponent = 0x7f800000u;
  std::uint32_t bad = 0;
  std::int64_t i = 0;
  // Blocks of 1024 with an early exit between blocks: vectorised inside a block, and a NaN near the
  // start of a large input is found without reading the rest.
  for (; i < n; i += 1024) {
    const std::int64_t end = i + 1024 < n ? i + 1024 : n;
#pragma omp simd reduction(| : bad)
    for (std::int64_t j = i; j < end; ++j) {
      std::uint32_t bits;
      std::memcpy(&bits, data + j, sizeof bits);
      bad |= static_cast<std::uint32_t>((bits & kExponent) == kExponent);
    }
    if (bad) return false;
  }
  return true;
}

std::int64_t first_nonfinite(const float* data, std::int64_t n) noexcept {
  if (all_finite(data, n)) return -1;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) return i;
  }
  return -1;
}

bool native_build() noexcept {
#if defined(EDGEFUSE_NATIVE_BUILD) && EDGEFUSE_NATIVE_BUILD
  return true;
#else
  return false;
#endif
}

}  // namespace edgefuse
