// Fused CPU kernels of dmc::batchnorm_act: a training-mode BatchNorm(affine=False) followed by ReLU or ReLU6,
//
//   y = act((z - mean) rstd),   rstd = 1 / sqrt(var + eps),
//
// with per-channel batch statistics (biased variance). Eagerly, the batch norm writes its output, the activation
// reads it and writes y, and both keep a tensor for their backward; here the forward makes one pass for the
// statistics and one that writes y, and only z is kept: the backward recomputes t = (z - mean) rstd, masks
// g' = g [t inside the activation's open linear range] (as ReLU's and Hardtanh's backward do), and makes one pass for
// sum(g') and sum(g' (z - mean)) and one that writes
//
//   grad z = rstd (g' - mean(g') - xhat mean(g' xhat)).
//
// Layouts, blocking and the thread-independent sums are those of dmc::batchnorm_mixed_sum (batchnorm_common.h).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "batchnorm_common.h"

namespace dmc {
namespace {

using namespace batchnorm;

// The activation's linear range (lo, hi): ReLU (0, inf), ReLU6 (0, 6).
double upper_bound(c10::string_view activation, const char* op) {
  if (activation == "relu") return std::numeric_limits<double>::infinity();
  if (activation == "relu6") return 6.0;
  TORCH_CHECK(false, op, ": activation must be relu or relu6, got ", std::string(activation));
}

void check(const at::Tensor& z, const char* op) {
  TORCH_CHECK(z.dim() == 4, op, ": the input must be (N, C, H, W), got ", z.sizes());
  TORCH_CHECK(z.scalar_type() == at::kFloat || z.scalar_type() == at::kDouble, op,
              ": float32 or float64 inputs only, got ", z.scalar_type());
  TORCH_CHECK(z.size(0) * z.size(2) * z.size(3) > 1, op,
              ": batch statistics need more than one value per channel, got ", z.sizes());
}

// Whether t lies in the activation's open linear range (0, top), where its derivative is 1; a bitwise `&` (no
// branch), so that the loops below vectorise.
template <typename scalar_t>
inline bool inside(scalar_t t, scalar_t top) {
  return (t > scalar_t(0)) & (t < top);
}

// The activation: t clamped to [0, top]; NaN stays NaN, as in ReLU and ReLU6.
template <typename scalar_t>
inline scalar_t clamp(scalar_t t, scalar_t top) {
  t = t < scalar_t(0) ? scalar_t(0) : t;
  return t > top ? top : t;
}

// y = act(a_c z + b_c) (normalisation's coefficients).
template <typename scalar_t>
void forward_kernel(const Layout& L, const std::vector<double>& mean, const std::vector<double>& var, double eps,
                    double hi, const scalar_t* zp, scalar_t* yp) {
  std::vector<scalar_t> a, b;
  normalisation(mean, var, eps, L, a, b);
  const scalar_t top = static_cast<scalar_t>(hi);
  at::parallel_for(0, L.rows, L.row_block, [&](int64_t r0, int64_t r1) {
    for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
      const scalar_t* zr = zp + at;
      scalar_t* yr = yp + at;
      if (c < 0) {
        const scalar_t* ac = a.data();
        const scalar_t* bc = b.data();
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] = clamp(ac[i] * zr[i] + bc[i], top);
      } else {
        const scalar_t s = a[c], t = b[c];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) yr[i] = clamp(s * zr[i] + t, top);
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batchnorm_act_cpu(const at::Tensor& z_in, double eps,
                                                                 c10::string_view activation) {
  const char* op = "dmc::batchnorm_act";
  check(z_in, op);
  const double hi = upper_bound(activation, op);
  auto y = dense_like(z_in);
  const auto z = with_layout_of(z_in, y);
  const Layout L(y);
  std::vector<double> mean, var;
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "dmc_batchnorm_act_cpu", [&] {
    statistics<scalar_t>({z}, L, mean, var);
    forward_kernel<scalar_t>(L, mean, var, eps, hi, z.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>());
  });
  const auto stats = at::TensorOptions().dtype(y.scalar_type());
  return {y, tensor_of(mean, {L.channels}, stats), tensor_of(var, {L.channels}, stats)};
}

// grad z from g, z and the statistics: pass 1 sums g' and g' (z - mean) per channel (per block, added in double
// in block order), pass 2 writes alpha_c g' + gamma_c z + beta_c.
template <typename scalar_t>
void backward_kernel(const Layout& L, const std::vector<double>& mean, const std::vector<double>& var, double eps,
                     double hi, const scalar_t* gp, const scalar_t* zp, scalar_t* dz) {
  const int64_t C = L.channels;
  std::vector<scalar_t> a, b;
  normalisation(mean, var, eps, L, a, b);
  const auto m = tiled<scalar_t>(mean, L);
  const scalar_t top = static_cast<scalar_t>(hi);
  // pass 1: per block, sum(g') and sum(g' (z - mean)) per channel, added in double in block order
  std::vector<double> s1(L.blocks * C, 0.0), s2(L.blocks * C, 0.0);
  at::parallel_for(0, L.blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<scalar_t> p1(L.span()), p2(L.span());
    for (int64_t blk = first; blk < last; ++blk) {
      std::fill(p1.begin(), p1.end(), scalar_t(0));
      std::fill(p2.begin(), p2.end(), scalar_t(0));
      const int64_t r0 = blk * L.row_block, r1 = std::min(L.rows, r0 + L.row_block);
      for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
        const scalar_t* zr = zp + at;
        const scalar_t* gr = gp + at;
        if (c < 0) {
          const scalar_t* ac = a.data();
          const scalar_t* bc = b.data();
          const scalar_t* mc = m.data();
          scalar_t* q1 = p1.data();
          scalar_t* q2 = p2.data();
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) {
            const scalar_t t = ac[i] * zr[i] + bc[i];
            const scalar_t gi = inside(t, top) ? gr[i] : scalar_t(0);
            q1[i] += gi;
            q2[i] += gi * (zr[i] - mc[i]);
          }
        } else {
          const scalar_t s = a[c], o = b[c], mu = m[c];
          scalar_t t1 = 0, t2 = 0;
#pragma omp simd reduction(+ : t1, t2)
          for (int64_t i = 0; i < n; ++i) {
            const scalar_t t = s * zr[i] + o;
            const scalar_t gi = inside(t, top) ? gr[i] : scalar_t(0);
            t1 += gi;
            t2 += gi * (zr[i] - mu);
          }
          p1[c] += t1;
          p2[c] += t2;
        }
      });
      fold(p1.data(), L);
      fold(p2.data(), L);
      for (int64_t c = 0; c < C; ++c) {
        s1[blk * C + c] = static_cast<double>(p1[c]);
        s2[blk * C + c] = static_cast<double>(p2[c]);
      }
    }
  });
  // grad z = alpha g' + gamma z + beta, per channel
  const double count = static_cast<double>(L.count);
  std::vector<scalar_t> alpha(C), gamma(C), beta(C);
  for (int64_t c = 0; c < C; ++c) {
    double sg = 0, sgz = 0;
    for (int64_t blk = 0; blk < L.blocks; ++blk) {
      sg += s1[blk * C + c];
      sgz += s2[blk * C + c];
    }
    const double rstd = 1.0 / std::sqrt(var[c] + eps);
    const double al = rstd, ga = -rstd * rstd * rstd * sgz / count;
    alpha[c] = static_cast<scalar_t>(al);
    gamma[c] = static_cast<scalar_t>(ga);
    beta[c] = static_cast<scalar_t>(-al * sg / count - ga * mean[c]);
  }
  alpha = tiled<scalar_t>(alpha, L);
  gamma = tiled<scalar_t>(gamma, L);
  beta = tiled<scalar_t>(beta, L);
  // pass 2
  at::parallel_for(0, L.rows, L.row_block, [&](int64_t r0, int64_t r1) {
    for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
      const scalar_t* zr = zp + at;
      const scalar_t* gr = gp + at;
      scalar_t* dr = dz + at;
      if (c < 0) {
        const scalar_t *ac = a.data(), *bc = b.data();
        const scalar_t *al = alpha.data(), *ga = gamma.data(), *be = beta.data();
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          const scalar_t t = ac[i] * zr[i] + bc[i];
          const scalar_t gi = inside(t, top) ? gr[i] : scalar_t(0);
          dr[i] = al[i] * gi + ga[i] * zr[i] + be[i];
        }
      } else {
        const scalar_t s = a[c], o = b[c], al = alpha[c], ga = gamma[c], be = beta[c];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          const scalar_t t = s * zr[i] + o;
          const scalar_t gi = inside(t, top) ? gr[i] : scalar_t(0);
          dr[i] = al * gi + ga * zr[i] + be;
        }
      }
    });
  });
}

at::Tensor batchnorm_act_backward_cpu(const at::Tensor& grad_in, const at::Tensor& z_in, const at::Tensor& mean_in,
                                      const at::Tensor& var_in, double eps, c10::string_view activation) {
  const char* op = "dmc::batchnorm_act_backward";
  check(z_in, op);
  const double hi = upper_bound(activation, op);
  TORCH_CHECK(grad_in.sizes() == z_in.sizes() && grad_in.scalar_type() == z_in.scalar_type(), op,
              ": the gradient must match the input's shape and dtype");
  const int64_t C = z_in.size(1);
  TORCH_CHECK(mean_in.numel() == C && var_in.numel() == C, op, ": expected ", C, " statistics per tensor");
  auto grad_z = dense_like(z_in);
  const auto z = with_layout_of(z_in, grad_z);
  const auto g = with_layout_of(grad_in, grad_z);
  const Layout L(grad_z);
  const auto mean = to_doubles(mean_in), var = to_doubles(var_in);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "dmc_batchnorm_act_backward_cpu", [&] {
    backward_kernel<scalar_t>(L, mean, var, eps, hi, g.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(),
                              grad_z.mutable_data_ptr<scalar_t>());
  });
  return grad_z;
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("batchnorm_act", &batchnorm_act_cpu);
  m.impl("batchnorm_act_backward", &batchnorm_act_backward_cpu);
}

}  // namespace dmc
