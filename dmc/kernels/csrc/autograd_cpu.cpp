// The autograd formulas of the CPU operators, in C++.
//
// dmc/kernels/*.py registers each operator's formula from Python (torch.library.register_autograd, for the Autograd
// alias key: every device, and the plain-PyTorch fallbacks). A Python autograd node costs about 0.1-0.2 ms per call
// (forward and backward); a search step calls these operators thousands of times, mostly on small tensors, which
// made that a tenth of the step. The same formulas here, registered for AutogradCPU (a runtime key, which the
// dispatcher prefers to the alias), take over for CPU tensors once the compiled kernels are loaded. Each calls the
// operator and its backward through the dispatcher, so tracing (torch.compile) still sees the opaque ops.

#include <torch/autograd.h>
#include <torch/library.h>

#include <string>
#include <tuple>
#include <vector>

#include "dispatch.h"

namespace dmc {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor undefined() { return {}; }

// A weight's gradient in the weight's own strides (DDP's gradient buckets expect them; a [C, 1, k, k] or
// [C, C', 1, 1] weight has two layouts). The Python formulas use dmc/kernels/layout.py's in_strides_of.
at::Tensor in_strides_of(const at::Tensor& weight, const at::Tensor& grad) {
  return grad.strides() == weight.strides() ? grad : at::empty_like(weight).copy_(grad);
}

// dmc::depthwise_conv2d: saves x and the weight (never relu(x)); computes only the gradients autograd asks for.
struct DepthwiseConv : torch::autograd::Function<DepthwiseConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, int64_t stride,
                            int64_t padding, int64_t dilation, bool relu, const std::optional<at::Tensor>& activated) {
    static auto forward_op = op<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, bool,
                                           const std::optional<at::Tensor>&)>("dmc::depthwise_conv2d");
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["relu"] = relu;
    return forward_op.call(x, w, stride, padding, dilation, relu, activated);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op =
        op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                              int64_t, int64_t, bool, bool, bool)>("dmc::depthwise_conv2d_backward");
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    auto [grad_x, grad_w] = backward_op.call(
        grads[0], x, w, ctx->saved_data["stride"].toInt(), ctx->saved_data["padding"].toInt(),
        ctx->saved_data["dilation"].toInt(), ctx->saved_data["relu"].toBool(), need_x, need_w);
    return {need_x ? grad_x : undefined(), need_w ? in_strides_of(w, grad_w) : undefined(), undefined(),
            undefined(), undefined(), undefined(), undefined()};
  }
};

at::Tensor depthwise_conv2d_autograd(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                                     int64_t dilation, bool relu, const std::optional<at::Tensor>& activated) {
  return DepthwiseConv::apply(x, w, stride, padding, dilation, relu, activated);
}

// dmc::separable_conv2d: saves x and the weights (neither relu(x) nor the depthwise output); computes only the
// gradients autograd asks for.
struct SeparableConv : torch::autograd::Function<SeparableConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& dw, const at::Tensor& pw,
                            int64_t stride, int64_t padding, int64_t dilation, bool relu,
                            const std::optional<at::Tensor>& activated) {
    static auto forward_op =
        op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, bool,
                      const std::optional<at::Tensor>&)>("dmc::separable_conv2d");
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, dw, pw});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["relu"] = relu;
    return forward_op.call(x, dw, pw, stride, padding, dilation, relu, activated);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op =
        op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                          const at::Tensor&, int64_t, int64_t, int64_t, bool, bool,
                                                          bool, bool)>("dmc::separable_conv2d_backward");
    const auto saved = ctx->get_saved_variables();
    const bool need_x = ctx->needs_input_grad(0), need_dw = ctx->needs_input_grad(1),
               need_pw = ctx->needs_input_grad(2);
    auto [grad_x, grad_dw, grad_pw] = backward_op.call(
        grads[0], saved[0], saved[1], saved[2], ctx->saved_data["stride"].toInt(), ctx->saved_data["padding"].toInt(),
        ctx->saved_data["dilation"].toInt(), ctx->saved_data["relu"].toBool(), need_x, need_dw, need_pw);
    return {need_x ? grad_x : undefined(), need_dw ? in_strides_of(saved[1], grad_dw) : undefined(),
            need_pw ? in_strides_of(saved[2], grad_pw) : undefined(), undefined(), undefined(), undefined(),
            undefined(), undefined()};
  }
};

at::Tensor separable_conv2d_autograd(const at::Tensor& x, const at::Tensor& dw, const at::Tensor& pw, int64_t stride,
                                     int64_t padding, int64_t dilation, bool relu,
                                     const std::optional<at::Tensor>& activated) {
  return SeparableConv::apply(x, dw, pw, stride, padding, dilation, relu, activated);
}

// dmc::batchnorm_act: saves z and the statistics; the statistics are not differentiable.
struct BatchNormAct : torch::autograd::Function<BatchNormAct> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& z, double eps, c10::string_view activation) {
    static auto forward_op =
        op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, double, c10::string_view)>(
            "dmc::batchnorm_act");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [y, mean, var] = forward_op.call(z, eps, activation);
    ctx->save_for_backward({z, mean, var});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["activation"] = std::string(activation);
    ctx->mark_non_differentiable({mean, var});
    return {y, mean, var};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op = op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, double, c10::string_view)>("dmc::batchnorm_act_backward");
    const auto saved = ctx->get_saved_variables();
    const auto activation = ctx->saved_data["activation"].toStringRef();
    return {backward_op.call(grads[0], saved[0], saved[1], saved[2], ctx->saved_data["eps"].toDouble(), activation),
            undefined(), undefined()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> batchnorm_act_autograd(const at::Tensor& z, double eps,
                                                                      c10::string_view activation) {
  auto out = BatchNormAct::apply(z, eps, activation);
  return {out[0], out[1], out[2]};
}

// dmc::mixed_sum: saves the inputs and the weights; every gradient is computed in one backward call.
struct MixedSum : torch::autograd::Function<MixedSum> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList ys, const at::Tensor& w) {
    static auto forward_op = op<at::Tensor(at::TensorList, const at::Tensor&)>("dmc::mixed_sum");
    at::AutoDispatchBelowADInplaceOrView guard;
    std::vector<at::Tensor> saved(ys.begin(), ys.end());
    saved.push_back(w);
    ctx->save_for_backward(saved);
    return forward_op.call(ys, w);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op =
        op<std::tuple<std::vector<at::Tensor>, at::Tensor>(const at::Tensor&, at::TensorList, const at::Tensor&)>(
            "dmc::mixed_sum_backward");
    auto saved = ctx->get_saved_variables();
    const auto w = saved.back();
    saved.pop_back();
    auto [grad_ys, grad_w] = backward_op.call(grads[0], saved, w);
    grad_ys.push_back(grad_w);
    return grad_ys;
  }
};

at::Tensor mixed_sum_autograd(at::TensorList ys, const at::Tensor& w) { return MixedSum::apply(ys, w); }

// dmc::batchnorm_mixed_sum: saves the inputs, the weights and the statistics (not differentiable).
struct BatchNormMixedSum : torch::autograd::Function<BatchNormMixedSum> {
  static variable_list forward(AutogradContext* ctx, at::TensorList zs, at::TensorList ys, const at::Tensor& w,
                               double eps) {
    static auto forward_op =
        op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(at::TensorList, at::TensorList, const at::Tensor&, double)>(
            "dmc::batchnorm_mixed_sum");
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, mean, var] = forward_op.call(zs, ys, w, eps);
    std::vector<at::Tensor> saved(zs.begin(), zs.end());
    saved.insert(saved.end(), ys.begin(), ys.end());
    saved.insert(saved.end(), {w, mean, var});
    ctx->save_for_backward(saved);
    ctx->saved_data["zs"] = static_cast<int64_t>(zs.size());
    ctx->saved_data["eps"] = eps;
    ctx->mark_non_differentiable({mean, var});
    return {out, mean, var};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op =
        op<std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor>(
            const at::Tensor&, at::TensorList, at::TensorList, const at::Tensor&, const at::Tensor&,
            const at::Tensor&, double)>("dmc::batchnorm_mixed_sum_backward");
    const auto saved = ctx->get_saved_variables();
    const auto k = ctx->saved_data["zs"].toInt();
    const auto n = static_cast<int64_t>(saved.size());
    const at::TensorList all(saved);
    auto [grad_zs, grad_ys, grad_w] = backward_op.call(grads[0], all.slice(0, k), all.slice(k, n - 3 - k),
                                                       saved[n - 3], saved[n - 2], saved[n - 1],
                                                       ctx->saved_data["eps"].toDouble());
    variable_list result(grad_zs.begin(), grad_zs.end());
    result.insert(result.end(), grad_ys.begin(), grad_ys.end());
    result.push_back(grad_w);
    result.push_back(undefined());  // eps
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> batchnorm_mixed_sum_autograd(at::TensorList zs, at::TensorList ys,
                                                                            const at::Tensor& w, double eps) {
  auto out = BatchNormMixedSum::apply(zs, ys, w, eps);
  return {out[0], out[1], out[2]};
}

// dmc::max_pool2d: saves only its input; the backward finds the maxima again.
struct MaxPool : torch::autograd::Function<MaxPool> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t kernel, int64_t stride,
                            int64_t padding) {
    static auto forward_op = op<at::Tensor(const at::Tensor&, int64_t, int64_t, int64_t)>("dmc::max_pool2d");
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x});
    ctx->saved_data["kernel"] = kernel;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return forward_op.call(x, kernel, stride, padding);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static auto backward_op = op<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t)>(
        "dmc::max_pool2d_backward");
    const auto saved = ctx->get_saved_variables();
    return {backward_op.call(grads[0], saved[0], ctx->saved_data["kernel"].toInt(), ctx->saved_data["stride"].toInt(),
                             ctx->saved_data["padding"].toInt()),
            undefined(), undefined(), undefined()};
  }
};

at::Tensor max_pool2d_autograd(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return MaxPool::apply(x, kernel, stride, padding);
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, AutogradCPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_autograd);
  m.impl("separable_conv2d", &separable_conv2d_autograd);
  m.impl("batchnorm_act", &batchnorm_act_autograd);
  m.impl("mixed_sum", &mixed_sum_autograd);
  m.impl("batchnorm_mixed_sum", &batchnorm_mixed_sum_autograd);
  m.impl("max_pool2d", &max_pool2d_autograd);
}

}  // namespace dmc
