// EdgeFuse masked-fusion kernel: plain C++ (no Python), called by bindings.cpp.
//
// For each row b of a batch, with w[b, m] the fusion weights (one (M,) vector shared by every row, or
// one per row: FusionArgs::weights_row_stride):
//   used(b, m)     = modality m is present in row b AND w[b, m] > 0   (a weight of 0 acts as absent)
//   fused[b, :]    = sum_m w[b, m] * used(b, m) * e_m[b, :] / sum_m w[b, m] * used(b, m)
//   out[b, :]      = LayerNorm(fused[b, :]) * gamma + beta   (biased variance, eps inside the sqrt)
// A row with no modality used (none present, or every present one weighted 0) fuses to the zero vector,
// so out[b, :] = beta (0 without beta); its count is 0 and no division by zero happens.
// The data of an unused (row, modality) -- absent or weighted 0 -- is never read.
//
// Numerical contract (the bindings validate the preconditions, fuse_rows trusts them):
//   * preconditions: every weight is finite and either 0 or >= FLT_MIN (normal), and the float32 sum
//     of each row's M weights (in order m = 0..M-1) is finite; gamma and beta are finite; eps is finite
//     and >= FLT_MIN; out does not overlap any input.
//   * then the output is never NaN for finite embeddings, however large: a row whose float32 mean or
//     variance would overflow (|values| beyond ~1e19) is recomputed with double accumulators. An output
//     element is finite unless LayerNorm(fused) * gamma + beta itself exceeds float32's range, where it
//     saturates to +-Inf (only possible with |gamma| or |beta| near FLT_MAX).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace edgefuse {

// Upper bound on the modalities a model may have; the bindings reject more.
constexpr std::int64_t kMaxModalities = 64;
// Upper bound on the `threads` argument; the bindings reject more (the kernel is memory-bound: more
// threads than memory channels buy nothing, and each thread reserves a stack).
constexpr std::int64_t kMaxThreads = 1024;

struct FusionArgs {
  std::int64_t batch = 0;   // B
  std::int64_t modalities = 0;  // M (<= kMaxModalities)
  std::int64_t dim = 0;     // D
  // Per modality: pointer to row 0 (nullptr = absent for the whole batch) and the row stride in
  // elements (may be negative or 0). Elements within a row are contiguous.
  const float* const* emb = nullptr;
  const std::int64_t* emb_row_stride = nullptr;
  // Optional presence mask (nullptr = every non-null modality present), one byte per (b, m),
  // nonzero = present, addressed as mask[b * mask_stride_b + m * mask_stride_m] (strides in bytes).
  const std::uint8_t* mask = nullptr;
  std::int64_t mask_stride_b = 0;
  std::int64_t mask_stride_m = 0;
  // Fusion weights: row b's M weights are weights[b * weights_row_stride + m] (contiguous in m); a
  // row stride of 0 shares one (M,) vector across the batch. Each finite and 0 or >= FLT_MIN, each
  // row's float32 sum finite; nullptr = all ones.
  const float* weights = nullptr;
  std::int64_t weights_row_stride = 0;  // in elements (may be negative or 0)
  const float* gamma = nullptr;    // (D,) finite, or nullptr for ones
  const float* beta = nullptr;     // (D,) finite, or nullptr for zeros
  float eps = 1e-5f;               // finite, >= FLT_MIN
  float* out = nullptr;            // (B, D), rows out_row_stride apart; overlaps no input
  std::int64_t out_row_stride = 0;
  std::int32_t* counts = nullptr;  // optional (B,): modalities used per row (present, weight > 0)
};

// Thrown by fuse() when a worker thread cannot be started (out of memory or of the thread quota).
// The threads that did start have been joined; the output is incomplete and must not be used.
struct ThreadStartError : std::runtime_error {
  ThreadStartError(const std::string& what, int failed_thread, int requested)
      : std::runtime_error(what), failed_thread(failed_thread), requested(requested) {}
  int failed_thread;  // 1-based index of the thread that could not start (thread 0 is the caller's)
  int requested;      // threads the call would have used (after clamping to [1, min(B, kMaxThreads)])
};

// Runs the fusion over rows [row_begin, row_end). Thread-safe for disjoint row ranges.
void fuse_rows(const FusionArgs& args, std::int64_t row_begin, std::int64_t row_end) noexcept;

// Runs the fusion over the whole batch, splitting rows across `threads` threads (1 = caller's thread,
// clamped to [1, min(B, kMaxThreads)]). Throws ThreadStartError (never terminates the process) when a
// worker thread cannot be started; std::bad_alloc when the thread list cannot be allocated.
void fuse(const FusionArgs& args, std::int64_t threads);

// True when none of the n floats is NaN or +-Inf (exponent bits all ones). One branch-free pass, so
// the compiler vectorises it; used to validate sensor inputs before any encoder runs.
bool all_finite(const float* data, std::int64_t n) noexcept;

// Index of the first NaN or +-Inf among the n floats, or -1 when all are finite.
std::int64_t first_nonfinite(const float* data, std::int64_t n) noexcept;

// True when the kernel was compiled with -march=native (EDGEFUSE_NATIVE=ON).
bool native_build() noexcept;

}  // namespace edgefuse
