"""DARTS- in a chain space end to end (issue 14, item 2): `dmc search` of a tiny chain spec on the toy images
(tests/conftest.py), its run folder, `dmc derive` and `dmc compile` of the result, and every search option on
per-layer alphas. About a second a run."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dmc.compiler import build_network, load_network
from dmc.compiler.saved import read_network_file
from dmc.errors import InvalidInputError
from dmc.families.chain.genotype import ChainGenotype
from dmc.genotype import load_genotype
from dmc.kernels.select import FUSED
from dmc.runfolder import SEARCH_RUN
from dmc.search import SearchConfig, derive_run, read_history, search
from dmc.search.architect import Architect
from dmc.search.space_settings import load_search_config, search_config_for_space
from dmc.space import load_space
from dmc.supernet import build_supernet

EVERY, FIRST = ["mbconv_k3_e3", "mbconv_k3_e6", "skip"], ["mbconv_k3_e3", "mbconv_k3_e6"]
CANDIDATES = [FIRST, EVERY, FIRST, EVERY]  # 2 stages x 2 layers; a stage's first layer changes the shape
SPEC = f"""\
format: dmc.space/1
name: tiny_chain
kind: chain
macro:
  kind: chain
  activation: relu6
  stem: {{channels: 16, stride: 1}}
  first_block: {{channels: 16}}
  stages:
    - {{channels: 16, layers: 2, stride: 2}}
    - {{channels: 32, layers: 2, stride: 2}}
  head: {{channels: 64, dropout: 0.0}}
layers:
  candidates: {EVERY}
  first_of_stage: {FIRST}
search:   # the S5 setting's rates, a toy-sized run
  epochs: 2
  batch_size: 8
  image_size: 16
  lr: 0.045
  lr_min: 0.0
  weight_decay: 0.0001
  arch_lr: 0.001
"""
SPEC_DEFAULTS = dict(epochs=2, batch_size=8, image_size=16, lr=0.045, lr_min=0.0, weight_decay=1e-4, arch_lr=1e-3)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain-spec") / "tiny_chain.yaml"
    path.write_text(SPEC)
    return str(path)


@pytest.fixture(scope="module")
def chain(spec, toy_data):
    """Settings of a seeded search of the tiny chain space on the toy data; the rest from the spec's search:."""
    return dict(space=spec, dataset=toy_data, deterministic=True)


def run_search(settings, run_dir, **extra):
    return search(search_config_for_space({**settings, **extra}), run_dir)


def final_model(result):
    return SEARCH_RUN.load(result.run_dir / "last.pt")["model"]


def argmax_genotype(rows):
    """The layers an independent argmax of the recorded per-layer weights picks (the first of equal ones)."""
    return [ops[max(range(len(ops)), key=lambda k: (row[k], -k))] for row, ops in zip(rows, CANDIDATES)]


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def tensorboard_alphas(run):
    """{(tag, candidate): [values by epoch]} of the per-layer alpha scalars in ``run/tb``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for folder in sorted((run / "tb").iterdir()):
        if not folder.is_dir():
            continue
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found[(tag, int(folder.name.rsplit("_", 1)[1]))] = [e.value for e in sorted(events.Scalars(tag),
                                                                                        key=lambda e: e.step)]
    return found


def test_cli_chain_search_records_per_layer_alphas_derives_and_compiles(cli, tmp_path, spec, toy_data):
    run = tmp_path / "run"
    result = cli("search", spec, "--dataset", toy_data, "--width", "0.5", "--deterministic", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert "genotype: stage 0 (16): " in result.stdout  # described per stage of the skeleton

    history = read_history(run)
    assert [r["epoch"] for r in history] == [0, 1] and [r["beta"] for r in history] == [1.0, 0.5]
    for record in history:
        rows = record["alphas"]["layers"]
        assert list(record["alphas"]) == ["layers"]
        assert [len(row) for row in rows] == [len(ops) for ops in CANDIDATES]
        assert all(math.isclose(sum(row), 1.0, rel_tol=1e-6) for row in rows)
        assert record["genotype"]["kind"] == "chain" and record["genotype"]["layers"] == argmax_genotype(rows)
    # the last record's weights are the softmax of last.pt's logits over each layer's own candidates
    logits = SEARCH_RUN.load(run / "last.pt")["model"]["alpha_layers"]
    assert logits.shape == (4, 3)
    for i, ops in enumerate(CANDIDATES):
        expected = torch.exp(logits[i, : len(ops)]) / torch.exp(logits[i, : len(ops)]).sum()
        torch.testing.assert_close(torch.tensor(history[-1]["alphas"]["layers"][i]), expected, rtol=1e-6, atol=1e-7)

    scalars = tensorboard_alphas(run)
    assert set(scalars) == {(f"alpha_layers/layer_{i:02d}", k) for i, ops in enumerate(CANDIDATES)
                            for k in range(len(ops))}
    for (tag, k), values in scalars.items():
        i = int(tag[-2:])
        assert values == pytest.approx([r["alphas"]["layers"][i][k] for r in history], rel=1e-6)

    genotype = load_genotype(run / "genotype.json")
    assert isinstance(genotype, ChainGenotype) and json.loads((run / "genotype.json").read_text())["kind"] == "chain"
    assert genotype.macro.width == 0.5 and genotype == derive_run(run, "best")
    best_epoch = SEARCH_RUN.load(run / "best.pt")["best_epoch"]
    assert genotype.to_dict() == history[best_epoch]["genotype"]

    derived = cli("derive", str(run), "--checkpoint", "epoch:0", "-o", str(tmp_path / "g.json"))
    assert derived.exit_code == 0, derived.output
    assert json.loads((tmp_path / "g.json").read_text()) == history[0]["genotype"]

    compiled = cli("compile", str(tmp_path / "g.json"), "--width", "0.25", "--classes", "10", "-o",
                   str(tmp_path / "n.pt"))
    assert compiled.exit_code == 0, compiled.output
    file = read_network_file(tmp_path / "n.pt")
    assert file.genotype == load_genotype(tmp_path / "g.json")
    assert file.build_args.macro.width == 0.25 and file.build_args.num_classes == 10
    network = load_network(tmp_path / "n.pt").eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_the_space_search_defaults_apply_unless_flags_are_given(cli, tmp_path, spec, toy_data):
    s5 = search_config_for_space({"space": "proxyless_s5"})
    assert (s5.lr, s5.arch_lr, s5.weight_decay, s5.epochs, s5.batch_size, s5.image_size) == (
        0.045, 1e-3, 1e-4, 30, 768, 224)
    given = search_config_for_space({"space": "proxyless_s5", "lr": 0.1, "epochs": 3, "image_size": 64,
                                    "arch_lr": None})
    assert (given.lr, given.epochs, given.image_size, given.arch_lr, given.batch_size) == (0.1, 3, 64, 1e-3, 768)
    assert search_config_for_space({"space": "tiny"}).lr == SearchConfig().lr == 0.025  # a cell space: dmc's

    run = tmp_path / "defaults"
    result = cli("search", spec, "--dataset", toy_data, "--epochs", "1", "--out", str(run))
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert {k: saved["config"][k] for k in SPEC_DEFAULTS} == {**SPEC_DEFAULTS, "epochs": 1}
    assert saved["dataset"]["image_size"] == 16 and saved["space"] == "tiny_chain"

    config = tmp_path / "search.yaml"
    config.write_text(f"space: '{spec}'\nlr: 0.01\n")
    loaded = load_search_config(config, arch_lr=0.002, epochs=None)
    assert (loaded.lr, loaded.arch_lr, loaded.epochs, loaded.weight_decay) == (0.01, 0.002, 2, 1e-4)


def test_seeds_make_independent_chain_searches_with_the_flags_given(cli, tmp_path, spec, toy_data):
    out = tmp_path / "multi"
    result = cli("search", spec, "--dataset", toy_data, "--seeds", "0,1", "--epochs", "1", "--lr", "0.01",
                 "--arch-lr", "0.002", "--batch-size", "16", "--deterministic", "--out", str(out))
    assert result.exit_code == 0, result.output
    runs = [out / "seed-0", out / "seed-1"]
    assert all(isinstance(load_genotype(r / "genotype.json"), ChainGenotype) for r in runs)
    configs = [json.loads((r / "config.json").read_text())["config"] for r in runs]
    assert [c["seed"] for c in configs] == [0, 1]
    for c in configs:
        assert (c["lr"], c["arch_lr"], c["batch_size"], c["epochs"], c["weight_decay"]) == (0.01, 0.002, 16, 1, 1e-4)
    first, second = (read_history(r)[0]["alphas"] for r in runs)
    assert first != second


def test_first_and_second_order_search_a_chain_space(tmp_path, chain):
    first = run_search(chain, tmp_path / "first", epochs=1)
    second = run_search(chain, tmp_path / "second", epochs=1, order=2)
    a, b = final_model(first)["alpha_layers"], final_model(second)["alpha_layers"]
    assert torch.isfinite(b).all() and not torch.equal(a, b)
    assert json.loads((second.run_dir / "config.json").read_text())["config"]["order"] == 2


def test_second_order_gradient_of_a_chain_supernet_matches_the_exact_unrolled_one(spec):
    """As tests/search/test_architect.py, on chain layers: c_in != c_out, strides, 'skip', factorized reduces."""
    torch.manual_seed(0)
    net = build_supernet(load_space(spec), 3).double().eval()
    net.set_beta(0.5)
    xt, yt = torch.randn(3, 3, 16, 16, dtype=torch.double), torch.tensor([0, 1, 2])
    xv, yv = torch.randn(3, 3, 16, 16, dtype=torch.double), torch.tensor([2, 1, 0])
    lr = 0.05
    names = [n for n, p in net.named_parameters() if not n.startswith("alpha_")]
    weights = [p for n, p in net.named_parameters() if not n.startswith("alpha_")]
    g = torch.autograd.grad(F.cross_entropy(net(xt), yt), weights, create_graph=True)
    unrolled = {n: w - lr * gw for n, w, gw in zip(names, weights, g)}
    exact = torch.autograd.grad(F.cross_entropy(functional_call(net, unrolled, (xv,)), yv), net.arch_parameters())
    architect = Architect(net, torch.optim.SGD(net.arch_parameters(), lr=1.0), order=2, momentum=0.0,
                          weight_decay=0.0, fd_radius=1e-6)
    approx = architect._unrolled_grads(xt, yt, xv, yv, lr, torch.optim.SGD(weights, lr=lr))
    assert exact[0].abs().max() > 1e-6
    torch.testing.assert_close(approx[0], exact[0], rtol=1e-4, atol=1e-8)


def test_fused_kernels_give_the_reference_chain_step_and_alphas(tmp_path, chain):
    torch.manual_seed(0)
    reference = build_supernet(load_space(chain["space"]), 10)
    reference.set_beta(0.7)
    fused = build_supernet(load_space(chain["space"]), 10)
    fused.load_state_dict(reference.state_dict())
    fused.set_beta(0.7)
    fused.set_kernels(FUSED)
    fused.set_channels_last(True)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, 16, 16, generator=gen), torch.randint(0, 10, (5,), generator=gen)
    grads = []
    for model in (reference, fused):
        loss = F.cross_entropy(model(x), y)
        grads.append(dict(zip([n for n, _ in model.named_parameters()],
                              torch.autograd.grad(loss, list(model.parameters())))))
    assert grads[0]["alpha_layers"].abs().max() > 1e-5
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-6, msg=name)

    runs = {kind: run_search(chain, tmp_path / kind, kernels=kind) for kind in ("fused", "reference")}
    for kind, result in runs.items():
        assert json.loads((result.run_dir / "config.json").read_text())["kernels"] == kind
    a, b = (final_model(runs[k])["alpha_layers"] for k in ("fused", "reference"))
    # Adam's first steps move an alpha by ~arch_lr whatever its gradient's size (tests/search/test_search.py)
    other = final_model(run_search(chain, tmp_path / "other", kernels="reference", seed=1))["alpha_layers"]
    # fused and reference differ by ~1e-8 here; another seed by ~1e-2. (An alpha whose gradient is within
    # rounding of 0 could still differ by ~arch_lr: Adam's first steps move by ~lr whatever the gradient's size.)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert (other - b).abs().max() > 1e-3


def test_recompute_edges_chain_search_matches_the_plain_one(tmp_path, chain):
    plain, lean = (final_model(run_search(chain, tmp_path / name, recompute_edges=flag))
                   for name, flag in (("plain", False), ("lean", True)))
    for name in plain:
        torch.testing.assert_close(plain[name], lean[name], rtol=1e-4, atol=1e-5, msg=name)


def test_beta_schedule_scales_the_auxiliary_skips_and_beta0_zero_skips_them(tmp_path, chain):
    minus = run_search(chain, tmp_path / "minus", beta_schedule="cosine", epochs=3)
    assert [r["beta"] for r in read_history(minus.run_dir)] == pytest.approx([1.0, 0.75, 0.25])
    darts = run_search(chain, tmp_path / "darts", beta_schedule="cosine", epochs=3, beta0=0.0)
    assert [r["beta"] for r in read_history(darts.run_dir)] == [0.0, 0.0, 0.0]
    # layers 0 and 2 change the shape: their auxiliary skip is a factorized reduce with batch-norm statistics,
    # which move only where it runs
    minus_state, darts_state = final_model(minus), final_model(darts)
    for layer in (0, 2):
        key = f"blocks.{layer}.aux.bn"
        assert darts_state[f"{key}.num_batches_tracked"] == 0
        assert torch.equal(darts_state[f"{key}.running_mean"], torch.zeros_like(darts_state[f"{key}.running_mean"]))
        assert minus_state[f"{key}.num_batches_tracked"] > 0
        assert minus_state[f"{key}.running_mean"].abs().max() > 0
    assert not torch.equal(darts_state["alpha_layers"], minus_state["alpha_layers"])


def test_cell_flags_on_a_chain_space_and_width_on_a_cell_space_are_one_error_line(cli, tmp_path, spec, toy_data):
    for flag in (["--channels", "8"], ["--layers", "3"]):
        line = one_error_line(cli("search", spec, *flag, "--out", str(tmp_path / "a")))
        assert "tiny_chain is a chain space" in line and "--width" in line
    line = one_error_line(cli("search", "tiny", "--width", "0.5", "--out", str(tmp_path / "b")))
    assert "tiny is a cell space" in line and "--channels" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_image_size_the_auxiliary_reduces_cannot_halve_is_one_error_line(cli, tmp_path, spec, toy_data):
    # 10 -> 5x5 maps at the stride-2 layer 2, whose auxiliary factorized reduce needs even sizes
    line = one_error_line(cli("search", spec, "--dataset", toy_data, "--image-size", "10", "--out",
                              str(tmp_path / "odd")))
    assert "input size 10x10: chain layer 2 (stage 1) with its factorized reduce gets 5x5 feature maps" in line
    assert "divisible by 4" in line
    assert not (tmp_path / "odd" / "config.json").exists()


class _Killed(Exception):
    pass


def test_the_bundled_proxyless_s5_searches_resumes_exactly_and_its_genotype_exports(tmp_path, toy_data):
    """The issue's acceptance path on the real S5 space (width 0.1, 32 px, the toy images): a search interrupted
    mid-epoch resumes to the uninterrupted result, and its genotype compiles and exports with ONNX parity."""
    from dmc.exporters.onnx import export_onnx

    config = dict(space="proxyless_s5", dataset=toy_data, width=0.1, image_size=32, epochs=2, batch_size=8, seed=0,
                  deterministic=True)
    straight = search(SearchConfig(**config), tmp_path / "straight")

    def kill_mid_epoch(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 1:
            raise _Killed

    with pytest.raises(_Killed):
        search(SearchConfig(**config), tmp_path / "resumed", on_event=kill_mid_epoch)
    resumed = search(SearchConfig(), tmp_path / "resumed", resume=True)
    a, b = (SEARCH_RUN.load(r / "last.pt")["model"] for r in (straight.run_dir, resumed.run_dir))
    assert a["alpha_layers"].shape == (19, 7) and torch.equal(a["alpha_layers"], b["alpha_layers"])
    assert resumed.genotype == straight.genotype and len(straight.genotype.layers) == 19
    assert read_history(straight.run_dir) == [dict(r, seconds=s["seconds"]) for r, s in
                                              zip(read_history(resumed.run_dir), read_history(straight.run_dir))]
    network = build_network(straight.genotype, width=0.1, num_classes=2).eval()
    report = export_onnx(network, tmp_path / "s5.onnx", input_size=32)
    assert report["passed"] and report["parity"]["max_abs_error"] <= 1e-4


def test_a_last_batch_of_one_image_is_dropped_instead_of_crashing_batch_norm(tmp_path, toy_data):
    """proxyless_s5 at 32 px ends in 1x1 maps, where batch norm in training needs two images: the toy halves of 16
    images in batches of 5 end with one image, which is dropped (3 steps an epoch), as `dmc train` drops it."""
    steps = []

    def count(kind, **info):
        if kind == "step":
            steps.append(info["step"])

    search(SearchConfig(space="proxyless_s5", dataset=toy_data, width=0.1, image_size=32, epochs=1, batch_size=5,
                        seed=0), tmp_path / "run", on_event=count)
    assert steps == [1, 2, 3]  # counted from 1
    with pytest.raises(InvalidInputError, match="batch_size must be >= 2"):
        SearchConfig(space="proxyless_s5", batch_size=1).validate()
