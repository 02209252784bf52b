// EdgeFuse masked-fusion kernel: plain C++ (no Python), called by bindings.cpp.
//
// For each row b of a batch:
//   present(b, m)  = modality m is present in row b
//   fused[b, :]    = sum_m w[m] * present(b, m) * e_m[b, :] / sum_m w[m] * present(b, m)
//   out[b, :]      = LayerNorm(fused[b, :]) * gamma + beta   (biased variance, eps inside the sqrt)
// A row with no modality present fuses to the zero vector, so out[b, :] = beta (0 without beta);
// its count is 0 and no division by zero happens.
// The data of an absent (row, modality) is never read.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgefuse {

struct FusionArgs {
  std::int64_t batch = 0;   // B
  std::int64_t modalities = 0;  // M
  std::int64_t dim = 0;     // D
  // Per modality: pointer to row 0 (nullptr = absent for the whole batch) and the row stride in
  // elements. Elements within a row are contiguous.
  const float* const* emb = nullptr;
  const std::int64_t* emb_row_stride = nullptr;
  // Optional presence mask (nullptr = every non-null modality present), one byte per (b, m),
  // nonzero = present, addressed as mask[b * mask_stride_b + m * mask_stride_m] (strides in bytes).
  const std::uint8_t* mask = nullptr;
  std::int64_t mask_stride_b = 0;
  std::int64_t mask_stride_m = 0;
  const float* weights = nullptr;  // (M,) positive, or nullptr for all ones
  const float* gamma = nullptr;    // (D,) or nullptr for ones
  const float* beta = nullptr;     // (D,) or nullptr for zeros
  float eps = 1e-5f;
  float* out = nullptr;            // (B, D), rows out_row_stride apart
  std::int64_t out_row_stride = 0;
  std::int32_t* counts = nullptr;  // optional (B,): number of modalities present per row
};

// Runs the fusion over rows [row_begin, row_end). Thread-safe for disjoint row ranges.
void fuse_rows(const FusionArgs& args, std::int64_t row_begin, std::int64_t row_end) noexcept;

// Runs the fusion over the whole batch, splitting rows across `threads` threads (1 = caller's thread).
void fuse(const FusionArgs& args, int threads) noexcept;

// True when none of the n floats is NaN or +-Inf (exponent bits all ones). One branch-free pass, so
// the compiler vectorises it; used to validate sensor inputs before any encoder runs.
bool all_finite(const float* data, std::int64_t n) noexcept;

// True when the kernel was compiled with -march=native (EDGEFUSE_NATIVE=ON).
bool native_build() noexcept;

}  // namespace edgefuse
