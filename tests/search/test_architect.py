"""The second-order alpha gradient against an exact autograd computation of the unrolled objective."""

import torch
import torch.nn.functional as F
from torch.func import functional_call

from dmc.search.architect import Architect
from dmc.space import load_space
from dmc.supernet import build_supernet


def test_finite_difference_unrolled_gradient_matches_exact_second_order():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    try:
        net = build_supernet(load_space("tiny").with_macro(channels=4, layers=3), 3).double().eval()
        xt, yt = torch.randn(4, 3, 8, 8, dtype=torch.double), torch.tensor([0, 1, 2, 0])
        xv, yv = torch.randn(4, 3, 8, 8, dtype=torch.double), torch.tensor([2, 1, 0, 1])
        lr = 0.05
        names = [n for n, p in net.named_parameters() if not n.startswith("alpha_")]
        weights = [p for n, p in net.named_parameters() if not n.startswith("alpha_")]
        arch = net.arch_parameters()

        # exact: d/dalpha L_val(w - lr * dL_train/dw (w, alpha), alpha), no momentum, no weight decay
        loss_t = F.cross_entropy(net(xt), yt)
        g = torch.autograd.grad(loss_t, weights, create_graph=True)
        unrolled = {n: w - lr * gw for n, w, gw in zip(names, weights, g)}
        loss_v = F.cross_entropy(functional_call(net, unrolled, (xv,)), yv)
        exact = torch.autograd.grad(loss_v, arch)

        w_opt = torch.optim.SGD(weights, lr=lr)  # no momentum buffer yet
        # a small finite-difference radius: DARTS's 0.01 is ~3% off across ReLU kinks; the formula is exact in the limit
        architect = Architect(net, torch.optim.SGD(arch, lr=1.0), order=2, momentum=0.0, weight_decay=0.0,
                              fd_radius=1e-6)
        before = [w.detach().clone() for w in weights]
        approx = architect._unrolled_grads(xt, yt, xv, yv, lr, w_opt)
        for a, e in zip(approx, exact):
            torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-7)
        for w, b in zip(weights, before):  # the weights are restored exactly
            assert torch.equal(w, b)
    finally:
        torch.use_deterministic_algorithms(False)
