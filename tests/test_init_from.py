"""`train.init_from` naming another run of the same kind: a language model
continues on new data with the first run's tokenizer and weights; a run
whose architecture differs is refused in one line."""

from __future__ import annotations

import filecmp

import pytest

from conftest import cli_in_process


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("init_from")
    config = yaml.safe_load((root / "configs/tiny-char.yaml").read_text())
    config["train"].update(epochs=1, steps_per_epoch=20, save_every_steps=20, num_samples=0)
    (tmp / "first.yaml").write_text(yaml.safe_dump(config))
    result = cli_in_process("train", "--config", tmp / "first.yaml", "--run-dir", tmp / "first", "--quiet")
    assert result.code == 0, result.err
    return tmp, config


def _write(tmp, config, name, **changes):
    import copy

    import yaml

    config = copy.deepcopy(config)
    for key, value in changes.items():
        section, field = key.split(".")
        config[section][field] = value
    (tmp / name).write_text(yaml.safe_dump(config))
    return tmp / name


@pytest.mark.slow
def test_a_gpt_run_continues_on_new_text_from_another_runs_weights(first_run, cli):
    tmp, config = first_run
    text = tmp / "new.txt"
    text.write_text("A new text the first run never read, with lines of its own.\n" * 200)
    second = _write(tmp, config, "second.yaml", **{"data.source": str(text), "train.max_steps": 1,
                                                   "train.learning_rate": 1e-9, "train.warmup_steps": 0,
                                                   "train.init_from": str(tmp / "first")})
    result = cli("train", "--config", second, "--run-dir", tmp / "second")
    assert result.code == 0, result.err
    assert f"Initialised all 20 weights from {tmp / 'first'}" in result.out, result.out
    # The first run's tokenizer, copied: the new text's characters are read as the first run read them.
    assert filecmp.cmp(tmp / "first/tokenizer/tokenizer.json", tmp / "second/tokenizer/tokenizer.json", shallow=False)
    lines = tmp / "lines.txt"
    lines.write_text("ROMEO: what light\nJULIET: no more\n")
    first, second_scores = (cli("score", "--run", tmp / run, lines) for run in ("first", "second"))
    # One step at a learning rate of 1e-9: the same model.
    assert first.out.splitlines()[1:3] == second_scores.out.splitlines()[1:3], (first.out, second_scores.out)


@pytest.mark.slow
@pytest.mark.parametrize("changes, message", [
    ({"model.num_layers": 2}, "model.num_layers: 2 differs from 1 in train.init_from"),
    ({"model.seq_len": 64}, "model.seq_len: 64 is longer than the 32 positions of train.init_from"),
    ({"model.kind": "lstm", "model.num_layers": 1}, "trained a gpt model, not a lstm; name a run of model.kind lstm"),
])
def test_a_run_of_another_architecture_is_refused_in_one_line(first_run, cli, changes, message):
    tmp, config = first_run
    bad = _write(tmp, config, "bad.yaml", **{"train.init_from": str(tmp / "first"), **changes})
    result = cli("train", "--config", bad, "--run-dir", tmp / "bad")
    assert result.code == 2 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_gpt_run_exports_a_keras_hub_preset_that_keras_hub_loads(first_run, cli):
    """`export --format keras-hub` of kerasllm's own GPT: keras-hub's
    `CausalLM.from_preset` (with kerasllm imported, which registers the
    classes) gives the run's logits; the tokenizer is saved beside it."""
    import keras_hub
    import numpy as np

    from kerasllm.data.tokenizers import load_tokenizer
    from kerasllm.loaded_run import load_run

    tmp, _ = first_run
    result = cli("export", "--run", tmp / "first", "--base-dir", tmp / "models", "--format", "keras-hub", "--quiet")
    assert result.code == 0, result.err
    import json

    preset = json.loads(result.out.strip().splitlines()[-1])["keras_hub_preset"]
    model = keras_hub.models.CausalLM.from_preset(preset)
    tokenizer = load_tokenizer(f"{preset}/kerasllm_tokenizer")
    ids = np.array([[tokenizer.start_id] + tokenizer.tokenize(["ROMEO: what"]).to_list()[0]], "int32")
    np.testing.assert_allclose(model(ids).numpy(), load_run(str(tmp / "first")).model(ids).numpy(), atol=1e-6)
