"""The Hessian eigenvalue tracker against an exact Hessian, and what it leaves untouched."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dmc.errors import InvalidInputError
from dmc.kernels.select import FUSED
from dmc.runfolder import SEARCH_RUN
from dmc.search import SearchConfig, search
from dmc.search.hessian import hessian_eigenvalue
from dmc.space import load_space
from dmc.supernet import build_supernet
from dmc.viz import visualize


def tiny(seed=0):
    torch.manual_seed(seed)
    model = build_supernet(load_space("tiny").with_macro(channels=4, layers=3), 10, 3).double()
    with torch.no_grad():  # alphas away from uniform, so the Hessian has some structure
        for alpha in model.arch_parameters():
            alpha.normal_(0, 1)
    return model


def batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(0, 10, (4,), generator=gen))
            for _ in range(2)]


def exact_dominant_eigenvalue(model, data):
    """Every second derivative of the mean loss with respect to the flattened alphas, by torch.func."""
    names = [n for n, _ in model.named_parameters() if n.startswith("alpha_")]
    shapes = [getattr(model, n).shape for n in names]
    sizes = [s.numel() for s in shapes]

    def loss(flat):
        parts = dict(zip(names, (p.reshape(s) for p, s in zip(flat.split(sizes), shapes))))
        return sum(F.cross_entropy(functional_call(model, parts, (x,)), y) for x, y in data) / len(data)

    flat = torch.cat([getattr(model, n).detach().reshape(-1) for n in names])
    model.train()
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))
    return eigenvalues[eigenvalues.abs().argmax()].item()


def test_power_iteration_finds_the_exact_dominant_eigenvalue():
    model, data = tiny(), batches()
    exact = exact_dominant_eigenvalue(copy.deepcopy(model), data)
    tracked = hessian_eigenvalue(model, data, iterations=200, tolerance=1e-10)
    assert abs(exact) > 1e-3
    assert abs(tracked - exact) <= 1e-4 * abs(exact)


def test_the_supernet_is_left_as_it_was():
    """Batch-norm statistics, eval mode, kernels, recomputation and the global RNG are restored."""
    model = tiny()
    model.set_kernels(FUSED)
    model.set_recompute_edges(True)
    model.eval()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    torch.manual_seed(5)
    hessian_eigenvalue(model, batches(), iterations=3)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1))
    assert not model.training and model.kernels is FUSED and model.recompute_edges
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert model.mixed_edges()[0].mixed_sum is FUSED.mixed_sum


def test_a_search_records_the_eigenvalue_and_is_otherwise_unchanged(tmp_path, toy_data):
    """--hessian-every 1: one eigenvalue per epoch in history.jsonl and TensorBoard; the search itself (alphas,
    weights, genotype) is the one without tracking, bit for bit."""
    settings = dict(space="tiny", dataset=toy_data, epochs=2, batch_size=8, channels=4, layers=3, seed=0,
                    deterministic=True, hessian_samples=16, hessian_iterations=5)
    tracked = search(SearchConfig(**settings, hessian_every=1), tmp_path / "tracked")
    plain = search(SearchConfig(**settings), tmp_path / "plain")
    history = [json.loads(line) for line in (tracked.run_dir / "history.jsonl").read_text().splitlines()]
    values = [record["hessian_eigenvalue"] for record in history]
    assert len(values) == 2 and all(math.isfinite(v) and v != 0 for v in values)
    assert "hessian_eigenvalue" not in (plain.run_dir / "history.jsonl").read_text()
    states = [SEARCH_RUN.load(r.run_dir / "last.pt")["model"] for r in (tracked, plain)]
    for name, value in states[1].items():
        assert torch.equal(states[0][name], value), name
    assert tracked.genotype == plain.genotype
    assert "hessian.png" in [p.name for p in visualize(tracked.run_dir, tmp_path / "viz")]
    assert "hessian.png" not in [p.name for p in visualize(plain.run_dir, tmp_path / "viz-plain")]


def test_hessian_tracking_is_refused_with_compiled_edges():
    with pytest.raises(InvalidInputError, match="hessian_every needs eager mixed edges") as info:
        SearchConfig(space="tiny", hessian_every=1, torch_compile=True).validate()
    assert str(info.value).endswith("drop torch_compile or hessian_every")


def test_cli_tracks_every_n_epochs_and_refuses_compile(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    result = cli("search", "tiny", "--dataset", toy_data, "--epochs", "3", "--batch-size", "8", "--channels", "4",
                 "--layers", "3", "--hessian-every", "2", "--hessian-samples", "8", "--out", str(run))
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert ["hessian_eigenvalue" in r for r in history] == [False, True, True]  # epoch 1, and the last
    bad = cli("search", "tiny", "--hessian-every", "1", "--torch-compile", "--out", str(tmp_path / "x"))
    assert bad.exit_code == 2 and "hessian_every needs eager mixed edges" in bad.stderr
    assert "drop --torch-compile or --hessian-every" in bad.stderr
    old = cli("search", "tiny", "--hessian-every", "1", "--compile", "--out", str(tmp_path / "y"))  # the old flag
    assert old.exit_code == 2 and "--compile/--no-compile is deprecated: use --torch-compile" in old.stderr
    assert "hessian_every needs eager mixed edges" in old.stderr
