// Fused CUDA kernels of dmc::mixed_sum: out = sum_k w_k y_k, and its backward in one pass over the gradient.
//
// One thread handles `kVec` consecutive elements with vectorised (16-byte) loads and stores when every
// pointer is aligned, and a grid-stride loop covers the tensor. Inputs go in groups of up to kMaxGroup
// pointers per launch (kernel arguments), so any K works; the forward accumulates into the output
// after the first group. The backward writes grad_y_k = w_k g and reduces <g, y_k> per block
// (warp shuffles, then shared memory) in the accumulation type (float; double for double) into a
// (blocks, K) buffer summed afterwards: deterministic, one read of g per group. Weights are read in the
// accumulation type too. Kernels run on the current stream of the inputs' device.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "common.h"

namespace dmc {
namespace {

constexpr int kMaxGroup = 8;
constexpr int kThreads = 256;

template <typename scalar_t>
struct Group {
  const scalar_t* y[kMaxGroup];
  scalar_t* gy[kMaxGroup];
  int n;  // inputs in this group
  int first;  // index of the group's first input in w
};

template <typename scalar_t, int Vec>
struct alignas(sizeof(scalar_t) * Vec) Pack {
  scalar_t v[Vec];
};

template <typename scalar_t, int Vec, typename acc_t = at::opmath_type<scalar_t>>
__global__ void forward_kernel(Group<scalar_t> group, const acc_t* __restrict__ w, scalar_t* __restrict__ out,
                               int64_t n_vec, bool accumulate) {
  using P = Pack<scalar_t, Vec>;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_vec; i += stride) {
    acc_t acc[Vec];
    if (accumulate) {
      const P o = reinterpret_cast<const P*>(out)[i];
#pragma unroll
      for (int v = 0; v < Vec; ++v) acc[v] = static_cast<acc_t>(o.v[v]);
    } else {
#pragma unroll
      for (int v = 0; v < Vec; ++v) acc[v] = 0;
    }
#pragma unroll
    for (int j = 0; j < kMaxGroup; ++j) {
      if (j < group.n) {
        const acc_t wj = w[group.first + j];
        const P y = reinterpret_cast<const P*>(group.y[j])[i];
#pragma unroll
        for (int v = 0; v < Vec; ++v) acc[v] += wj * static_cast<acc_t>(y.v[v]);
      }
    }
    P o;
#pragma unroll
    for (int v = 0; v < Vec; ++v) o.v[v] = static_cast<scalar_t>(acc[v]);
    reinterpret_cast<P*>(out)[i] = o;
  }
}

template <typename scalar_t, int Vec, typename acc_t = at::opmath_type<scalar_t>>
__global__ void backward_kernel(Group<scalar_t> group, const acc_t* __restrict__ w, const scalar_t* __restrict__ g,
                                int64_t n_vec, acc_t* __restrict__ partial, int K) {
  using P = Pack<scalar_t, Vec>;
  acc_t dot[kMaxGroup];
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) dot[j] = 0;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_vec; i += stride) {
    const P gp = reinterpret_cast<const P*>(g)[i];
#pragma unroll
    for (int j = 0; j < kMaxGroup; ++j) {
      if (j < group.n) {
        const acc_t wj = w[group.first + j];
        const P y = reinterpret_cast<const P*>(group.y[j])[i];
        P gy;
#pragma unroll
        for (int v = 0; v < Vec; ++v) {
          const acc_t gv = static_cast<acc_t>(gp.v[v]);
          gy.v[v] = static_cast<scalar_t>(wj * gv);
          dot[j] += gv * static_cast<acc_t>(y.v[v]);
        }
        reinterpret_cast<P*>(group.gy[j])[i] = gy;
      }
    }
  }
  __shared__ acc_t warp_sums[kThreads / 32][kMaxGroup];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) {
    acc_t s = dot[j];
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffff, s, offset);
    if (lane == 0) warp_sums[warp][j] = s;
  }
  __syncthreads();
  if (threadIdx.x < group.n) {
    acc_t s = 0;
    for (int wi = 0; wi < kThreads / 32; ++wi) s += warp_sums[wi][threadIdx.x];
    partial[static_cast<int64_t>(blockIdx.x) * K + group.first + threadIdx.x] = s;
  }
}

bool aligned_for(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename scalar_t>
int vector_width(const std::vector<const void*>& pointers, int64_t n) {
  constexpr int vec = 16 / sizeof(scalar_t);
  if (n % vec != 0) return 1;
  for (const void* p : pointers)
    if (!aligned_for(p, 16)) return 1;
  return vec;
}

int grid_for(int64_t n_vec) {
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n_vec + kThreads - 1) / kThreads, sms * 8)));
}

at::Tensor mixed_sum_cuda(at::TensorList ys_in, const at::Tensor& w) {
  check_inputs(ys_in, w, "dmc::mixed_sum");
  const c10::cuda::CUDAGuard guard(ys_in[0].device());
  auto out = at::empty_like(ys_in[0]);
  const auto ys = with_layout_of(ys_in, out);
  const int64_t K = static_cast<int64_t>(ys.size()), n = out.numel();
  if (n == 0) return out;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "dmc_mixed_sum_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto wa = w.detach().to(out.device(), c10::CppTypeToScalarType<acc_t>::value).contiguous();
    std::vector<const void*> pointers{out.data_ptr()};
    for (const auto& y : ys) pointers.push_back(y.data_ptr());
    const int vec = vector_width<scalar_t>(pointers, n);
    for (int64_t first = 0; first < K; first += kMaxGroup) {
      Group<scalar_t> group{};
      group.n = static_cast<int>(std::min<int64_t>(kMaxGroup, K - first));
      group.first = static_cast<int>(first);
      for (int j = 0; j < group.n; ++j) group.y[j] = ys[first + j].const_data_ptr<scalar_t>();
      const int64_t n_vec = n / vec;
      constexpr int kV = 16 / sizeof(scalar_t);
      if (vec == kV)
        forward_kernel<scalar_t, kV><<<grid_for(n_vec), kThreads, 0, stream>>>(
            group, wa.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), n_vec, first > 0);
      else
        forward_kernel<scalar_t, 1><<<grid_for(n_vec), kThreads, 0, stream>>>(
            group, wa.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(), n_vec, first > 0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

std::tuple<std::vector<at::Tensor>, at::Tensor> mixed_sum_backward_cuda(const at::Tensor& grad_in,
                                                                       at::TensorList ys_in, const at::Tensor& w) {
  check_backward_inputs(grad_in, ys_in, w);
  const c10::cuda::CUDAGuard guard(ys_in[0].device());
  const auto like = at::empty_like(ys_in[0]);
  const auto grad = with_layout_of(grad_in, like);
  const auto ys = with_layout_of(ys_in, like);
  const int64_t K = static_cast<int64_t>(ys.size()), n = like.numel();
  std::vector<at::Tensor> grad_ys;
  for (int64_t k = 0; k < K; ++k) grad_ys.push_back(at::empty_like(like));
  if (n == 0) return {grad_ys, at::zeros_like(w)};
  auto stream = at::cuda::getCurrentCUDAStream();
  at::Tensor partial;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, like.scalar_type(), "dmc_mixed_sum_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const auto wa = w.detach().to(like.device(), acc_type).contiguous();
    std::vector<const void*> pointers{grad.data_ptr()};
    for (int64_t k = 0; k < K; ++k) {
      pointers.push_back(ys[k].data_ptr());
      pointers.push_back(grad_ys[k].data_ptr());
    }
    constexpr int kV = 16 / sizeof(scalar_t);
    const int vec = vector_width<scalar_t>(pointers, n);
    const int64_t n_vec = n / vec;
    const int grid = grid_for(n_vec);
    partial = at::zeros({grid, K}, like.options().dtype(acc_type));
    for (int64_t first = 0; first < K; first += kMaxGroup) {
      Group<scalar_t> group{};
      group.n = static_cast<int>(std::min<int64_t>(kMaxGroup, K - first));
      group.first = static_cast<int>(first);
      for (int j = 0; j < group.n; ++j) {
        group.y[j] = ys[first + j].const_data_ptr<scalar_t>();
        group.gy[j] = grad_ys[first + j].mutable_data_ptr<scalar_t>();
      }
      if (vec == kV)
        backward_kernel<scalar_t, kV><<<grid, kThreads, 0, stream>>>(
            group, wa.const_data_ptr<acc_t>(), grad.const_data_ptr<scalar_t>(), n_vec,
            partial.mutable_data_ptr<acc_t>(), static_cast<int>(K));
      else
        backward_kernel<scalar_t, 1><<<grid, kThreads, 0, stream>>>(
            group, wa.const_data_ptr<acc_t>(), grad.const_data_ptr<scalar_t>(), n_vec,
            partial.mutable_data_ptr<acc_t>(), static_cast<int>(K));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {grad_ys, partial.sum(0, /*keepdim=*/false, at::kDouble).to(w.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CUDA, m) {
  m.impl("mixed_sum", &mixed_sum_cuda);
  m.impl("mixed_sum_backward", &mixed_sum_backward_cuda);
}

}  // namespace dmc
