// Fused CPU kernels of dmc::mixed_sum: out = sum_k w_k y_k, and its backward in one pass over the gradient.
//
// Tensors are walked in blocks small enough to stay in L2, so each input is read from memory once:
// the forward accumulates a block of `out` over all K inputs, four inputs per pass; the backward
// keeps a block of the gradient in cache and, four inputs per pass, writes grad_y_k = w_k g and adds
// up <g, y_k> for that block.
// Blocks run in parallel (at::parallel_for, OpenMP); the per-block partial dot products are summed in
// block order, so grad_w does not depend on the number of threads.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>

#include "common.h"

namespace dmc {
namespace {

constexpr int64_t kBlock = 16384;  // elements per block: a float block of every stream fits in L2
constexpr int kGroup = 4;          // inputs per pass over a block: fewer passes, more streams in flight

// acc[i] (=, or += unless first) sum_{j<N} w[j] * y[j][i] for one block.
template <int N, typename scalar_t, typename acc_t>
inline void accumulate(acc_t* acc, const scalar_t* const* y, const acc_t* w, int64_t b, int64_t len, bool first) {
  const scalar_t* y0 = y[0] + b;
  const scalar_t* y1 = y[N > 1 ? 1 : 0] + b;
  const scalar_t* y2 = y[N > 2 ? 2 : 0] + b;
  const scalar_t* y3 = y[N > 3 ? 3 : 0] + b;
  auto term = [&](int64_t i) {
    acc_t s = w[0] * static_cast<acc_t>(y0[i]);
    if constexpr (N > 1) s += w[1] * static_cast<acc_t>(y1[i]);
    if constexpr (N > 2) s += w[2] * static_cast<acc_t>(y2[i]);
    if constexpr (N > 3) s += w[3] * static_cast<acc_t>(y3[i]);
    return s;
  };
  if (first) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] = term(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) acc[i] += term(i);
  }
}

template <typename scalar_t, typename acc_t>
void accumulate_any(int n, acc_t* acc, const scalar_t* const* y, const acc_t* w, int64_t b, int64_t len,
                    bool first) {
  switch (n) {
    case 1: return accumulate<1>(acc, y, w, b, len, first);
    case 2: return accumulate<2>(acc, y, w, b, len, first);
    case 3: return accumulate<3>(acc, y, w, b, len, first);
    default: return accumulate<4>(acc, y, w, b, len, first);
  }
}

// gy[j][i] = w[j] * g[i] and dot[j] = sum_i g[i] * y[j][i] over one block, for j < N.
template <int N, typename scalar_t, typename acc_t>
inline void backward_group(const scalar_t* g, const scalar_t* const* y, scalar_t* const* gy, const acc_t* w,
                           int64_t b, int64_t len, acc_t* dot) {
  const scalar_t* y0 = y[0] + b;
  const scalar_t* y1 = y[N > 1 ? 1 : 0] + b;
  const scalar_t* y2 = y[N > 2 ? 2 : 0] + b;
  const scalar_t* y3 = y[N > 3 ? 3 : 0] + b;
  scalar_t* g0 = gy[0] + b;
  scalar_t* g1 = gy[N > 1 ? 1 : 0] + b;
  scalar_t* g2 = gy[N > 2 ? 2 : 0] + b;
  scalar_t* g3 = gy[N > 3 ? 3 : 0] + b;
  acc_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
  for (int64_t i = 0; i < len; ++i) {
    const acc_t gi = static_cast<acc_t>(g[b + i]);
    g0[i] = static_cast<scalar_t>(w[0] * gi);
    d0 += gi * static_cast<acc_t>(y0[i]);
    if constexpr (N > 1) {
      g1[i] = static_cast<scalar_t>(w[1] * gi);
      d1 += gi * static_cast<acc_t>(y1[i]);
    }
    if constexpr (N > 2) {
      g2[i] = static_cast<scalar_t>(w[2] * gi);
      d2 += gi * static_cast<acc_t>(y2[i]);
    }
    if constexpr (N > 3) {
      g3[i] = static_cast<scalar_t>(w[3] * gi);
      d3 += gi * static_cast<acc_t>(y3[i]);
    }
  }
  const acc_t d[4] = {d0, d1, d2, d3};
  for (int j = 0; j < N; ++j) dot[j] = d[j];
}

template <typename scalar_t, typename acc_t>
void backward_any(int n, const scalar_t* g, const scalar_t* const* y, scalar_t* const* gy, const acc_t* w,
                  int64_t b, int64_t len, acc_t* dot) {
  switch (n) {
    case 1: return backward_group<1>(g, y, gy, w, b, len, dot);
    case 2: return backward_group<2>(g, y, gy, w, b, len, dot);
    case 3: return backward_group<3>(g, y, gy, w, b, len, dot);
    default: return backward_group<4>(g, y, gy, w, b, len, dot);
  }
}

template <typename scalar_t>
void forward_kernel(const std::vector<at::Tensor>& ys, const std::vector<double>& wd, at::Tensor& out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t K = static_cast<int64_t>(ys.size()), n = out.numel();
  std::vector<const scalar_t*> src(K);
  std::vector<acc_t> wk(K);
  for (int64_t k = 0; k < K; ++k) {
    src[k] = ys[k].const_data_ptr<scalar_t>();
    wk[k] = static_cast<acc_t>(wd[k]);
  }
  scalar_t* dst = out.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, n, kBlock, [&](int64_t begin, int64_t end) {
    // float accumulates straight into the output; reduced precision types through a float block
    std::vector<acc_t> buffer(std::is_same_v<scalar_t, acc_t> ? 0 : kBlock);
    for (int64_t b = begin; b < end; b += kBlock) {
      const int64_t len = std::min(end - b, kBlock);
      acc_t* acc;
      if constexpr (std::is_same_v<scalar_t, acc_t>) acc = dst + b;
      else acc = buffer.data();
      for (int64_t k = 0; k < K; k += kGroup)
        accumulate_any(static_cast<int>(std::min<int64_t>(kGroup, K - k)), acc, src.data() + k, wk.data() + k, b,
                       len, k == 0);
      if constexpr (!std::is_same_v<scalar_t, acc_t>)
        for (int64_t i = 0; i < len; ++i) dst[b + i] = static_cast<scalar_t>(acc[i]);
    }
  });
}

// Writes grad_ys[k] = w_k g and partial[blk * K + k] = <g, y_k> over block blk.
template <typename scalar_t>
void backward_kernel(const at::Tensor& grad, const std::vector<at::Tensor>& ys, const std::vector<double>& wd,
                     std::vector<at::Tensor>& grad_ys, std::vector<double>& partial) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t K = static_cast<int64_t>(ys.size()), n = grad.numel();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<const scalar_t*> src(K);
  std::vector<scalar_t*> dst(K);
  std::vector<acc_t> wk(K);
  for (int64_t k = 0; k < K; ++k) {
    src[k] = ys[k].const_data_ptr<scalar_t>();
    dst[k] = grad_ys[k].mutable_data_ptr<scalar_t>();
    wk[k] = static_cast<acc_t>(wd[k]);
  }
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    acc_t dot[kGroup];
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t b = blk * kBlock, len = std::min(n - b, kBlock);
      for (int64_t k = 0; k < K; k += kGroup) {
        const int group = static_cast<int>(std::min<int64_t>(kGroup, K - k));
        backward_any(group, g, src.data() + k, dst.data() + k, wk.data() + k, b, len, dot);
        for (int j = 0; j < group; ++j) partial[blk * K + k + j] = static_cast<double>(dot[j]);
      }
    }
  });
}

at::Tensor mixed_sum_cpu(at::TensorList ys_in, const at::Tensor& w) {
  check_inputs(ys_in, w, "dmc::mixed_sum");
  auto out = at::empty_like(ys_in[0]);  // keeps a dense layout (e.g. channels_last) as it is
  const auto ys = with_layout_of(ys_in, out);
  const auto wd = to_doubles(w);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "dmc_mixed_sum_cpu",
                                  [&] { forward_kernel<scalar_t>(ys, wd, out); });
  return out;
}

std::tuple<std::vector<at::Tensor>, at::Tensor> mixed_sum_backward_cpu(const at::Tensor& grad_in,
                                                                      at::TensorList ys_in, const at::Tensor& w) {
  check_backward_inputs(grad_in, ys_in, w);
  const auto like = at::empty_like(ys_in[0]);
  const auto grad = with_layout_of(grad_in, like);
  const auto ys = with_layout_of(ys_in, like);
  const auto wd = to_doubles(w);
  const int64_t K = static_cast<int64_t>(ys.size()), blocks = (like.numel() + kBlock - 1) / kBlock;
  std::vector<at::Tensor> grad_ys;
  for (int64_t k = 0; k < K; ++k) grad_ys.push_back(at::empty_like(like));
  std::vector<double> partial(static_cast<size_t>(blocks * K), 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, like.scalar_type(), "dmc_mixed_sum_backward_cpu",
                                  [&] { backward_kernel<scalar_t>(grad, ys, wd, grad_ys, partial); });

  auto grad_w = at::zeros({K}, at::TensorOptions().dtype(at::kDouble));
  double* gw = grad_w.data_ptr<double>();
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t k = 0; k < K; ++k) gw[k] += partial[blk * K + k];
  return {grad_ys, grad_w.to(w.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("mixed_sum", &mixed_sum_cpu);
  m.impl("mixed_sum_backward", &mixed_sum_backward_cpu);
}

}  // namespace dmc
