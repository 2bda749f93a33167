"""dmc viz of chain genotypes and chain searches: one box per layer, skips shown removed, per-layer alphas."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from dmc.errors import InvalidInputError
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.macro import ChainMacro, Stage
from dmc.genotype import published_genotypes
from dmc.runfolder import SEARCH_RUN, RunFolder, read_history
from dmc.search import SearchConfig, search
from dmc.viz import alpha_figure, draw_genotype, plot_alphas, visualize

CHAINS = sorted(name for name, genotype in published_genotypes().items() if genotype.kind == "chain")
LAYER_LABEL = re.compile(r"k\d e\d|skip")


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory, chain_spec, toy_data):
    """A real 3-epoch search of a 4-layer chain space on 32 toy images (about a second)."""
    spec = chain_spec("tiny_chain", ["mbconv_k3_e1", "mbconv_k5_e3_se", "skip"], ["mbconv_k3_e1", "mbconv_k5_e3_se"])
    return search(SearchConfig(space=spec, dataset=toy_data, epochs=3, batch_size=8, image_size=16,
                               kernels="reference"), tmp_path_factory.mktemp("chain-run") / "run").run_dir


def svg_texts(path):
    root = ET.parse(path).getroot()
    return [t.text.strip() for t in root.iter() if t.tag.endswith("text") and t.text and t.text.strip()]


def png_size(path):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def expected_box(op, stride):
    """What a layer's box should read, from the op name's parts (mbconv_k5_e3_g2_se -> 'k5 e3' / 'SE g2')."""
    stride_mark = ["s2"] if stride == 2 else []
    if op == "skip":
        return "skip", stride_mark
    _, kernel, expansion, *rest = op.split("_")
    return f"{kernel} {expansion}", (["SE"] if "se" in rest else []) + (["g2"] if "g2" in rest else []) + stride_mark


def strides(macro):
    """The stride of every layer, from the stages: a stage's first layer has its stride."""
    return [stage.stride if i == 0 else 1 for stage in macro.stages for i in range(stage.layers)]


def layer_labels(texts):
    return [t for t in texts if LAYER_LABEL.fullmatch(t)]


@pytest.mark.parametrize("name", CHAINS)
def test_published_chain_has_one_box_per_layer(tmp_path, name):
    genotype = published_genotypes()[name]
    paths = draw_genotype(genotype, tmp_path, name)
    assert [p.name for p in paths] == [f"{name}_layers.png", f"{name}_layers.svg"]
    width, height = png_size(paths[0])
    assert 500 < width < 2000 and 700 < height < 2000
    texts = svg_texts(paths[1])
    n = len(genotype.layers)
    assert n >= 16
    assert all(texts.count(f"L{i}") == 1 for i in range(n)) and f"L{n}" not in texts
    expected = [expected_box(op, s) for op, s in zip(genotype.layers, strides(genotype.macro))]
    assert layer_labels(texts) == [label for label, _ in expected]
    details = [" ".join(d) for _, d in expected if d]
    assert [t for t in texts if t in set(details)] == details
    assert texts.count("removed") == 0 and f"{name}: {n} of {n} layers (0 skipped)" in " ".join(texts)


def test_fairnas_a_reads_as_published(tmp_path):
    texts = svg_texts(draw_genotype(published_genotypes()["FairNAS_A"], tmp_path, "A")[1])
    assert layer_labels(texts) == [
        "k7 e3", "k3 e3", "k7 e3", "k3 e6", "k7 e6", "k3 e3", "k3 e3", "k7 e6", "k7 e6", "k5 e3",
        "k3 e6", "k5 e3", "k5 e3", "k3 e6", "k3 e6", "k7 e6", "k3 e6", "k7 e6", "k5 e6"]
    assert [t for t in texts if t.startswith("stage ")] == [
        "stage 0: 32 ch, s2", "stage 1: 40 ch, s2", "stage 2: 80 ch, s2", "stage 3: 96 ch", "stage 4: 192 ch, s2",
        "stage 5: 320 ch"]
    assert texts.count("s2") == 4  # the first layers of the four stride-2 stages
    for part, width in (("conv 3x3", "32 ch s2"), ("sep 3x3", "16 ch"), ("head 1x1", "1280 ch")):
        assert texts[texts.index(part) + 1] == width


def test_skips_are_removed_or_projected_and_widths_scaled(tmp_path):
    macro = ChainMacro((Stage(32, 2, 2), Stage(64, 2, 1)), stem_channels=32, first_block=None, head_channels=96,
                       width=0.5)
    genotype = ChainGenotype(("skip", "mbconv_k5_e3_g2_se", "skip", "mbconv_k7_e6"), macro)
    png, svg = draw_genotype(genotype, tmp_path, "tiny")
    png_size(png)
    texts = svg_texts(svg)
    # layer 0 changes the shape (16 -> 16, stride 2): its skip is a 1x1 conv; layer 2 (16 -> 32) too;
    # only a skip that keeps the shape removes its layer
    assert layer_labels(texts) == ["skip", "k5 e3", "skip", "k7 e6"]
    assert "1x1 conv s2" in texts and "SE g2" in texts and "1x1 conv" in texts and "removed" not in texts
    genotype = ChainGenotype(("mbconv_k3_e1", "skip", "mbconv_k3_e1", "skip"), macro)
    texts = svg_texts(draw_genotype(genotype, tmp_path, "removed")[1])
    assert texts.count("removed") == 2
    assert "removed: 2 of 4 layers (2 skipped), width 0.5, relu6" in texts
    assert [t for t in texts if t.startswith("stage ")] == ["stage 0: 16 ch, s2", "stage 1: 32 ch"]
    assert "sep 3x3" not in texts and texts[texts.index("head 1x1") + 1] == "96 ch"
    dashed = (tmp_path / "removed_layers.svg").read_text().count("stroke-dasharray: 3.7,1.6; stroke-dashoffset: 0; "
                                                                  "stroke: #999999")
    assert dashed == 3  # the two removed layers and the legend's sample


def test_chain_run_folder_gives_layers_alphas_and_beta(tmp_path, chain_run):
    paths = visualize(chain_run, tmp_path / "viz")
    assert sorted(p.name for p in paths) == ["alphas_layers.png", "beta.png", "genotype_layers.png",
                                             "genotype_layers.svg"]
    for path in paths:
        assert path.stat().st_size > 1000
    assert png_size(tmp_path / "viz" / "alphas_layers.png") == (round(4 * 3.4 * 110), round((2.2 + 0.4 + 0.4) * 110))
    width, height = png_size(tmp_path / "viz" / "beta.png")
    assert (width, height) == (660, 374)
    genotype = json.loads((chain_run / "genotype.json").read_text())
    texts = svg_texts(tmp_path / "viz" / "genotype_layers.svg")
    assert layer_labels(texts) == [expected_box(op, s)[0] for op, s in zip(genotype["layers"], (2, 1, 2, 1))]
    assert [t for t in texts if re.fullmatch(r"L\d+", t)] == ["L0", "L1", "L2", "L3"]


def test_layer_alphas_plot_each_layers_own_candidates(chain_run):
    history = read_history(chain_run)
    space = RunFolder(chain_run, SEARCH_RUN).read_space()
    candidates = space.candidates("layers")
    assert [len(ops) for ops in candidates] == [2, 3, 2, 3]  # first of stage: no skip
    # the plotted weights are the softmax of the run's logits over each layer's own candidates
    logits = torch.load(chain_run / "last.pt", weights_only=True)["model"]["alpha_layers"]
    for e, ops in enumerate(candidates):
        np.testing.assert_allclose(history[-1]["alphas"]["layers"][e], logits[e, : len(ops)].softmax(-1), rtol=1e-5)
    fig = alpha_figure(history, space, "layers")
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 4
    colors = {}
    for e, (ax, ops) in enumerate(zip(panels, candidates)):
        assert ax.get_title().startswith(f"layer {e}: stage {e // 2}")
        assert [line.get_label() for line in ax.get_lines()] == [op.removeprefix("mbconv_") for op in ops]
        for k, line in enumerate(ax.get_lines()):
            assert list(line.get_xdata()) == [0, 1, 2]
            np.testing.assert_allclose(line.get_ydata(), [r["alphas"]["layers"][e][k] for r in history])
            assert colors.setdefault(line.get_label(), line.get_color()) == line.get_color()
    assert len(set(colors.values())) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["k3_e1", "k5_e3_se", "skip"]


def test_damaged_layer_alphas_are_named(tmp_path, chain_run):
    history = read_history(chain_run)
    space = RunFolder(chain_run, SEARCH_RUN).read_space()
    history[1]["alphas"]["layers"][3] = history[1]["alphas"]["layers"][3][:2]
    with pytest.raises(InvalidInputError, match=r"epoch 1 is damaged \(no layers alpha 3,2\)"):
        plot_alphas(history, space, "layers", tmp_path / "a.png")


def test_cli_viz_chain(cli, tmp_path, chain_run):
    result = cli("viz", "FairNAS_B", "--out", str(tmp_path / "v"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["FairNAS_B_layers.png", "FairNAS_B_layers.svg"]
    result = cli("viz", str(chain_run / "genotype.json"), "-o", str(tmp_path / "g"))
    assert result.exit_code == 0 and (tmp_path / "g" / "genotype_layers.svg").is_file()
    result = cli("viz", str(chain_run))
    assert result.exit_code == 0, result.output
    assert f"wrote {chain_run / 'viz' / 'alphas_layers.png'}" in result.output


def test_long_stage_wraps_onto_more_rows(tmp_path):
    macro = ChainMacro((Stage(16, 8, 1),), first_block=None, head_channels=None)
    genotype = ChainGenotype(("mbconv_k3_e6",) * 7 + ("skip",), macro)
    png, svg = draw_genotype(genotype, tmp_path, "long")
    texts = svg_texts(svg)
    assert layer_labels(texts) == ["k3 e6"] * 7 + ["skip"] and texts.count("removed") == 1
    assert [t for t in texts if t.startswith("stage ")] == ["stage 0: 16 ch"]
    assert "head 1x1" not in texts and "pool + FC" in texts
    width, height = png_size(png)
    assert width < 1400 and height > 500  # six boxes a row, then the rest below
