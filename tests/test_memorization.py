"""`kerasllm audit-memorization`: the extraction test on a run's own splits.

A model overfit on a few random lines reproduces its training text from
prefixes and cannot reproduce held-out random text; mistakes are one line,
answered before TensorFlow loads.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from kerasllm import config as config_lib
from kerasllm.errors import UserError
from kerasllm.evaluation.memorization import lengths

from conftest import ROOT


def _config_only_run(tmp_path, config_name: str):
    """A run directory holding only the config.yaml of a shipped config."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config_lib.load(ROOT / "configs" / config_name).to_yaml())
    return run


def test_lengths_default_to_50_or_half_a_short_context_and_must_fit_it():
    assert lengths(128, None, None) == (50, 50)
    assert lengths(32, None, None) == (16, 16)
    assert lengths(32, 8, None) == (8, 16)
    with pytest.raises(UserError, match=r"--prefix-tokens 20 \+ --suffix-tokens 16 = 36 is more than the run's "
                                        r"model.seq_len \(32\); lower them"):
        lengths(32, 20, None)


@pytest.mark.parametrize("config_name, kind", [("spa-eng-transformer.yaml", "seq2seq"),
                                               ("squad-qa.yaml", "encoder/span"),
                                               ("squad-mlm.yaml", "encoder/masked_lm")])
def test_other_kinds_of_run_are_refused_in_one_line(cli, tmp_path, config_name, kind):
    result = cli("audit-memorization", "--run", _config_only_run(tmp_path, config_name))
    assert result.code == 2 and result.out == ""
    assert result.err.strip() == (f"error: --run {tmp_path / 'run'}: audit-memorization tests language models "
                                  f"(gpt, lstm); this run is {kind}")


def test_mistakes_are_answered_before_tensorflow_loads(tmp_path):
    script = ("import sys; from kerasllm.cli.main import main\n"
              "try:\n    main(['audit-memorization', '--run', sys.argv[1], '--prefix-tokens', '30'])\n"
              "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, str(_config_only_run(tmp_path, "tiny-char.yaml"))],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert "--prefix-tokens 30 + --suffix-tokens 16 = 46 is more than" in done.stderr


@pytest.mark.slow
def test_a_model_overfit_on_random_lines_reproduces_its_training_text_only(tmp_path, cli):
    """40 lines of random letters, one document each; a quarter of them
    held out. After a hundred steps on the rest the model continues
    training prefixes exactly, and no held-out one: random text cannot be
    predicted, only remembered."""
    rng = random.Random(0)
    lines = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(30)) for _ in range(40)]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    sets = [f"data.source={tmp_path / 'lines.txt'}", "data.document=line", "data.split_group=1",
            "data.val_fraction=0.25", "model.num_layers=2", "model.hidden_dim=64", "model.intermediate_dim=256",
            "train.epochs=1", "train.steps_per_epoch=100", "train.max_steps=100", "train.learning_rate=1e-2",
            "train.min_learning_rate=1e-3", "train.warmup_steps=10", "train.weight_decay=0", "train.num_samples=0",
            "train.save_every_steps=100", "train.log_every_steps=100", "train.steps_per_execution=10"]
    run_dir = tmp_path / "run"
    out = cli("train", "--config", ROOT / "configs" / "tiny-char.yaml", "--run-dir", run_dir, "--quiet",
              *[a for s in sets for a in ("--set", s)])
    assert out.code == 0, out.err
    out = cli("audit-memorization", "--run", run_dir, "--prefixes", "100", "--prefix-tokens", "10",
              "--suffix-tokens", "10", "--quiet")
    assert out.code == 0, out.err
    table, result = out.out.splitlines()[:-1], json.loads(out.out.splitlines()[-1])
    assert table[0].split() == ["split", "prefixes", "extracted", "rate"] and table[1].startswith("train")
    assert (result["prefix_tokens"], result["suffix_tokens"], result["seed"]) == (10, 10, 0)
    # Every block of each split (fewer than 100): about 900 training and 300 held-out tokens, 33 a block.
    assert result["train_prefixes"] >= 20 and result["validation_prefixes"] >= 5
    assert result["train_rate"] >= 0.5, result
    assert result["validation_rate"] == 0.0, result
