// Pieces shared by the CPU batch-norm kernels (dmc::batchnorm_mixed_sum, dmc::batchnorm_act): the row layout both
// walk, and the per-channel batch statistics, summed in fixed blocks so that the results do not depend on the number
// of threads.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace dmc {
namespace batchnorm {

constexpr int64_t kBlock = 16384;  // elements of one tensor per block
constexpr int64_t kRun = 512;      // channels-last rows shorter than kShortRow: elements per run of whole rows
constexpr int64_t kShortRow = 64;

// The layout both passes walk: `rows` rows of C channels of `inner` contiguous elements each.
//
// Channels-last rows can be short (16 channels in S0's first cells: one AVX-512 vector), and a loop per row then
// costs more than its arithmetic; below kShortRow channels the loops take `tile` rows at a time: a run of tile * C
// elements whose element i is channel i % C. Per-channel coefficients and accumulators are `tiled` to that length;
// the runs' loops then index them with the run's own index. (At 64 channels and more, runs of several rows measured
// slower than row by row: benchmarks/RESULTS.md.)
struct Layout {
  int64_t rows, channels, inner;
  int64_t row_block;  // rows per block
  int64_t blocks;
  int64_t count;  // elements per channel
  int64_t tile;   // rows per run: short channels-last rows, about kRun elements' worth; otherwise 1

  explicit Layout(const at::Tensor& t) {
    channels = t.size(1);
    const bool channels_last = layout_of(t) == at::MemoryFormat::ChannelsLast;
    rows = channels_last ? t.size(0) * t.size(2) * t.size(3) : t.size(0);
    inner = channels_last ? 1 : t.size(2) * t.size(3);
    row_block = std::max<int64_t>(1, kBlock / std::max<int64_t>(1, channels * inner));
    blocks = (rows + row_block - 1) / row_block;
    count = t.size(0) * t.size(2) * t.size(3);
    tile = channels_last && channels < kShortRow ? kRun / std::max<int64_t>(1, channels) : 1;
  }

  // Length of a run's per-channel arrays (C when contiguous).
  int64_t span() const { return tile * channels; }
};

// `values` (one per channel; or `rows` x C, one row per tensor) with each row repeated for every row of a run:
// rows x L.span() entries, entry i of a row is channel i % C.
template <typename T, typename U>
std::vector<T> tiled(const std::vector<U>& values, const Layout& L, int64_t rows = 1) {
  const int64_t C = L.channels, S = L.span();
  std::vector<T> out(rows * S);
  for (int64_t k = 0; k < rows; ++k)
    for (int64_t i = 0; i < S; ++i) out[k * S + i] = static_cast<T>(values[k * C + i % C]);
  return out;
}

// Adds a run-length accumulator's rows into its first C entries (one per channel).
template <typename T>
void fold(T* acc, const Layout& L) {
  for (int64_t t = 1; t < L.tile; ++t)
    for (int64_t c = 0; c < L.channels; ++c) acc[c] += acc[t * L.channels + c];
}

// An uninitialised tensor shaped like `t`, contiguous or channels-last (layout_of), as every result here is.
inline at::Tensor dense_like(const at::Tensor& t) {
  return at::empty(t.sizes(), t.options().memory_format(layout_of(t)));
}

// A tensor of its own (from_blob alone would alias the vector) in `options`.
inline at::Tensor tensor_of(std::vector<double>& values, at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::from_blob(values.data(), sizes, at::TensorOptions().dtype(at::kDouble)).clone().to(options);
}

template <typename scalar_t>
std::vector<const scalar_t*> pointers(const std::vector<at::Tensor>& ts) {
  std::vector<const scalar_t*> out;
  for (const auto& t : ts) out.push_back(t.const_data_ptr<scalar_t>());
  return out;
}

// Calls body(offset, length, channel) for every run of elements of rows [r0, r1): channels-last, up to `tile` whole
// rows (channel -1: element i is channel i % C, the index of `tiled` arrays); contiguous, one channel's plane of a
// row.
template <typename Body>
void for_runs(const Layout& L, int64_t r0, int64_t r1, Body&& body) {
  const int64_t C = L.channels, I = L.inner;
  if (I == 1) {
    for (int64_t r = r0; r < r1; r += L.tile) body(r * C, std::min(L.tile, r1 - r) * C, int64_t{-1});
    return;
  }
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < C; ++c) body((r * C + c) * I, I, c);
}

// Sums over one block's rows [r0, r1) of one tensor, per channel, into acc[c] (in scalar_t): term(value, i), i the
// run index (channels-last) or the channel. acc has L.span() entries; the sums end in the first C.
template <typename scalar_t, typename Term>
void block_sums(const scalar_t* z, const Layout& L, int64_t r0, int64_t r1, scalar_t* acc, Term&& term) {
  std::fill(acc, acc + L.span(), scalar_t(0));
  for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
    const scalar_t* run = z + at;
    if (c < 0) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) acc[i] += term(run[i], i);
    } else {
      scalar_t t = 0;
#pragma omp simd reduction(+ : t)
      for (int64_t i = 0; i < n; ++i) t += term(run[i], c);
      acc[c] += t;
    }
  });
  fold(acc, L);
}

// The normalisation's per-channel coefficients, tiled to a run's length: (z - mean) rstd = a_c z + b_c,
// a_c = rstd_c, b_c = -mean_c rstd_c.
template <typename scalar_t>
void normalisation(const std::vector<double>& mean, const std::vector<double>& var, double eps, const Layout& L,
                   std::vector<scalar_t>& a, std::vector<scalar_t>& b) {
  std::vector<double> rstd(mean.size()), shift(mean.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    rstd[c] = 1.0 / std::sqrt(var[c] + eps);
    shift[c] = -mean[c] * rstd[c];
  }
  a = tiled<scalar_t>(rstd, L);
  b = tiled<scalar_t>(shift, L);
}

// Per-channel mean and biased variance of every z_k. Each block (small enough to stay in cache) is read twice:
// for its mean, then for its squared deviations from it; the blocks' moments are merged in double, in block
// order (Chan et al.'s pairwise update), so one outlier cannot cancel the variance's digits away.
template <typename scalar_t>
void statistics(const std::vector<at::Tensor>& zs, const Layout& L, std::vector<double>& mean,
                std::vector<double>& var) {
  const int64_t K = static_cast<int64_t>(zs.size()), C = L.channels;
  const auto z = pointers<scalar_t>(zs);
  std::vector<double> block_mean(L.blocks * K * C), block_m2(L.blocks * K * C);
  at::parallel_for(0, L.blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<scalar_t> sums(L.span()), means(L.span());
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t r0 = blk * L.row_block, r1 = std::min(L.rows, r0 + L.row_block);
      const scalar_t count = static_cast<scalar_t>((r1 - r0) * L.inner);
      for (int64_t k = 0; k < K; ++k) {
        block_sums(z[k], L, r0, r1, sums.data(), [](scalar_t v, int64_t) { return v; });
        for (int64_t i = 0; i < L.span(); ++i) means[i] = sums[i % C] / count;  // tiled
        const scalar_t* m = means.data();
        block_sums(z[k], L, r0, r1, sums.data(), [m](scalar_t v, int64_t c) {
          const scalar_t d = v - m[c];
          return d * d;
        });
        for (int64_t c = 0; c < C; ++c) {
          block_mean[(blk * K + k) * C + c] = static_cast<double>(means[c]);
          block_m2[(blk * K + k) * C + c] = static_cast<double>(sums[c]);
        }
      }
    }
  });
  mean.assign(K * C, 0.0);
  var.assign(K * C, 0.0);
  for (int64_t kc = 0; kc < K * C; ++kc) {
    double n = 0, mu = 0, m2 = 0;
    for (int64_t blk = 0; blk < L.blocks; ++blk) {
      const int64_t r0 = blk * L.row_block;
      const double nb = static_cast<double>((std::min(L.rows, r0 + L.row_block) - r0) * L.inner);
      const double delta = block_mean[blk * K * C + kc] - mu, total = n + nb;
      mu += delta * nb / total;
      m2 += block_m2[blk * K * C + kc] + delta * delta * n * nb / total;
      n = total;
    }
    mean[kc] = mu;
    var[kc] = m2 / n;
  }
}

}  // namespace batchnorm
}  // namespace dmc
