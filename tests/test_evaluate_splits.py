"""`kerasllm evaluate --split`: each kind of run is scored only on the splits
it has, a wrong split is one line naming the valid ones (answered before
TensorFlow loads), and no split chooser reads an unknown name as training data."""

import json
import subprocess
import sys

import pytest

from kerasllm import config as config_lib

from conftest import ROOT


def _run_dir(tmp_path, config_name: str):
    """A run directory holding only the config.yaml of a shipped config: all a split check reads."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config_lib.load(ROOT / "configs" / config_name).to_yaml())
    return run


@pytest.mark.parametrize("config_name, split, valid", [
    ("tiny-char.yaml", "dev", "validation, train"),  # read the training split as "dev" before
    ("tiny-char.yaml", "test", "validation, train"),
    ("seed-lstm.yaml", "dev", "validation, train"),
    ("squad-mlm.yaml", "dev", "validation, train"),
    ("spa-eng-transformer.yaml", "dev", "test, validation, train"),
    ("squad-qa.yaml", "train", "dev, validation"),
    ("squad-qa.yaml", "test", "dev, validation"),
    ("tiny-char.yaml", "held-out", "validation, train"),
])
def test_a_split_the_run_kind_lacks_is_one_line_naming_the_valid_ones(cli, tmp_path, config_name, split, valid):
    result = cli("evaluate", "--run", _run_dir(tmp_path, config_name), "--split", split)
    assert result.code == 2 and result.out == ""
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"--split {split}: " in result.err and f"are scored on {valid} (default " in result.err


def test_a_wrong_split_is_answered_before_tensorflow_loads(tmp_path):
    script = ("import sys; from kerasllm.cli.main import main\n"
              "try:\n    main(['evaluate', '--run', sys.argv[1], '--split', 'dev'])\n"
              "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, str(_run_dir(tmp_path, "tiny-char.yaml"))],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr


def test_split_choosers_refuse_an_unknown_name():
    """They test for the held-out split's name, so any other name used to be training data."""
    import tensorflow as tf

    from kerasllm.data import paired_text as parallel, pipelines, qa_data

    config = config_lib.load(ROOT / "configs/tiny-char.yaml")
    batches = tf.data.Dataset.from_tensors((tf.constant([0, 0], tf.int64), (tf.constant(["a"]), tf.constant([True]))))
    for name in ("dev", "test", "Validation"):
        with pytest.raises(ValueError, match=f"split '{name}': expected one of train, validation"):
            pipelines.split(batches, config.data, name)
    assert pipelines.count(pipelines.split(batches, config.data, "train")) == 1
    pairs = tf.data.Dataset.from_tensors((tf.constant(["a"]), tf.constant(["b"])))
    with pytest.raises(ValueError, match="split 'dev': expected one of train, validation, test"):
        parallel.split_pairs(pairs, config.data, "dev")
    qa = config_lib.load(ROOT / "configs/squad-qa.yaml")
    with pytest.raises(ValueError, match="split 'test': expected one of train, validation, dev"):
        qa_data.qa_examples(qa, "test")


def test_the_training_split_is_scored_under_its_own_name_with_a_note(trained, cli):
    run_dir, _ = trained
    result = cli("evaluate", "--run", run_dir, "--split", "train")
    assert result.code == 0, result.err
    scores = json.loads(result.out)
    assert scores["run"] == str(run_dir) and scores["split"] == "train"
    assert "training split" in scores["note"] and scores["loss"] > 0
    held_out = json.loads(cli("evaluate", "--run", run_dir).out)
    assert held_out["split"] == "validation" and "note" not in held_out
