"""dmc viz: the pictures exist, are valid images, and show the genotype they were drawn from."""

import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from dmc.families.cell.genotype import Genotype
from dmc.genotype import published_genotypes
from dmc.search import SearchConfig, search
from dmc.space import load_space
from dmc.viz import alpha_figure, draw_genotype, visualize


def svg_labels(path):
    root = ET.parse(path).getroot()
    return [t.text.strip() for t in root.iter() if t.tag.endswith("text") and t.text and t.text.strip()]


def assert_png(path):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100


@pytest.mark.parametrize("name", sorted(n for n, g in published_genotypes().items() if g.kind != "chain"))
def test_cells_show_every_edge_with_its_op(tmp_path, name):
    genotype = published_genotypes()[name]
    paths = draw_genotype(genotype, tmp_path, name)
    assert sorted(p.name for p in paths) == sorted(f"{name}_{c}.{s}" for c in ("normal", "reduce")
                                                   for s in ("png", "svg"))
    for cell_type, cell in genotype.cells.items():
        assert_png(tmp_path / f"{name}_{cell_type}.png")
        labels = svg_labels(tmp_path / f"{name}_{cell_type}.svg")
        ops = sorted(op for op, _ in cell.edges)
        assert sorted(label for label in labels if label in {op for op, _ in cell.edges}) == ops
        skips = sum(op == "skip_connect" for op in ops)
        assert any(re.search(rf"{cell_type} cell \({skips} skip connection", label) for label in labels)


def test_nb201_genotype(tmp_path):
    genotype = Genotype.from_nb201_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    paths = draw_genotype(genotype, tmp_path, "nb201")
    assert [p.name for p in paths] == ["nb201_normal.png", "nb201_normal.svg"]
    labels = svg_labels(tmp_path / "nb201_normal.svg")
    assert "input" in labels and "output" in labels
    assert sum(label in {op for op, _ in genotype.normal.edges} for label in labels) == len(genotype.normal.edges)


@pytest.mark.parametrize("space_name, expected", [
    ("darts_s0", {0: "edge 0: $c_{k-2}$ -> node 0", 1: "edge 1: $c_{k-1}$ -> node 0", 4: "edge 4: 0 -> node 1",
                  13: "edge 13: 2 -> node 3"}),
    ("nb201", {0: "edge 0: input -> node 0", 2: "edge 2: 0 -> node 1", 5: "edge 5: 1 -> node 2"}),
])
def test_alpha_panels_name_each_edges_input_as_the_cell_pictures_do(space_name, expected):
    """``space.edges`` lists (node, input); the panel title reads input -> node, inputs named c_{k-2}, c_{k-1} (or
    input), then nodes from 0, as in the cell pictures."""
    space = load_space(space_name)
    rows = space.candidates("normal")
    history = [{"epoch": epoch, "alphas": {"normal": [[1 / len(ops)] * len(ops) for ops in rows]}}
               for epoch in range(2)]
    panels = [ax for ax in alpha_figure(history, space, "normal").axes if ax.axison]
    titles = {e: panels[e].get_title() for e in expected}
    assert titles == expected


def test_run_folder_gives_cells_alphas_and_beta(tmp_path, toy_data):
    run = search(SearchConfig(space="tiny", dataset=toy_data, epochs=2, batch_size=8, channels=4, layers=3,
                              image_size=16, kernels="reference"), tmp_path / "run").run_dir
    paths = visualize(run, tmp_path / "viz")
    names = sorted(p.name for p in paths)
    assert names == sorted(["genotype_normal.png", "genotype_normal.svg", "genotype_reduce.png",
                            "genotype_reduce.svg", "alphas_normal.png", "alphas_reduce.png", "beta.png"])
    for path in paths:
        if path.suffix == ".png":
            assert_png(path)


def test_cli_viz(cli, tmp_path):
    result = cli("viz", "DARTS_V2", "--out", str(tmp_path / "v"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v" / "DARTS_V2_normal.svg").is_file()
    result = cli("viz", "NO_SUCH_GENOTYPE")
    assert result.exit_code == 2 and "no such genotype file or published genotype" in result.output
    (tmp_path / "empty").mkdir()
    result = cli("viz", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "not a search run folder" in result.output


def test_a_published_name_wins_over_a_folder_of_that_name_that_is_no_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DARTS_V2").mkdir()  # e.g. left by an earlier `dmc viz DARTS_V2 -o DARTS_V2`
    result = cli("viz", "DARTS_V2", "--out", "v")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v" / "DARTS_V2_normal.svg").is_file()
