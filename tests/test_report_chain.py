"""The demo report's chain section: a chain search run named under the manifest's ``chain`` key is reported with
its skipped layers per epoch, its genotype and its pictures; a chain stage that did not run is reported missing."""

import json

from dmc.report import write_report
from dmc.search import SearchConfig, search


def test_the_chain_pipeline_has_its_own_section(tmp_path, chain_spec, toy_data):
    spec = chain_spec("report_chain", ["mbconv_k3_e3", "skip"], ["mbconv_k3_e3", "mbconv_k5_e3"])
    demo = tmp_path / "demo"
    config = SearchConfig(space=spec, dataset=toy_data, epochs=2, batch_size=8, image_size=16, seed=0)
    result = search(config, demo / "chain" / "search")
    (demo / "manifest.json").write_text(json.dumps({
        "version": 1,
        "chain": {"title": "Chain space S5", "train_run": "chain/train",
                  "searches": [{"name": "chain", "title": "DARTS- in a chain", "run": "chain/search"}]}}))
    text = write_report(demo).read_text()
    chain = text[text.index("## 5. Chain space S5"):]
    assert "skipped layers in the derived chain" in chain
    skips = sum(op == "skip" for op in result.genotype.layers)
    assert f"| {skips} |" in chain and f"`{result.genotype.describe()}`" in chain
    assert "viz/chain/genotype_layers.png" in chain and (demo / "viz" / "chain" / "genotype_layers.png").is_file()
    assert "viz/chain/alphas_layers.png" in chain and (demo / "viz" / "chain" / "alphas_layers.png").is_file()
    assert "Training run missing." in chain and "ONNX export missing." in chain
    assert "Search runs missing." in text[:text.index("## 5.")]  # the cell pipeline was left out
