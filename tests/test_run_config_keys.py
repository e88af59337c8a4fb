"""A run's config.yaml and TensorBoard hparams hold only the keys its kind of
run uses (each task's `config_keys`); loading them gives the same config
back, and a run whose older config.yaml holds every key still resumes."""

import shutil

import pytest
import yaml

from kerasllm import config as config_lib
from kerasllm.training.callbacks import run_hparams

from conftest import ROOT
from test_train import _hparams


def _saved(config_name: str, overrides=()) -> dict:
    return yaml.safe_load(config_lib.load(ROOT / "configs" / config_name, list(overrides)).to_yaml())


def _keys(values: dict, prefix: str = "") -> set:
    out = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        out |= _keys(value, path) if isinstance(value, dict) else {path}
    return out


@pytest.mark.parametrize("config_name, has, lacks", [
    ("tiny-char.yaml", {"model.num_heads", "model.tie_embeddings", "data.split_group", "train.sample_prompt",
                        "train.init_from"},
     {"model.doc_stride", "train.mask_rate", "model.head", "data.source_field", "data.test_fraction",
      "tokenizer.shared", "train.label_smoothing", "model.embedding_dim"}),
    ("seed-lstm.yaml", {"model.embedding_dim", "data.field", "train.data_service"},
     {"model.num_heads", "model.num_layers", "model.intermediate_dim", "model.doc_stride", "train.mask_rate"}),
    ("spa-eng-transformer.yaml", {"data.source_field", "data.target_field", "data.strict", "data.test_fraction",
                                  "tokenizer.shared", "train.label_smoothing", "data.cleaning.normalize"},
     {"model.doc_stride", "train.mask_rate", "data.document", "data.split_group", "train.sample_prompt",
      "train.data_service"}),
    ("squad-mlm.yaml", {"train.mask_rate", "model.head", "data.split_group", "train.init_from"},
     {"model.doc_stride", "model.question_match", "train.num_samples", "train.sample_prompt",
      "model.tie_embeddings", "data.test_fraction"}),
    ("squad-qa.yaml", {"model.doc_stride", "model.max_question_tokens", "model.max_answer_tokens",
                       "model.question_match", "train.init_from", "train.num_samples"},
     {"train.mask_rate", "data.cleaning.normalize", "data.split_group", "data.source_field",
      "train.sample_prompt"}),
])
def test_config_yaml_and_hparams_hold_the_keys_of_the_run_kind(config_name, has, lacks):
    saved = _keys(_saved(config_name))
    hparams = set(run_hparams(config_lib.load(ROOT / "configs" / config_name), "float32"))
    for keys in (saved, hparams):
        assert has <= keys and not lacks & keys, (has - keys, lacks & keys)
    assert {"train.batch_size", "model.seq_len", "data.source", "tokenizer.kind"} <= saved


@pytest.mark.parametrize("config_name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_a_saved_config_loads_back_as_the_same_config(config_name, tmp_path):
    config = config_lib.load(ROOT / "configs" / config_name)
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    again = config_lib.load(tmp_path / "config.yaml")
    assert again == config and again.to_yaml() == config.to_yaml()
    assert config_lib.diff_identity(yaml.safe_load(config.to_yaml()), config) == []


def test_identity_ignores_keys_the_run_kind_does_not_read():
    gpt = config_lib.load(ROOT / "configs/tiny-char.yaml")
    full = gpt.to_dict()  # what config.yaml held before it was trimmed
    full["model"]["doc_stride"], full["train"]["mask_rate"], full["data"]["test_fraction"] = 7, 0.5, 0.2
    assert config_lib.diff_identity(full, gpt) == []
    assert config_lib.identity_hash(config_lib.from_dict(full)) == config_lib.identity_hash(gpt)
    full["model"]["num_heads"] = 4
    assert config_lib.diff_identity(full, gpt) == ["model.num_heads (4 -> 2)"]
    qa = config_lib.load(ROOT / "configs/squad-qa.yaml")
    assert config_lib.diff_identity(qa.to_dict(), config_lib.load(ROOT / "configs/squad-qa.yaml",
                                                                   ["model.doc_stride=64"])) == [
        "model.doc_stride (128 -> 64)"]


def test_a_trained_run_saves_its_kind_s_keys_and_resumes_from_an_older_full_config(trained, cli, tmp_path):
    run_dir, _ = trained
    saved = _keys(yaml.safe_load((run_dir / "config.yaml").read_text()))
    hparams = set(_hparams(run_dir / "logs"))
    for keys in (saved, hparams):
        assert "model.num_heads" in keys and not {"model.doc_stride", "train.mask_rate", "model.head"} & keys
    # A run directory from before: its config.yaml holds every key.
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns(".lock"))
    config = config_lib.load(ROOT / "configs/tiny-char.yaml")
    (old / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    resumed = cli("train", "--config", ROOT / "configs/tiny-char.yaml", "--run-dir", old, "--quiet")
    assert resumed.code == 0, resumed.err
    assert "training already complete" in resumed.out
    assert "doc_stride" not in (old / "config.yaml").read_text()  # rewritten with its kind's keys
