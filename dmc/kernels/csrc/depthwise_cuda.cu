// Fused CUDA kernels of dmc::depthwise_conv2d: y = depthwise_conv(relu(x) or x, w), square kernel, no bias,
// and its backward (input and weight gradients) without ever storing relu(x).
//
// Every kernel works on channels-last (N, H, W, C) data with the channel as the fastest thread index, so a warp
// reads and writes contiguous runs of channels. The forward has one thread per output element and the input
// gradient one thread per input element, in gather form (each tap (kh, kw) reaches the output pixel whose
// oh * stride = ih + padding - kh * dilation, if that divides and lies in range): every element is written by
// one thread, no atomics. The weight gradient is summed per (chunk of kChunkRows output rows, tap, channel) into
// a (chunks, K * K * C) buffer, then a second kernel adds the chunks in order: no float atomics, and the result
// does not depend on the launch configuration. Sums run in the accumulation type (float for half and bfloat16),
// weights are read in it too. ReLU is applied where x is read (forward, weight gradient) and as the mask x > 0 on
// the input gradient. Grid-stride loops with 64-bit indices; kernels run on the current stream of x's device.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "depthwise_common.h"

namespace dmc {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunkRows = 8;  // output rows per weight-gradient partial

template <bool Relu, typename acc_t>
__device__ __forceinline__ acc_t input_value(acc_t v) {
  if constexpr (Relu) return v > acc_t(0) ? v : acc_t(0);
  return v;
}

template <typename scalar_t, bool Relu, typename acc_t = at::opmath_type<scalar_t>>
__global__ void forward_kernel(DepthwiseShape s, const scalar_t* __restrict__ x, const acc_t* __restrict__ wt,
                               scalar_t* __restrict__ y, int64_t total) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += step) {
    const int64_t c = i % s.C;
    int64_t r = i / s.C;
    const int64_t ow = r % s.Wo;
    r /= s.Wo;
    const int64_t oh = r % s.Ho, n = r / s.Ho;
    const int64_t ih0 = oh * s.stride - s.padding, iw0 = ow * s.stride - s.padding;
    acc_t acc = 0;
    for (int64_t kh = 0; kh < s.K; ++kh) {
      const int64_t ih = ih0 + kh * s.dilation;
      if (ih < 0 || ih >= s.H) continue;
      const scalar_t* row = x + (n * s.H + ih) * s.W * s.C + c;
      for (int64_t kw = 0; kw < s.K; ++kw) {
        const int64_t iw = iw0 + kw * s.dilation;
        if (iw < 0 || iw >= s.W) continue;
        acc += wt[(kh * s.K + kw) * s.C + c] * input_value<Relu>(static_cast<acc_t>(row[iw * s.C]));
      }
    }
    y[i] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t, bool Relu, typename acc_t = at::opmath_type<scalar_t>>
__global__ void grad_input_kernel(DepthwiseShape s, const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                  const acc_t* __restrict__ wt, scalar_t* __restrict__ gx, int64_t total) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += step) {
    if constexpr (Relu) {
      // relu's gradient is zero here: skip the taps (and their reads of g) altogether
      if (!(static_cast<acc_t>(x[i]) > acc_t(0))) {
        gx[i] = scalar_t(0);
        continue;
      }
    }
    const int64_t c = i % s.C;
    int64_t r = i / s.C;
    const int64_t iw = r % s.W;
    r /= s.W;
    const int64_t ih = r % s.H, n = r / s.H;
    acc_t acc = 0;
    for (int64_t kh = 0; kh < s.K; ++kh) {
      const int64_t oh_s = ih + s.padding - kh * s.dilation;
      if (oh_s < 0 || oh_s % s.stride != 0) continue;
      const int64_t oh = oh_s / s.stride;
      if (oh >= s.Ho) continue;
      const scalar_t* row = g + (n * s.Ho + oh) * s.Wo * s.C + c;
      for (int64_t kw = 0; kw < s.K; ++kw) {
        const int64_t ow_s = iw + s.padding - kw * s.dilation;
        if (ow_s < 0 || ow_s % s.stride != 0) continue;
        const int64_t ow = ow_s / s.stride;
        if (ow >= s.Wo) continue;
        acc += wt[(kh * s.K + kw) * s.C + c] * static_cast<acc_t>(row[ow * s.C]);
      }
    }
    gx[i] = static_cast<scalar_t>(acc);
  }
}

// partial[chunk, (kh * K + kw) * C + c] = the sum over the chunk's output rows (n, oh) and columns ow of
// g[n, oh, ow, c] * input_value(x[n, ih, iw, c]) through tap (kh, kw).
template <typename scalar_t, bool Relu, typename acc_t = at::opmath_type<scalar_t>>
__global__ void grad_weight_partial_kernel(DepthwiseShape s, const scalar_t* __restrict__ g,
                                           const scalar_t* __restrict__ x, acc_t* __restrict__ partial,
                                           int64_t total) {
  const int64_t taps = s.K * s.K, rows = s.N * s.Ho;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total; i += step) {
    const int64_t c = i % s.C;
    const int64_t r = i / s.C;
    const int64_t tap = r % taps, chunk = r / taps;
    const int64_t kh = tap / s.K, kw = tap % s.K;
    // the output columns [lo, hi) whose input column iw = ow * stride + shift lies in [0, W)
    const int64_t shift = kw * s.dilation - s.padding;
    const int64_t lo = shift >= 0 ? 0 : (-shift + s.stride - 1) / s.stride;
    const int64_t hi = s.W - 1 - shift < 0 ? 0 : min(s.Wo, (s.W - 1 - shift) / s.stride + 1);
    const int64_t r1 = min(rows, (chunk + 1) * kChunkRows);
    acc_t acc = 0;
    for (int64_t row = chunk * kChunkRows; row < r1; ++row) {
      const int64_t n = row / s.Ho, oh = row % s.Ho;
      const int64_t ih = oh * s.stride - s.padding + kh * s.dilation;
      if (ih < 0 || ih >= s.H) continue;
      const scalar_t* gp = g + (n * s.Ho + oh) * s.Wo * s.C + c;
      const scalar_t* xp = x + (n * s.H + ih) * s.W * s.C + c;
      for (int64_t ow = lo; ow < hi; ++ow)
        acc += static_cast<acc_t>(gp[ow * s.C]) *
               input_value<Relu>(static_cast<acc_t>(xp[(ow * s.stride + shift) * s.C]));
    }
    partial[i] = acc;
  }
}

// out[i] = the sum of partial[chunk, i] over the chunks, in chunk order.
template <typename acc_t>
__global__ void sum_chunks_kernel(const acc_t* __restrict__ partial, acc_t* __restrict__ out, int64_t chunks,
                                  int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += step) {
    acc_t acc = 0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) acc += partial[chunk * n + i];
    out[i] = acc;
  }
}

int grid_for(int64_t n) {
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, sms * 8)));
}

// ``activated`` (relu(x) computed by the caller) is not needed: the kernel applies the ReLU as it reads x.
at::Tensor depthwise_conv2d_cuda(const at::Tensor& x_in, const at::Tensor& w, int64_t stride, int64_t padding,
                                 int64_t dilation, bool relu, const std::optional<at::Tensor>& /*activated*/) {
  const auto s = depthwise_shape(x_in, w, stride, padding, dilation, "dmc::depthwise_conv2d");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = channels_last(x_in);
  auto y = at::empty({s.N, s.C, s.Ho, s.Wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t total = y.numel();
  if (total == 0) return like_input(y, x_in);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dmc_depthwise_conv2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto wt = taps_by_channel(w).to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    if (relu)
      forward_kernel<scalar_t, true><<<grid_for(total), kThreads, 0, stream>>>(
          s, x.const_data_ptr<scalar_t>(), wt.const_data_ptr<acc_t>(), y.mutable_data_ptr<scalar_t>(), total);
    else
      forward_kernel<scalar_t, false><<<grid_for(total), kThreads, 0, stream>>>(
          s, x.const_data_ptr<scalar_t>(), wt.const_data_ptr<acc_t>(), y.mutable_data_ptr<scalar_t>(), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return like_input(y, x_in);
}

std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                                   const at::Tensor& w, int64_t stride,
                                                                   int64_t padding, int64_t dilation, bool relu,
                                                                   bool need_input, bool need_weight) {
  const auto s = depthwise_shape(x_in, w, stride, padding, dilation, "dmc::depthwise_conv2d_backward");
  check_grad(grad_in, s, x_in);
  TORCH_CHECK(grad_in.device() == x_in.device(),
              "dmc::depthwise_conv2d_backward: the gradient must be on x's device, got ", grad_in.device());
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = channels_last(x_in);
  const auto g = channels_last(grad_in);
  at::Tensor grad_x = at::empty({0}, x.options()), grad_w = at::empty({0}, w.options());
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dmc_depthwise_conv2d_backward_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    if (need_input) {
      grad_x = at::empty_like(x);
      const int64_t total = grad_x.numel();
      if (total > 0) {
        const auto wt = taps_by_channel(w).to(acc_type).contiguous();
        if (relu)
          grad_input_kernel<scalar_t, true><<<grid_for(total), kThreads, 0, stream>>>(
              s, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), wt.const_data_ptr<acc_t>(),
              grad_x.mutable_data_ptr<scalar_t>(), total);
        else
          grad_input_kernel<scalar_t, false><<<grid_for(total), kThreads, 0, stream>>>(
              s, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), wt.const_data_ptr<acc_t>(),
              grad_x.mutable_data_ptr<scalar_t>(), total);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      grad_x = like_input(grad_x, x_in);
    }
    if (need_weight) {
      const int64_t taps = s.K * s.K * s.C;
      const int64_t chunks = (s.N * s.Ho + kChunkRows - 1) / kChunkRows;
      auto total = at::empty({s.K * s.K, s.C}, x.options().dtype(acc_type));
      if (taps > 0) {
        auto partial = at::empty({chunks, taps}, x.options().dtype(acc_type));
        const int64_t n_partial = chunks * taps;
        if (n_partial > 0) {
          if (relu)
            grad_weight_partial_kernel<scalar_t, true><<<grid_for(n_partial), kThreads, 0, stream>>>(
                s, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), partial.mutable_data_ptr<acc_t>(),
                n_partial);
          else
            grad_weight_partial_kernel<scalar_t, false><<<grid_for(n_partial), kThreads, 0, stream>>>(
                s, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), partial.mutable_data_ptr<acc_t>(),
                n_partial);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
        sum_chunks_kernel<acc_t><<<grid_for(taps), kThreads, 0, stream>>>(
            partial.const_data_ptr<acc_t>(), total.mutable_data_ptr<acc_t>(), chunks, taps);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      grad_w = weight_from_taps(total, w);
    }
  });
  return {grad_x, grad_w};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CUDA, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cuda);
  m.impl("depthwise_conv2d_backward", &depthwise_conv2d_backward_cuda);
}

}  // namespace dmc
