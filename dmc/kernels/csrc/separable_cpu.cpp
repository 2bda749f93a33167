// CPU kernels of dmc::separable_conv2d: y = pointwise_conv(depthwise_conv(relu(x) or x)), and its backward, which
// computes the depthwise output again (only when the pointwise weight's gradient is asked for) instead of storing it.
// The depthwise parts are dmc::depthwise_conv2d's kernels, the pointwise parts oneDNN's (through aten); this file
// only composes them, in C++ so that a call costs no Python.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "depthwise_common.h"
#include "dispatch.h"

namespace dmc {
namespace {

at::Tensor depthwise(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding, int64_t dilation,
                     bool relu, const std::optional<at::Tensor>& activated) {
  static auto forward = op<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, bool,
                                      const std::optional<at::Tensor>&)>("dmc::depthwise_conv2d");
  return forward.call(x, w, stride, padding, dilation, relu, activated);
}

std::tuple<at::Tensor, at::Tensor> depthwise_backward(const at::Tensor& grad, const at::Tensor& x,
                                                      const at::Tensor& w, int64_t stride, int64_t padding,
                                                      int64_t dilation, bool relu, bool need_input,
                                                      bool need_weight) {
  static auto backward = op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                               const at::Tensor&, int64_t, int64_t, int64_t, bool,
                                                               bool, bool)>("dmc::depthwise_conv2d_backward");
  return backward.call(grad, x, w, stride, padding, dilation, relu, need_input, need_weight);
}

void check_pointwise(const at::Tensor& x, const at::Tensor& pw) {
  TORCH_CHECK(pw.dim() == 4 && pw.size(1) == x.size(1) && pw.size(2) == 1 && pw.size(3) == 1,
              "dmc::separable_conv2d: the pointwise weight must be (C_out, ", x.size(1), ", 1, 1), got ", pw.sizes());
}

at::Tensor separable_conv2d_cpu(const at::Tensor& x, const at::Tensor& dw, const at::Tensor& pw, int64_t stride,
                                int64_t padding, int64_t dilation, bool relu,
                                const std::optional<at::Tensor>& activated) {
  check_pointwise(x, pw);
  return at::conv2d(depthwise(x, dw, stride, padding, dilation, relu, activated), pw).contiguous(layout_of(x));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> separable_conv2d_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& dw, const at::Tensor& pw, int64_t stride,
    int64_t padding, int64_t dilation, bool relu, bool need_input, bool need_depthwise, bool need_pointwise) {
  check_pointwise(x, pw);
  at::Tensor middle;
  if (need_pointwise) {
    middle = depthwise(x, dw, stride, padding, dilation, relu, std::nullopt);
  } else {  // the input gradient reads only the depthwise output's shape: an allocation nothing touches
    const auto s = depthwise_shape(x, dw, stride, padding, dilation, "dmc::separable_conv2d_backward");
    middle = at::empty({s.N, s.C, s.Ho, s.Wo}, x.options().memory_format(layout_of(x)));
  }
  const bool need_middle = need_input || need_depthwise;
  auto [grad_middle, grad_pw, unused] = at::convolution_backward(grad, middle, pw, std::nullopt, {1, 1}, {0, 0},
                                                                 {1, 1}, false, {0, 0}, 1,
                                                                 {need_middle, need_pointwise, false});
  at::Tensor grad_x = at::empty({0}, x.options()), grad_dw = at::empty({0}, dw.options());
  if (need_middle) {
    std::tie(grad_x, grad_dw) =
        depthwise_backward(grad_middle, x, dw, stride, padding, dilation, relu, need_input, need_depthwise);
  }
  return {grad_x, grad_dw, need_pointwise ? grad_pw : at::empty({0}, pw.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("separable_conv2d", &separable_conv2d_cpu);
  m.impl("separable_conv2d_backward", &separable_conv2d_backward_cpu);
}

}  // namespace dmc
