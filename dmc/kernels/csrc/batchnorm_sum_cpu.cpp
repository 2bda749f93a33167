// Fused CPU kernels of dmc::batchnorm_mixed_sum: a mixed edge's weighted sum with the final training-mode
// BatchNorm(affine=False) of its candidates folded in,
//
//   out = sum_k w_k (z_k - mean_k) rstd_k + sum_j v_j y_j,   rstd_k = 1 / sqrt(var_k + eps),
//
// with per-channel batch statistics mean_k, var_k (biased) of each z_k. The normalised candidate outputs are
// never written: the forward makes one pass for the statistics and one for the sum; the backward one pass for
// the per-channel sums sum(g) and sum(g (z_k - mean_k)) and one that writes every input gradient,
//
//   grad z_k = w_k rstd_k (g - mean(g) - xhat_k mean(g xhat_k)),   grad w_k = sum(g xhat_k),
//
// (the batch-norm backward with dxhat = w_k g), grad y_j = v_j g and grad v_j = <g, y_j>.
//
// Tensors are (N, C, H, W), all in one dense layout: contiguous, walked as [N][C][H*W], or channels-last, walked
// as [N*H*W][C] in runs of several rows (batchnorm_common.h). Rows are split into fixed blocks; within a block, sums
// accumulate in the input's own precision (full-width vectors), and the blocks' partial sums are added in double, in
// block order, so the results do not depend on the number of threads.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "batchnorm_common.h"

namespace dmc {
namespace {

using namespace batchnorm;

void check(at::TensorList zs, at::TensorList ys, const at::Tensor& w, const char* op) {
  TORCH_CHECK(!zs.empty(), op, ": needs at least one input to normalise");
  std::vector<at::Tensor> all(zs.begin(), zs.end());
  all.insert(all.end(), ys.begin(), ys.end());
  check_inputs(all, w, op);
  TORCH_CHECK(zs[0].dim() == 4, op, ": inputs must be (N, C, H, W), got ", zs[0].sizes());
  TORCH_CHECK(zs[0].size(0) * zs[0].size(2) * zs[0].size(3) > 1, op,
              ": batch statistics need more than one value per channel, got ", zs[0].sizes());
}

// out = sum_k a_kc z_k + sum_j v_j y_j + b_c, run by run.
template <typename scalar_t>
void weighted_rows(const std::vector<const scalar_t*>& z, const std::vector<double>& a,
                   const std::vector<const scalar_t*>& y, const std::vector<double>& v, const std::vector<double>& b,
                   const Layout& L, scalar_t* out) {
  const int64_t K = static_cast<int64_t>(z.size()), J = static_cast<int64_t>(y.size()), S = L.span();
  const auto ak = tiled<scalar_t>(a, L, K);
  const auto bk = tiled<scalar_t>(b, L);
  const std::vector<scalar_t> vk(v.begin(), v.end());
  at::parallel_for(0, L.rows, L.row_block, [&](int64_t r0, int64_t r1) {
    for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
      scalar_t* o = out + at;
      if (c < 0) {
        const scalar_t* bc = bk.data();
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = bc[i];
        for (int64_t k = 0; k < K; ++k) {
          const scalar_t* zr = z[k] + at;
          const scalar_t* ac = ak.data() + k * S;
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] += ac[i] * zr[i];
        }
      } else {
        const scalar_t bc = bk[c];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = bc;
        for (int64_t k = 0; k < K; ++k) {
          const scalar_t* zr = z[k] + at;
          const scalar_t akc = ak[k * S + c];
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) o[i] += akc * zr[i];
        }
      }
      for (int64_t j = 0; j < J; ++j) {
        const scalar_t* yr = y[j] + at;
        const scalar_t vj = vk[j];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] += vj * yr[i];
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batchnorm_mixed_sum_cpu(at::TensorList zs_in, at::TensorList ys_in,
                                                                       const at::Tensor& w, double eps) {
  check(zs_in, ys_in, w, "dmc::batchnorm_mixed_sum");
  auto out = dense_like(zs_in[0]);
  const auto zs = with_layout_of(zs_in, out);
  const auto ys = with_layout_of(ys_in, out);
  const Layout L(out);
  const int64_t K = static_cast<int64_t>(zs.size()), J = static_cast<int64_t>(ys.size()), C = L.channels;
  const auto wd = to_doubles(w);
  std::vector<double> mean, var;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "dmc_batchnorm_mixed_sum_cpu", [&] {
    statistics<scalar_t>(zs, L, mean, var);
    std::vector<double> a(K * C), b(C, 0.0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c) {
        a[k * C + c] = wd[k] / std::sqrt(var[k * C + c] + eps);
        b[c] -= a[k * C + c] * mean[k * C + c];
      }
    std::vector<double> v(wd.begin() + K, wd.begin() + K + J);
    weighted_rows<scalar_t>(pointers<scalar_t>(zs), a, pointers<scalar_t>(ys), v, b, L,
                            out.mutable_data_ptr<scalar_t>());
  });
  const auto stats = at::TensorOptions().dtype(out.scalar_type());
  return {out, tensor_of(mean, {K, C}, stats), tensor_of(var, {K, C}, stats)};
}

// Per-block partial sums of the backward: sum(g) per channel, sum(g (z_k - mean_kc)) per (k, c), <g, y_j>.
template <typename scalar_t>
void gradient_sums(const scalar_t* g, const std::vector<const scalar_t*>& z, const std::vector<double>& mean,
                   const std::vector<const scalar_t*>& y, const Layout& L, std::vector<double>& sg,
                   std::vector<double>& gz, std::vector<double>& gy) {
  const int64_t K = static_cast<int64_t>(z.size()), J = static_cast<int64_t>(y.size());
  const int64_t C = L.channels, I = L.inner, S = L.span();
  sg.assign(L.blocks * C, 0.0);
  gz.assign(L.blocks * K * C, 0.0);
  gy.assign(L.blocks * J, 0.0);
  const auto mean_s = tiled<scalar_t>(mean, L, K);
  at::parallel_for(0, L.blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<scalar_t> part(S);
    scalar_t* acc = part.data();
    // sums over one block's rows (in scalar_t) into out[c] (double); term(element, run index or channel)
    auto per_channel = [&](int64_t r0, int64_t r1, auto term, double* out) {
      std::fill(part.begin(), part.end(), scalar_t(0));
      for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
        if (c < 0) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) acc[i] += term(at + i, i);
        } else {
          scalar_t t = 0;
#pragma omp simd reduction(+ : t)
          for (int64_t i = 0; i < n; ++i) t += term(at + i, c);
          acc[c] += t;
        }
      });
      fold(acc, L);
      for (int64_t c = 0; c < C; ++c) out[c] = static_cast<double>(acc[c]);
    };
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t r0 = blk * L.row_block, r1 = std::min(L.rows, r0 + L.row_block);
      const int64_t begin = r0 * C * I, end = r1 * C * I;
      per_channel(r0, r1, [&](int64_t i, int64_t) { return g[i]; }, sg.data() + blk * C);
      for (int64_t k = 0; k < K; ++k) {
        const scalar_t* zk = z[k];
        const scalar_t* m = mean_s.data() + k * S;
        per_channel(r0, r1, [&](int64_t i, int64_t c) { return g[i] * (zk[i] - m[c]); },
                    gz.data() + (blk * K + k) * C);
      }
      for (int64_t j = 0; j < J; ++j) {
        scalar_t t = 0;
        const scalar_t* yj = y[j];
#pragma omp simd reduction(+ : t)
        for (int64_t i = begin; i < end; ++i) t += g[i] * yj[i];
        gy[blk * J + j] = static_cast<double>(t);
      }
    }
  });
}

// grad z_k = alpha_kc g + gamma_kc z_k + beta_kc and grad y_j = v_j g, one tensor at a time through a chunk of
// rows (three streams at once), run by run.
template <typename scalar_t>
void write_gradients(const scalar_t* g, const std::vector<const scalar_t*>& z, const std::vector<double>& alpha,
                     const std::vector<double>& gamma, const std::vector<double>& beta, const std::vector<double>& v,
                     const Layout& L, const std::vector<scalar_t*>& grad_z, const std::vector<scalar_t*>& grad_y) {
  const int64_t K = static_cast<int64_t>(z.size()), J = static_cast<int64_t>(grad_y.size()), S = L.span();
  const int64_t C = L.channels, I = L.inner;
  const auto al = tiled<scalar_t>(alpha, L, K), ga = tiled<scalar_t>(gamma, L, K);
  const auto be = tiled<scalar_t>(beta, L, K);
  const std::vector<scalar_t> vj(v.begin(), v.end());
  at::parallel_for(0, L.rows, L.row_block, [&](int64_t r0, int64_t r1) {
    for (int64_t k = 0; k < K; ++k) {
      const scalar_t* zk = z[k];
      scalar_t* dk = grad_z[k];
      const scalar_t *a = al.data() + k * S, *m = ga.data() + k * S, *b = be.data() + k * S;
      for_runs(L, r0, r1, [&](int64_t at, int64_t n, int64_t c) {
        const scalar_t* gr = g + at;
        const scalar_t* zr = zk + at;
        scalar_t* dz = dk + at;
        if (c < 0) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dz[i] = a[i] * gr[i] + m[i] * zr[i] + b[i];
        } else {
          const scalar_t ac = a[c], mc = m[c], bc = b[c];
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) dz[i] = ac * gr[i] + mc * zr[i] + bc;
        }
      });
    }
    const int64_t begin = r0 * C * I, end = r1 * C * I;
    for (int64_t j = 0; j < J; ++j) {
      scalar_t* dy = grad_y[j];
      const scalar_t s = vj[j];
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dy[i] = s * g[i];
    }
  });
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> batchnorm_mixed_sum_backward_cpu(
    const at::Tensor& grad_in, at::TensorList zs_in, at::TensorList ys_in, const at::Tensor& w,
    const at::Tensor& mean_in, const at::Tensor& var_in, double eps) {
  const char* op = "dmc::batchnorm_mixed_sum_backward";
  check(zs_in, ys_in, w, op);
  TORCH_CHECK(grad_in.sizes() == zs_in[0].sizes() && grad_in.scalar_type() == zs_in[0].scalar_type(), op,
              ": the gradient must match the inputs' shape and dtype");
  const int64_t K = static_cast<int64_t>(zs_in.size()), J = static_cast<int64_t>(ys_in.size());
  const int64_t C = zs_in[0].size(1);
  TORCH_CHECK(mean_in.numel() == K * C && var_in.numel() == K * C, op, ": expected (", K, ", ", C,
              ") statistics");
  const auto like = dense_like(zs_in[0]);
  const auto grad = with_layout_of(grad_in, like);
  const auto zs = with_layout_of(zs_in, like);
  const auto ys = with_layout_of(ys_in, like);
  const Layout L(like);
  const auto wd = to_doubles(w), mean = to_doubles(mean_in), var = to_doubles(var_in);
  std::vector<at::Tensor> grad_zs, grad_ys;
  for (int64_t k = 0; k < K; ++k) grad_zs.push_back(at::empty_like(like));
  for (int64_t j = 0; j < J; ++j) grad_ys.push_back(at::empty_like(like));
  std::vector<double> grad_w(K + J, 0.0);
  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "dmc_batchnorm_mixed_sum_backward_cpu", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const auto z = pointers<scalar_t>(zs);
    std::vector<double> sg_part, gz_part, gy_part;
    gradient_sums<scalar_t>(g, z, mean, pointers<scalar_t>(ys), L, sg_part, gz_part, gy_part);
    std::vector<double> sg(C, 0.0), gz(K * C, 0.0);
    for (int64_t blk = 0; blk < L.blocks; ++blk) {
      for (int64_t c = 0; c < C; ++c) sg[c] += sg_part[blk * C + c];
      for (int64_t kc = 0; kc < K * C; ++kc) gz[kc] += gz_part[blk * K * C + kc];
      for (int64_t j = 0; j < J; ++j) grad_w[K + j] += gy_part[blk * J + j];
    }
    const double n = static_cast<double>(L.count);
    std::vector<double> alpha(K * C), gamma(K * C), beta(K * C);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t kc = k * C + c;
        const double rstd = 1.0 / std::sqrt(var[kc] + eps);
        const double A = rstd * gz[kc];  // sum(g xhat)
        grad_w[k] += A;
        alpha[kc] = wd[k] * rstd;
        gamma[kc] = -wd[k] * rstd * rstd * A / n;
        beta[kc] = -alpha[kc] * sg[c] / n - gamma[kc] * mean[kc];
      }
    std::vector<double> v(wd.begin() + K, wd.end());
    std::vector<scalar_t*> dz, dy;
    for (auto& t : grad_zs) dz.push_back(t.mutable_data_ptr<scalar_t>());
    for (auto& t : grad_ys) dy.push_back(t.mutable_data_ptr<scalar_t>());
    write_gradients<scalar_t>(g, z, alpha, gamma, beta, v, L, dz, dy);
  });
  return {grad_zs, grad_ys, tensor_of(grad_w, {K + J}, w.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("batchnorm_mixed_sum", &batchnorm_mixed_sum_cpu);
  m.impl("batchnorm_mixed_sum_backward", &batchnorm_mixed_sum_backward_cpu);
}

}  // namespace dmc
