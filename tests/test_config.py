import re

import pytest

from kerasllm import config as config_lib
from kerasllm.errors import UserError

from conftest import ROOT


def test_shipped_configs_load():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config = config_lib.load(path)
        assert path.stem.startswith(config.name)  # spa-eng-transformer.yaml runs as runs/spa-eng


def test_overrides_set_nested_values_with_yaml_types():
    config = config_lib.load(
        ROOT / "configs/tiny-char.yaml",
        ["train.batch_size=7", "train.learning_rate=1e-4", "model.tie_embeddings=false", "data.source=foo.txt"],
    )
    assert config.train.batch_size == 7
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.model.tie_embeddings is False
    assert config.data.source == "foo.txt"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batchsize=3", "unknown key 'train.batchsize'"),
        ("nosection.x=1", "unknown key 'nosection'"),
        ("train.batch_size=big", "train.batch_size: expected an integer, got 'big'"),
        ("train.batch_size=0", "train.batch_size must be at least 1, got 0"),
        ("model.seq_len=1", "model.seq_len must be at least 2, got 1"),
        ("model.kind=rnn", "model.kind must be one of gpt, lstm"),
        ("model.hidden_dim=33", "must be divisible by model.num_heads"),
        ("train.precision=fp8", "train.precision must be one of"),
        ("batch_size", "expected KEY=VALUE"),
        ("train.beta_2=1.0", "train.beta_2 must be in [0, 1), got 1.0"),
        ("train.validation_steps=-1", "train.validation_steps must be at least 0"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        config_lib.load(ROOT / "configs/tiny-char.yaml", [override])


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntrain:\n  batch_size: [1\n")
    with pytest.raises(UserError, match=r"bad.yaml: line \d+ is not valid YAML"):
        config_lib.load(path)


def test_missing_config_file():
    with pytest.raises(UserError, match="config file not found"):
        config_lib.load("nope.yaml")


def test_identity_diff_ignores_training_length_but_not_model():
    a = config_lib.load(ROOT / "configs/tiny-char.yaml")
    b = config_lib.load(ROOT / "configs/tiny-char.yaml", ["train.epochs=9", "train.max_steps=5"])
    c = config_lib.load(ROOT / "configs/tiny-char.yaml", ["model.num_layers=3"])
    assert config_lib.diff_identity(a.to_dict(), b) == []
    assert config_lib.diff_identity(a.to_dict(), c) == ["model.num_layers (1 -> 3)"]
    # A run saved before a key existed still matches (the key takes its default).
    saved = a.to_dict()
    del saved["data"]["test_fraction"], saved["tokenizer"]["shared"]
    assert config_lib.diff_identity(saved, b) == []



def test_identity_includes_where_an_encoder_run_started_however_it_is_spelled():
    qa = config_lib.load(ROOT / "configs/squad-qa.yaml")  # init_from: runs/squad-mlm
    same = config_lib.load(ROOT / "configs/squad-qa.yaml", ["train.init_from=./runs/squad-mlm/"])
    scratch = config_lib.load(ROOT / "configs/squad-qa.yaml", ["train.init_from="])
    assert config_lib.diff_identity(qa.to_dict(), same) == []
    assert config_lib.diff_identity(qa.to_dict(), scratch) == ["train.init_from ('runs/squad-mlm' -> '')"]
    cleaned = ROOT / "configs/squad-qa.yaml"
    with pytest.raises(UserError, match="data.cleaning: question answering reads SQuAD text as it is"):
        config_lib.load(cleaned, ["data.cleaning.lowercase=true"])
    assert config_lib.load(cleaned, ["data.cleaning.normalize=none"]).data.cleaning.normalize == "none"


def test_round_trip_through_yaml(tmp_path):
    config = config_lib.load(ROOT / "configs/shakespeare-char.yaml", ["train.sample_prompt=ROMEO:"])
    path = tmp_path / "saved.yaml"
    path.write_text(config.to_yaml())
    assert config_lib.load(path) == config


def test_a_mistake_found_while_tensorflow_traces_is_still_one_line(cli, monkeypatch):
    """AutoGraph re-raises a UserError from traced code with its own report
    around the message; the CLI prints only the message."""
    from kerasllm.cli import main as cli_main

    def traced(**kwargs):
        raise UserError('in user code:\n\n    File "/x/qa_data.py", line 89, in encode  *\n        check()\n\n'
                        "    UserError: question answering needs `tokenizer.kind: wordpiece`\n")

    monkeypatch.setattr(cli_main.cli, "main", traced)
    result = cli("train")
    assert result.code == 2 and result.err == "error: question answering needs `tokenizer.kind: wordpiece`\n"
