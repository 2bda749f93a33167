// Shape checks and layout helpers shared by the CPU and CUDA kernels of dmc::depthwise_conv2d.
#pragma once

#include <ATen/ATen.h>

#include "common.h"

namespace dmc {

// A depthwise convolution with a square K x K kernel, one filter per channel, no bias.
struct DepthwiseShape {
  int64_t N, C, H, W, K, Ho, Wo, stride, padding, dilation;
};

inline DepthwiseShape depthwise_shape(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                                      int64_t dilation, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be (N, C, H, W), got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": x must be floating point");
  TORCH_CHECK(w.dim() == 4 && w.size(0) == x.size(1) && w.size(1) == 1 && w.size(2) == w.size(3), op,
              ": the weight must be (C, 1, K, K) for C = ", x.size(1), " channels, got shape ", w.sizes());
  TORCH_CHECK(w.scalar_type() == x.scalar_type() && w.device() == x.device(), op,
              ": x and the weight differ in dtype or device");
  TORCH_CHECK(stride >= 1 && dilation >= 1 && padding >= 0, op, ": needs stride >= 1, dilation >= 1, padding >= 0");
  DepthwiseShape s{x.size(0), x.size(1), x.size(2), x.size(3), w.size(2), 0, 0, stride, padding, dilation};
  s.Ho = (s.H + 2 * padding - dilation * (s.K - 1) - 1) / stride + 1;
  s.Wo = (s.W + 2 * padding - dilation * (s.K - 1) - 1) / stride + 1;
  TORCH_CHECK(s.Ho > 0 && s.Wo > 0, op, ": the input (", s.H, "x", s.W, ") is smaller than the kernel's reach");
  return s;
}

inline void check_grad(const at::Tensor& grad, const DepthwiseShape& s, const at::Tensor& x) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == s.N && grad.size(1) == s.C && grad.size(2) == s.Ho &&
                  grad.size(3) == s.Wo && grad.scalar_type() == x.scalar_type(),
              "dmc::depthwise_conv2d_backward: the gradient must be the output's shape and dtype, got ", grad.sizes());
}

// The kernels read (N, H, W, C) memory; channels-last tensors (the supernet's default) are used as they are.
inline at::Tensor channels_last(const at::Tensor& t) {
  return t.contiguous(at::MemoryFormat::ChannelsLast);
}

// A result (the output or the input gradient) in the input's layout, as aten's convolution keeps it.
inline at::Tensor like_input(const at::Tensor& result, const at::Tensor& input) {
  return result.contiguous(layout_of(input));
}

// (C, 1, K, K) -> (K * K, C): the weights of one tap for a contiguous run of channels.
inline at::Tensor taps_by_channel(const at::Tensor& w) {
  return w.reshape({w.size(0), w.size(2) * w.size(3)}).t().contiguous();
}

inline at::Tensor weight_from_taps(const at::Tensor& taps, const at::Tensor& w) {
  return taps.t().reshape(w.sizes()).to(w.scalar_type()).contiguous(layout_of(w));
}

}  // namespace dmc
