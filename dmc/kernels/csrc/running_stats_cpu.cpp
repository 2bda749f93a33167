// CPU kernel of dmc::update_running_stats: what BatchNorm2d's training forward does to the buffers of K batch norms
// whose batch moments a fused op has computed (dmc::batchnorm_mixed_sum, dmc::batchnorm_act), in one call: each
// norm's batch counter goes up by one, its running mean and variance move by its factor towards the batch's mean and
// unbiased variance, as ATen's CPU batch norm moves them (momentum * batch + (1 - momentum) * running, here in
// double). Done eagerly this was five or more small ops per call (casts, a scale, three foreach updates): on the
// small tensors of a search step, more time than the fused kernel itself.

#include <ATen/Dispatch.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "dispatch.h"

namespace dmc {
namespace {

template <typename batch_t>
void move_towards(const at::Tensor& running, const batch_t* batch, int64_t C, double scale, double factor,
                  const char* op) {
  TORCH_CHECK(running.dim() == 1 && running.numel() == C && running.is_contiguous() && running.is_cpu(), op,
              ": running statistics must be contiguous CPU vectors of ", C, " values, got ", running.sizes());
  AT_DISPATCH_FLOATING_TYPES(running.scalar_type(), "dmc_move_towards", [&] {
    using running_t = scalar_t;
    running_t* r = running.mutable_data_ptr<running_t>();
    for (int64_t c = 0; c < C; ++c)
      r[c] = static_cast<running_t>(factor * (static_cast<double>(batch[c]) * scale) +
                                    (1.0 - factor) * static_cast<double>(r[c]));
  });
}

void update_running_stats_cpu(at::TensorList running_means, at::TensorList running_vars, at::TensorList counts,
                              const at::Tensor& mean, const at::Tensor& var, int64_t count,
                              at::ArrayRef<double> factors) {
  const char* op = "dmc::update_running_stats";
  const auto K = static_cast<int64_t>(running_means.size());
  TORCH_CHECK(static_cast<int64_t>(running_vars.size()) == K && static_cast<int64_t>(counts.size()) == K &&
                  static_cast<int64_t>(factors.size()) == K,
              op, ": expected one running variance, batch counter and factor per running mean (", K, ")");
  TORCH_CHECK(mean.dim() == 2 && mean.size(0) == K && var.sizes() == mean.sizes() && mean.is_contiguous() &&
                  var.is_contiguous() && mean.scalar_type() == var.scalar_type(),
              op, ": the batch moments must be two contiguous (", K, ", C) tensors of one dtype");
  for (const auto& n : counts)
    TORCH_CHECK(n.numel() == 1 && n.scalar_type() == at::kLong && n.is_cpu(), op,
                ": batch counters must be one-element int64 CPU tensors");
  const int64_t C = mean.size(1);
  const double unbias = count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
  AT_DISPATCH_FLOATING_TYPES(mean.scalar_type(), "dmc_update_running_stats_cpu", [&] {
    const scalar_t* m = mean.const_data_ptr<scalar_t>();
    const scalar_t* v = var.const_data_ptr<scalar_t>();
    for (int64_t k = 0; k < K; ++k) {
      *counts[k].mutable_data_ptr<int64_t>() += 1;
      move_towards<scalar_t>(running_means[k], m + k * C, C, 1.0, factors[k], op);
      move_towards<scalar_t>(running_vars[k], v + k * C, C, unbias, factors[k], op);
    }
  });
}

// As every in-place op does, the update moves the version counters of what it writes (eager BatchNorm's update
// does too), so autograd refuses a backward that would read a running statistic it saved before the update.
void update_running_stats_versioned(c10::DispatchKeySet keys, at::TensorList running_means,
                                    at::TensorList running_vars, at::TensorList counts, const at::Tensor& mean,
                                    const at::Tensor& var, int64_t count, at::ArrayRef<double> factors) {
  static auto update = op<void(at::TensorList, at::TensorList, at::TensorList, const at::Tensor&, const at::Tensor&,
                               int64_t, at::ArrayRef<double>)>("dmc::update_running_stats");
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    update.redispatch(keys & c10::after_ADInplaceOrView_keyset, running_means, running_vars, counts, mean, var, count,
                  factors);
  }
  for (const auto& written : {running_means, running_vars, counts})
    for (const auto& t : written) torch::autograd::impl::bump_version(t);
}

}  // namespace

TORCH_LIBRARY_IMPL(dmc, CPU, m) { m.impl("update_running_stats", &update_running_stats_cpu); }

TORCH_LIBRARY_IMPL(dmc, ADInplaceOrView, m) {
  m.impl("update_running_stats", TORCH_FN(update_running_stats_versioned));
}

}  // namespace dmc
