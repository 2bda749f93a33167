// dmc::max_pool2d and dmc::max_pool2d_backward on CPU: max pooling that stores no indices.
//
// The forward keeps each window's maximum and nothing else; the backward finds each window's maximum again, with
// its position, in one scan, and adds the output gradient there. Both follow PyTorch's CPU max pooling exactly: a
// window's maximum is its first element in scan order that no later one exceeds (a NaN wins and propagates), so
// outputs and gradients equal F.max_pool2d's bit for bit, and the backward accumulates into each input in the same
// order (by output row, then column). Channels-last tensors run here, vectorised over the channels, one image row
// (forward) or one image (backward, whose windows overlap) per task; contiguous ones go to ATen's kernels, which
// handle that layout well.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "common.h"

namespace {

struct Window {
  int64_t kernel, stride, padding;
  int64_t n, c, h, w, oh, ow;
  int64_t begin(int64_t o) const { return std::max<int64_t>(o * stride - padding, 0); }
  int64_t end(int64_t o, int64_t size) const { return std::min(o * stride - padding + kernel, size); }
};

int64_t pooled_size(int64_t size, int64_t kernel, int64_t stride, int64_t padding) {
  return (size + 2 * padding - kernel) / stride + 1;  // floor mode, as dmc's pools use
}

Window window_of(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, ": expected an (N, C, H, W) input, got ", x.sizes());
  TORCH_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel, op,
              ": bad kernel, stride or padding (", kernel, ", ", stride, ", ", padding, ")");
  Window win{kernel, stride, padding, x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  win.oh = pooled_size(win.h, kernel, stride, padding);
  win.ow = pooled_size(win.w, kernel, stride, padding);
  TORCH_CHECK(win.oh > 0 && win.ow > 0, op, ": the input ", x.sizes(), " is smaller than the window");
  return win;
}

template <typename T>
inline bool takes_over(T value, T best) {
  return (value > best) | (value != value);  // PyTorch's rule: a greater value, or NaN (no branch: vector code)
}

constexpr int64_t kBlock = 16;  // channels per block: compile-time loops the compiler turns into vector code

// One window's maximum for channels [k0, k0 + B) into `out`: its first element, then every later one that takes
// over. Pointers address element (0, 0, k0) of the image (channels-last); `c` is the image's channel count. With
// `where`, each channel's maximum's offset within the image goes there too (int32: the caller sends images of 2^31
// elements or more to ATen); without, that bookkeeping compiles away.
template <typename T, int64_t B, bool kWhere = false>
inline void window_max(const T* __restrict__ image, T* __restrict__ out, int64_t c, int64_t width, int64_t h0,
                       int64_t h1, int64_t w0, int64_t w1, int32_t* __restrict__ where = nullptr) {
  const int64_t start = (h0 * width + w0) * c;
  for (int64_t k = 0; k < B; ++k) {
    out[k] = image[start + k];
    if constexpr (kWhere) where[k] = static_cast<int32_t>(start);
  }
  for (int64_t ih = h0; ih < h1; ++ih) {
    for (int64_t iw = (ih == h0 ? w0 + 1 : w0); iw < w1; ++iw) {
      const int64_t at = (ih * width + iw) * c;
      const T* __restrict__ v = image + at;
#pragma omp simd
      for (int64_t k = 0; k < B; ++k) {
        const bool take = takes_over(v[k], out[k]);
        out[k] = take ? v[k] : out[k];
        if constexpr (kWhere) where[k] = take ? static_cast<int32_t>(at) : where[k];
      }
    }
  }
}

// Adds one output's gradient `g` (channels [k0, k0 + B)) at its window's maximum as window_max finds it (the first
// element that no later one exceeds; with NaNs, the last NaN): one scan for the maxima and their positions, then one
// add per channel.
template <typename T, int64_t B>
inline void add_at_max(const T* __restrict__ image, T* __restrict__ target, const T* __restrict__ g, int64_t c,
                       int64_t width, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  T m[B];
  int32_t where[B];
  window_max<T, B, true>(image, m, c, width, h0, h1, w0, w1, where);
  for (int64_t k = 0; k < B; ++k) target[where[k] + k] += g[k];
}

template <typename T>
void forward_kernel(const T* x, T* y, const Window& win) {
  const int64_t c = win.c;
  at::parallel_for(0, win.n * win.oh, 1, [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      const int64_t n = row / win.oh, oh = row % win.oh;
      const int64_t h0 = win.begin(oh), h1 = win.end(oh, win.h);
      const T* image = x + n * win.h * win.w * c;
      for (int64_t ow = 0; ow < win.ow; ++ow) {
        const int64_t w0 = win.begin(ow), w1 = win.end(ow, win.w);
        T* out = y + ((n * win.oh + oh) * win.ow + ow) * c;
        int64_t k0 = 0;
        for (; k0 + kBlock <= c; k0 += kBlock) window_max<T, kBlock>(image + k0, out + k0, c, win.w, h0, h1, w0, w1);
        for (; k0 < c; ++k0) window_max<T, 1>(image + k0, out + k0, c, win.w, h0, h1, w0, w1);
      }
    }
  });
}

// One image per task: windows overlap, so two tasks never add into the same input. Each task zeroes its image's
// gradient right before adding into it (while it is in cache), not in a pass of its own.
template <typename T>
void backward_kernel(const T* grad, const T* x, T* grad_x, const Window& win) {
  const int64_t c = win.c, plane = win.h * win.w * c;
  at::parallel_for(0, win.n, 1, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n) {
      const T* image = x + n * plane;
      T* target = grad_x + n * plane;
      std::fill(target, target + plane, T(0));
      for (int64_t oh = 0; oh < win.oh; ++oh) {
        const int64_t h0 = win.begin(oh), h1 = win.end(oh, win.h);
        for (int64_t ow = 0; ow < win.ow; ++ow) {
          const int64_t w0 = win.begin(ow), w1 = win.end(ow, win.w);
          const T* g = grad + ((n * win.oh + oh) * win.ow + ow) * c;
          int64_t k0 = 0;
          for (; k0 + kBlock <= c; k0 += kBlock) {
            add_at_max<T, kBlock>(image + k0, target + k0, g + k0, c, win.w, h0, h1, w0, w1);
          }
          for (; k0 < c; ++k0) add_at_max<T, 1>(image + k0, target + k0, g + k0, c, win.w, h0, h1, w0, w1);
        }
      }
    }
  });
}

bool channels_last(const at::Tensor& x) {
  return dmc::layout_of(x) == at::MemoryFormat::ChannelsLast;
}

at::Tensor max_pool2d_cpu(const at::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const Window win = window_of(x, kernel, stride, padding, "dmc::max_pool2d");
  if (!channels_last(x)) return std::get<0>(at::max_pool2d_with_indices(x, kernel, stride, padding));
  auto y = at::empty({win.n, win.c, win.oh, win.ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dmc::max_pool2d", [&] {
    forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), win);
  });
  return y;
}

at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t kernel, int64_t stride,
                                   int64_t padding) {
  const Window win = window_of(x, kernel, stride, padding, "dmc::max_pool2d_backward");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == win.n && grad.size(1) == win.c && grad.size(2) == win.oh &&
                  grad.size(3) == win.ow && grad.scalar_type() == x.scalar_type(),
              "dmc::max_pool2d_backward: the gradient ", grad.sizes(), " does not match the pooled input");
  // the kernel keeps positions within an image as int32 (half the width of int64 in its vector loops)
  const bool large_images = win.h * win.w * win.c > std::numeric_limits<int32_t>::max();
  if (!channels_last(x) || large_images) {
    auto indices = std::get<1>(at::max_pool2d_with_indices(x, kernel, stride, padding));
    return at::max_pool2d_with_indices_backward(grad, x, kernel, stride, padding, 1, false, indices);
  }
  auto g = grad.contiguous(at::MemoryFormat::ChannelsLast);
  auto grad_x = at::empty_like(x, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "dmc::max_pool2d_backward", [&] {
    backward_kernel<scalar_t>(g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                              grad_x.mutable_data_ptr<scalar_t>(), win);
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("max_pool2d", &max_pool2d_cpu);
  m.impl("max_pool2d_backward", &max_pool2d_backward_cpu);
}
