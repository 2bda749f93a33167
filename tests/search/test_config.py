"""Search settings from YAML files: a wrongly typed key is one line naming the key and the type it
needs (issue 12, item 8), whatever the value (text, lists, mappings, deep nesting, NaN)."""

import pytest

from dmc.errors import InvalidInputError
from dmc.search import SearchConfig
from dmc.search.space_settings import load_search_config


@pytest.mark.parametrize("line,message", [
    ('epochs: "abc"', "epochs: expected an integer, got 'abc'"),
    ("epochs: 2.5", "epochs: expected an integer, got 2.5"),
    ("epochs: true", "epochs: expected an integer, got True"),
    ("lr: [1]", "lr: expected a finite number, got a list"),
    ("lr: {a: 1}", "lr: expected a finite number, got a mapping"),
    ("lr: '0.1'", "lr: expected a finite number, got '0.1'"),
    ("seed: 1.5", "seed: expected an integer, got 1.5"),
    ("deterministic: 1", "deterministic: expected true or false, got 1"),
    ("dataset: 3", "dataset: expected text, got 3"),
    ("channels: [4]", "channels: expected an integer or null, got a list"),
    ("arch_betas: [0.5]", "arch_betas: expected a list of 2 finite numbers, got a list"),
    ("arch_betas: [0.5, x]", "arch_betas: expected a list of 2 finite numbers"),
    ("extra: [1, 2]", "extra: expected a mapping of plain data"),
    ("extra: {when: 2024-01-01}", "extra: expected a mapping of plain data"),  # a date: not JSON
    ("beta_stop: " + "[" * 200 + "]" * 200, "beta_stop: expected an integer or null, got a list"),
    ("epochs: " + "{a: " * 100 + "1" + "}" * 100, "epochs: expected an integer, got a mapping"),
    ("1: 2", "setting names must be text, got 1"),
])
def test_wrongly_typed_search_keys_are_named(tmp_path, line, message):
    path = tmp_path / "search.yaml"
    path.write_text(f"space: tiny\n{line}\n")
    with pytest.raises(InvalidInputError, match="^" + str(path) + ": " + message.replace("[", r"\[")) as info:
        load_search_config(path)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


def test_well_typed_values_are_taken_as_the_fields_types(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text("space: tiny\nlr: 1\narch_betas: [0, 0.9]\nchannels: null\nextra: {note: [1, 2.5, text]}\n")
    config = load_search_config(path)
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.arch_betas == (0.0, 0.9)
    assert config.channels is None and config.extra == {"note": [1, 2.5, "text"]}
    assert SearchConfig.from_dict(config.to_dict()) == config  # as saved in config.json and read back on resume


@pytest.mark.parametrize("text,message", [
    ("- epochs: 2\n", "expected a mapping of settings, got a list"),
    ("[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("space: tiny\nepochs: 2\nepochs: 3\n", "duplicate key 'epochs'"),
])
def test_config_files_that_are_not_a_mapping_of_settings(tmp_path, text, message):
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        load_search_config(path)


def test_cli_config_errors_are_one_line_with_exit_2(cli, tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text("space: tiny\nepochs: \"abc\"\n")
    result = cli("search", "--config", str(path), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: epochs: expected an integer, got 'abc' (hint: e.g. epochs: 50)"]
    assert not (tmp_path / "run").exists()
    path.write_text("space: tiny\nlr: [1]\n")
    result = cli("search", "--config", str(path), "--lr", "0.1", "--epochs", "x")  # typer checks flags itself
    assert result.exit_code == 2 and "unexpected" not in result.output


def test_a_renamed_setting_of_an_older_version_still_loads():
    """Run folders and config files of versions before ``compile`` became ``torch_compile`` keep loading."""
    old = SearchConfig.from_dict({"space": "tiny", "compile": True}, "config.json")
    assert old.torch_compile is True and old == SearchConfig(space="tiny", torch_compile=True)
    with pytest.raises(InvalidInputError, match="unknown setting 'compile'"):  # both names: the old one is unknown
        SearchConfig.from_dict({"compile": True, "torch_compile": False}, "config.json")
