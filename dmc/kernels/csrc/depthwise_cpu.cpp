// CPU kernels of dmc::depthwise_conv2d: y = depthwise_conv(relu(x) or x, w), square kernel, no bias, and its
// backward (input and weight gradients) without ever storing relu(x).
//
// Only what measured faster than oneDNN at the search's shapes is this file's own (benchmarks/depthwise_op.py):
// the weight gradient everywhere and the input gradient of dilated convolutions. The forward and the undilated
// input gradient call oneDNN through aten on a ReLU computed inside the op (and dropped after it).
//
// The kernels work on channels-last (N, H, W, C) data, where one tap of a depthwise convolution is a contiguous
// run of channels. Channels go in blocks of one vector register (GCC vector extensions: 64 bytes, then 32 and 16
// bytes for the remainder, then single channels), built for the machine's own instruction set (-march=native, see
// native.py). For tap (kh, kw) the output columns ow in [lo, hi) read input columns ow * stride + kw * dilation -
// padding, a range computed once per call, so the inner loops have no bounds checks and no divisions.
// - The input gradient is gathered, one residue class of the stride at a time, so that for each tap a block of
//   kPixels input pixels reads consecutive gradient pixels; the block's sums stay in registers over all taps and
//   each pixel is written once (no scatter, no atomics), masked by x > 0 for the ReLU.
// - The weight gradient sums each tap in registers along a row, over fixed chunks of rows, into per-chunk partials
//   added in chunk order: the result does not depend on the number of threads.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "depthwise_common.h"

namespace dmc {
namespace {

constexpr int kPixels = 8;         // output pixels accumulated in registers at once
constexpr int64_t kChunkRows = 4;  // output rows per weight-gradient partial

template <typename T, int Bytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(Bytes)));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

template <bool Relu, typename V>
inline V input_value(const V& v) {
  if constexpr (Relu) return v > V{} ? v : V{};
  return v;
}

inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// For each kw: the output columns [lo, hi) whose input column iw = ow * stride + shift lies in [0, W).
struct Columns {
  std::vector<int64_t> lo, hi, shift;
  explicit Columns(const DepthwiseShape& s) : lo(s.K), hi(s.K), shift(s.K) {
    for (int64_t kw = 0; kw < s.K; ++kw) {
      shift[kw] = kw * s.dilation - s.padding;
      lo[kw] = std::max<int64_t>(0, floor_div(-shift[kw] + s.stride - 1, s.stride));
      hi[kw] = std::max(lo[kw], std::min<int64_t>(s.Wo, floor_div(s.W - 1 - shift[kw], s.stride) + 1));
    }
  }
};

// One tap of a gathered row: out[j] += w * in[(j + offset) * C] for j in [lo, hi).
template <typename T>
struct Tap {
  const T* w;
  const T* in;
  int64_t offset, lo, hi;
};

// out[j * out_step * C] = sum over taps of w * in[(j + offset) * C] for j < count, one channel block, set to zero
// wherever mask <= 0 when a mask is given (the ReLU's backward). Outputs every tap covers go in blocks of kPixels
// accumulated in registers; the few others near the borders one at a time.
template <typename V, typename T>
void gather_row(const std::vector<Tap<T>>& taps, int64_t C, int64_t count, T* out, int64_t out_step, const T* mask) {
  int64_t lo = 0, hi = count;
  for (const auto& t : taps) {
    lo = std::max(lo, t.lo);
    hi = std::min(hi, t.hi);
  }
  auto finish = [&](int64_t j, V value) {
    const int64_t at = j * out_step * C;
    if (mask != nullptr) value = load<V>(mask + at) > V{} ? value : V{};
    store(out + at, value);
  };
  auto border = [&](int64_t j) {
    V acc{};
    for (const auto& t : taps)
      if (j >= t.lo && j < t.hi) acc += load<V>(t.w) * load<V>(t.in + (j + t.offset) * C);
    finish(j, acc);
  };
  int64_t j = 0;
  for (; j < std::min(lo, count); ++j) border(j);
  for (; j + kPixels <= hi; j += kPixels) {
    V acc[kPixels] = {};
    for (const auto& t : taps) {
      const V w = load<V>(t.w);
      const T* in = t.in + (j + t.offset) * C;
#pragma GCC unroll 8
      for (int p = 0; p < kPixels; ++p) acc[p] += w * load<V>(in + p * C);
    }
#pragma GCC unroll 8
    for (int p = 0; p < kPixels; ++p) finish(j + p, acc[p]);
  }
  for (; j < count; ++j) border(j);
}

// grad_x[n, ih, :, c0 : c0 + lanes], gathered: input column iw took part in output column ow through tap kw iff
// iw = ow * stride + shift[kw]. Columns go by residue r = iw mod stride, iw = r + stride * j, so that for each tap
// the output columns j + (r - shift[kw]) / stride are consecutive.
template <bool Relu, typename V, typename T>
void grad_input_row(const DepthwiseShape& s, const Columns& cols, const T* g, const T* x, const T* wt, T* gx,
                    int64_t n, int64_t ih, int64_t c0, std::vector<Tap<T>>& taps) {
  for (int64_t r = 0; r < std::min(s.stride, s.W); ++r) {
    const int64_t count = (s.W - 1 - r) / s.stride + 1;
    taps.clear();
    for (int64_t kh = 0; kh < s.K; ++kh) {
      const int64_t oh_s = ih + s.padding - kh * s.dilation;
      if (oh_s < 0 || oh_s % s.stride != 0 || oh_s / s.stride >= s.Ho) continue;
      for (int64_t kw = 0; kw < s.K; ++kw) {
        const int64_t offset = floor_div(r - cols.shift[kw], s.stride);
        if (offset * s.stride != r - cols.shift[kw]) continue;
        const int64_t lo = std::max<int64_t>(0, -offset), hi = std::min(count, s.Wo - offset);
        if (lo < hi)
          taps.push_back({wt + (kh * s.K + kw) * s.C + c0, g + (n * s.Ho + oh_s / s.stride) * s.Wo * s.C + c0, offset,
                          lo, hi});
      }
    }
    const int64_t at = ((n * s.H + ih) * s.W + r) * s.C + c0;
    gather_row<V>(taps, s.C, count, gx + at, s.stride, Relu ? x + at : static_cast<const T*>(nullptr));
  }
}

// partial[(kh * K + kw) * C + c0 ...] += the sum over output row (n, oh) of g * input_value(x) through each tap.
template <bool Relu, typename V, typename T>
void grad_weight_row(const DepthwiseShape& s, const Columns& cols, const T* g, const T* x, T* partial, int64_t n,
                     int64_t oh, int64_t c0) {
  const int64_t C = s.C, step = s.stride * C;
  const T* grow = g + (n * s.Ho + oh) * s.Wo * C + c0;
  for (int64_t kh = 0; kh < s.K; ++kh) {
    const int64_t ih = oh * s.stride - s.padding + kh * s.dilation;
    if (ih < 0 || ih >= s.H) continue;
    const T* xrow = x + (n * s.H + ih) * s.W * C + c0;
    for (int64_t kw = 0; kw < s.K; ++kw) {
      const T* gp = grow + cols.lo[kw] * C;
      const T* xp = xrow + (cols.lo[kw] * s.stride + cols.shift[kw]) * C;
      V acc[4] = {};  // four independent sums: the adds do not wait on each other
      int64_t ow = cols.lo[kw];
      for (; ow + 4 <= cols.hi[kw]; ow += 4, gp += 4 * C, xp += 4 * step) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[j] += load<V>(gp + j * C) * input_value<Relu>(load<V>(xp + j * step));
      }
      for (; ow < cols.hi[kw]; ++ow, gp += C, xp += step) acc[0] += load<V>(gp) * input_value<Relu>(load<V>(xp));
      T* out = partial + (kh * s.K + kw) * C + c0;
      store(out, load<V>(out) + ((acc[0] + acc[1]) + (acc[2] + acc[3])));
    }
  }
}

// Calls body.template operator()<V>(c0) for every channel block, widest vectors first.
template <typename T, typename Body>
inline void for_channel_blocks(int64_t C, Body&& body) {
  using V64 = typename VectorOf<T, 64>::type;
  using V32 = typename VectorOf<T, 32>::type;
  using V16 = typename VectorOf<T, 16>::type;
  constexpr int64_t l64 = sizeof(V64) / sizeof(T), l32 = sizeof(V32) / sizeof(T), l16 = sizeof(V16) / sizeof(T);
  int64_t c0 = 0;
  for (; c0 + l64 <= C; c0 += l64) body.template operator()<V64>(c0);
  for (; c0 + l32 <= C; c0 += l32) body.template operator()<V32>(c0);
  for (; c0 + l16 <= C; c0 += l16) body.template operator()<V16>(c0);
  for (; c0 < C; ++c0) body.template operator()<T>(c0);
}

template <typename T>
void grad_input_kernel(const DepthwiseShape& s, bool relu, const T* g, const T* x, const T* wt, T* gx) {
  const Columns cols(s);
  at::parallel_for(0, s.N * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<Tap<T>> taps;
    for (int64_t r = begin; r < end; ++r) {
      for_channel_blocks<T>(s.C, [&]<typename V>(int64_t c0) {
        if (relu) grad_input_row<true, V>(s, cols, g, x, wt, gx, r / s.H, r % s.H, c0, taps);
        else grad_input_row<false, V>(s, cols, g, x, wt, gx, r / s.H, r % s.H, c0, taps);
      });
    }
  });
}

// Returns the weight gradient as (K * K, C), summed over fixed chunks of output rows in chunk order.
template <typename T>
std::vector<T> grad_weight_kernel(const DepthwiseShape& s, bool relu, const T* g, const T* x) {
  const Columns cols(s);
  const int64_t taps = s.K * s.K * s.C, rows = s.N * s.Ho;
  const int64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
  std::vector<T> partial(static_cast<size_t>(chunks * taps), T(0));
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      T* acc = partial.data() + chunk * taps;
      for (int64_t r = chunk * kChunkRows; r < std::min(rows, (chunk + 1) * kChunkRows); ++r) {
        for_channel_blocks<T>(s.C, [&]<typename V>(int64_t c0) {
          if (relu) grad_weight_row<true, V>(s, cols, g, x, acc, r / s.Ho, r % s.Ho, c0);
          else grad_weight_row<false, V>(s, cols, g, x, acc, r / s.Ho, r % s.Ho, c0);
        });
      }
    }
  });
  std::vector<T> total(static_cast<size_t>(taps), T(0));
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const T* p = partial.data() + chunk * taps;
    for (int64_t i = 0; i < taps; ++i) total[i] += p[i];
  }
  return total;
}

template <typename T>
void relu_mask_kernel(T* g, const T* x, int64_t n) {
  at::parallel_for(0, n, 32768, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) g[i] = x[i] > T(0) ? g[i] : T(0);
  });
}

// g = 0 wherever x <= 0, in place: the ReLU's backward on a gradient laid out like x (aten's masked_fill is slow on
// channels-last tensors).
void relu_mask_(at::Tensor& g, const at::Tensor& x) {
  if (g.strides() != x.strides() || !g.is_non_overlapping_and_dense()) {
    g = g.masked_fill(x <= 0, 0);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dmc_relu_mask", [&] {
    relu_mask_kernel<scalar_t>(g.mutable_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), g.numel());
  });
}

// relu(x) (``activated`` when the caller computed it already, for several convolutions of one input) or x, as a
// temporary the caller drops: never stored for the backward.
at::Tensor source(const at::Tensor& x, bool relu, const std::optional<at::Tensor>& activated) {
  if (!relu) return x;
  if (!activated.has_value()) return at::relu(x);
  TORCH_CHECK(activated->sizes() == x.sizes() && activated->scalar_type() == x.scalar_type() &&
                  activated->device() == x.device(),
              "dmc::depthwise_conv2d: activated must be relu(x), got shape ", activated->sizes());
  return *activated;
}

// The forward is oneDNN's (through aten) on a ReLU computed here: its register-blocked depthwise forward beats
// this file's kernels at every measured shape (benchmarks/depthwise_op.py), and no ReLU output outlives the call.
at::Tensor depthwise_conv2d_cpu(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                                int64_t dilation, bool relu, const std::optional<at::Tensor>& activated) {
  const auto s = depthwise_shape(x, w, stride, padding, dilation, "dmc::depthwise_conv2d");
  return like_input(at::conv2d(source(x, relu, activated), w, {}, stride, padding, dilation, s.C), x);
}

// The input gradient: this file's kernel for dilated convolutions, where oneDNN falls back to a slow path; oneDNN
// otherwise. The weight gradient: this file's kernel everywhere.
std::tuple<at::Tensor, at::Tensor> depthwise_conv2d_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                                  const at::Tensor& w, int64_t stride,
                                                                  int64_t padding, int64_t dilation, bool relu,
                                                                  bool need_input, bool need_weight) {
  const auto s = depthwise_shape(x_in, w, stride, padding, dilation, "dmc::depthwise_conv2d_backward");
  check_grad(grad_in, s, x_in);
  TORCH_CHECK(x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble,
              "dmc::depthwise_conv2d_backward on CPU: float32 or float64 inputs only, got ", x_in.scalar_type());
  const auto x = channels_last(x_in);
  const auto g = channels_last(grad_in);
  at::Tensor grad_x = at::empty({0}, x.options()), grad_w = at::empty({0}, w.options());
  if (need_input && dilation == 1) {
    // The input gradient needs only the input's shape and layout: x stands in for relu(x), then the mask.
    grad_x = std::get<0>(at::convolution_backward(g, x, w, std::nullopt, {stride, stride},
                                                  {padding, padding}, {dilation, dilation}, false, {0, 0}, s.C,
                                                  {true, false, false}))
                 .contiguous(at::MemoryFormat::ChannelsLast);
    if (relu) relu_mask_(grad_x, x);
    grad_x = like_input(grad_x, x_in);
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dmc_depthwise_conv2d_backward_cpu", [&] {
    if (need_input && dilation > 1) {
      const auto wt = taps_by_channel(w);
      grad_x = at::empty_like(x);
      grad_input_kernel<scalar_t>(s, relu, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
                                  wt.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>());
      grad_x = like_input(grad_x, x_in);
    }
    if (need_weight) {
      auto total = grad_weight_kernel<scalar_t>(s, relu, g.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>());
      auto taps = at::from_blob(total.data(), {s.K * s.K, s.C}, x.options()).clone();
      grad_w = weight_from_taps(taps, w);
    }
  });
  return {grad_x, grad_w};
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) {
  m.impl("depthwise_conv2d", &depthwise_conv2d_cpu);
  m.impl("depthwise_conv2d_backward", &depthwise_conv2d_backward_cpu);
}

}  // namespace dmc
