// Shared checks, layout helpers and weight reading for the fused kernels (CPU and CUDA).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace dmc {

// Every input must have one shape, dtype and device; w holds one weight per input.
inline void check_inputs(at::TensorList ys, const at::Tensor& w, const char* op) {
  TORCH_CHECK(!ys.empty(), op, ": needs at least one input");
  TORCH_CHECK(w.dim() == 1 && w.size(0) == static_cast<int64_t>(ys.size()), op, ": expected ", ys.size(),
              " weights, got shape ", w.sizes());
  TORCH_CHECK(at::isFloatingType(ys[0].scalar_type()), op, ": inputs must be floating point");
  for (const auto& y : ys) {
    TORCH_CHECK(y.sizes() == ys[0].sizes(), op, ": inputs differ in shape (", y.sizes(), " vs ", ys[0].sizes(), ")");
    TORCH_CHECK(y.scalar_type() == ys[0].scalar_type(), op, ": inputs differ in dtype");
    TORCH_CHECK(y.device() == ys[0].device(), op, ": inputs are on different devices");
  }
}

// The backward's inputs, and a gradient shaped and typed like them.
inline void check_backward_inputs(const at::Tensor& grad, at::TensorList ys, const at::Tensor& w) {
  check_inputs(ys, w, "dmc::mixed_sum_backward");
  TORCH_CHECK(grad.sizes() == ys[0].sizes() && grad.scalar_type() == ys[0].scalar_type(),
              "dmc::mixed_sum_backward: the gradient must match the inputs' shape and dtype");
}

// The layout of every result: channels-last iff its model tensor is channels-last and not also contiguous. The
// fake kernels (dmc/kernels/layout.py) follow the same rule, which torch.compile checks against the real strides.
inline at::MemoryFormat layout_of(const at::Tensor& t) {
  return t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous() ? at::MemoryFormat::ChannelsLast
                                                                                : at::MemoryFormat::Contiguous;
}

// A small tensor's values (weights, statistics) on the host, in double.
inline std::vector<double> to_doubles(const at::Tensor& t) {
  auto d = t.detach().to(at::kCPU, at::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

// The kernels walk every tensor as one flat array, so all of them must share `like`'s dense strides.
// Inputs that already do (the usual case: same memory format) are used as they are, others are copied.
inline at::Tensor with_layout_of(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides() && t.is_non_overlapping_and_dense()) return t;
  return at::empty_like(like).copy_(t);
}

inline std::vector<at::Tensor> with_layout_of(at::TensorList ts, const at::Tensor& like) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back(with_layout_of(t, like));
  return out;
}

}  // namespace dmc
