"""Translation end to end through the CLI: train a tiny encoder-decoder on a
toy mapping, translate, evaluate (BLEU/chrF), and the errors around it."""

import json
import re

import numpy as np
import pytest
import yaml

from conftest import ROOT


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from kerasllm.cli.main import main

    tmp = tmp_path_factory.mktemp("translation")
    rng = np.random.default_rng(0)
    # Four "words" of one or two letters (BLEU needs 4-grams); the target is the source in capitals.
    words = [" ".join("".join(rng.choice(list("abcdef"), rng.integers(1, 3))) for _ in range(4)) for _ in range(1500)]
    lines = "".join(f"{w}\t{w.upper()}\tCC-BY attribution\n" for w in words) + "broken line\n"
    (tmp / "toy.tsv").write_text(lines)
    config = yaml.safe_load((ROOT / "configs/spa-eng-transformer.yaml").read_text())
    config["data"].update({"source": str(tmp / "toy.tsv"), "val_fraction": 0.1, "test_fraction": 0.1,
                           "shuffle_buffer": 2000})
    config["tokenizer"] = {"kind": "char"}
    config["model"].update({"seq_len": 12, "num_layers": 1, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128,
                            "dropout": 0.0})
    config["train"].update({"batch_size": 32, "epochs": 3, "steps_per_epoch": 150, "learning_rate": 3e-3,
                            "warmup_steps": 20, "save_every_steps": 150, "num_samples": 2})
    (tmp / "toy.yaml").write_text(yaml.safe_dump(config))
    return tmp, main


def test_train_translate_and_evaluate_a_toy_mapping(toy_run, cli):
    tmp, _ = toy_run
    run_dir = tmp / "run"
    trained = cli("train", "--config", tmp / "toy.yaml", "--run-dir", run_dir, "--quiet")
    assert trained.code == 0, trained.err
    assert "Model: seq2seq" in trained.out and "skipped 1 malformed lines, the first at" in trained.out
    padding = float(re.search(r"batches per epoch \((\d+)% padding\)", trained.out).group(1))
    assert padding < 15  # length buckets: sentences of 7-11 characters
    assert "Epoch 3/3, Validation Loss:" in trained.out and " -> " in trained.out  # samples: source -> translation
    out = cli("translate", "--run", run_dir, "ab c de f", "fe d cb a", "--beams", "2")
    assert out.code == 0, out.err
    assert out.out.splitlines() == ["AB C DE F", "FE D CB A"]
    report = cli("evaluate", "--run", run_dir)
    assert report.code == 0, report.err
    scores = json.loads(report.out)
    assert scores["split"] == "test" and 100 < scores["pairs"] < 220
    assert scores["bleu"] > 50 and scores["chrf"] > 60 and scores["accuracy"] > 0.9, scores
    hyps = (run_dir / "eval/test.hyp.txt").read_text().splitlines()
    refs = (run_dir / "eval/test.ref.txt").read_text().splitlines()
    assert len(hyps) == len(refs) == scores["pairs"]
    # The same run resumes as a finished run, and wrong uses are one-line errors.
    again = cli("train", "--config", tmp / "toy.yaml", "--run-dir", run_dir, "--quiet")
    assert again.code == 0 and "training already complete" in again.out
    assert "a translation run" in cli("generate", "--run", run_dir, "x").err
    assert "not built yet" in cli("export", "--run", run_dir, "--base-dir", tmp / "models").err
    too_long = cli("translate", "--run", run_dir, "ab c", "--max-length", "99")
    assert too_long.code == 2 and "model.seq_len=12" in too_long.err


def test_strict_data_fails_on_the_first_malformed_line(toy_run, cli):
    tmp, _ = toy_run
    result = cli("train", "--config", tmp / "toy.yaml", "--set", "data.strict=true", "--run-dir", tmp / "strict", "--quiet")
    assert result.code == 2
    assert f"{tmp / 'toy.tsv'}:1501: 1 columns, need 2" in result.err
    assert not (tmp / "strict").exists()  # no half-made run directory
