#include "fusion.h"

#include <cstring>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace edgefuse {
namespace {

// Upper bound on the modalities a model may have; the bindings reject more.
constexpr std::int64_t kMaxModalities = 64;

inline bool is_present(const FusionArgs& a, std::int64_t b, std::int64_t m) noexcept {
  if (a.emb[m] == nullptr) return false;
  if (a.mask == nullptr) return true;
  return a.mask[b * a.mask_stride_b + m * a.mask_stride_m] != 0;
}

}  // namespace

void fuse_rows(const FusionArgs& a, std::int64_t row_begin, std::int64_t row_end) noexcept {
  const std::int64_t D = a.dim;
  const float inv_d = 1.0f / static_cast<float>(D);
  const float* __restrict gamma = a.gamma;
  const float* __restrict beta = a.beta;

  const float* rows[kMaxModalities];
  float wts[kMaxModalities];

  for (std::int64_t b = row_begin; b < row_end; ++b) {
    float* __restrict out = a.out + b * a.out_row_stride;

    // Which modalities are present in this row, and the renormalised weights.
    int n = 0;
    float wsum = 0.0f;
    for (std::int64_t m = 0; m < a.modalities; ++m) {
      if (!is_present(a, b, m)) continue;
      const float w = a.weights ? a.weights[m] : 1.0f;
      rows[n] = a.emb[m] + b * a.emb_row_stride[m];
      wts[n] = w;
      wsum += w;
      ++n;
    }
    if (a.counts) a.counts[b] = n;

    if (n == 0) {
      // Fused vector is zero; LayerNorm(0) = 0, so the row is beta (or zeros).
      if (beta) {
        std::copy(beta, beta + D, out);
      } else {
        std::fill(out, out + D, 0.0f);
      }
      continue;
    }

    // Weighted mean, accumulated in the output row (D floats: stays in L1). Each present embedding
    // row is read exactly once from memory.
    const float inv_wsum = 1.0f / wsum;
    {
      const float* __restrict r0 = rows[0];
      const float w0 = wts[0] * inv_wsum;
      if (n == 1) {
#pragma omp simd
        for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d];
      } else {
        const float* __restrict r1 = rows[1];
        const float w1 = wts[1] * inv_wsum;
        if (n == 2) {
#pragma omp simd
          for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d] + w1 * r1[d];
        } else {
          const float* __restrict r2 = rows[2];
          const float w2 = wts[2] * inv_wsum;
#pragma omp simd
          for (std::int64_t d = 0; d < D; ++d) out[d] = w0 * r0[d] + w1 * r1[d] + w2 * r2[d];
          for (int k = 3; k < n; ++k) {
            const float* __restrict rk = rows[k];
            const float wk = wts[k] * inv_wsum;
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
    const float rstd = 1.0f / std::sqrt(sq * inv_d + a.eps);
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

void fuse(const FusionArgs& a, int threads) noexcept {
  const std::int64_t B = a.batch;
  if (B <= 0) return;
  threads = std::max(1, std::min<int>(threads, static_cast<int>(B)));
  if (threads == 1) {
    fuse_rows(a, 0, B);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads - 1));
  const std::int64_t chunk = (B + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const std::int64_t lo = t * chunk;
    const std::int64_t hi = std::min(B, lo + chunk);
    if (lo >= hi) break;
    pool.emplace_back([&a, lo, hi] { fuse_rows(a, lo, hi); });
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

bool native_build() noexcept {
#if defined(EDGEFUSE_NATIVE_BUILD) && EDGEFUSE_NATIVE_BUILD
  return true;
#else
  return false;
#endif
}

}  // namespace edgefuse
