// Calling an operator through the dispatcher from C++ (CPU files only): the C++ autograd formulas and the CPU kernels
// that compose other dmc operators reach them this way, so that tracing (torch.compile) still sees opaque ops.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace dmc {

// The typed handle of operator `name` (e.g. "dmc::depthwise_conv2d"); callers keep it in a function-local static.
template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace dmc
