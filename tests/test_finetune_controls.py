"""Fine-tuning controls: LoRA adapters (`train.lora_rank`, `train.lora_alpha`)
and frozen weights (`train.freeze`), from config validation to training,
resuming, loading a run and exporting it with the adapters merged."""

import re
import shutil
import warnings

import numpy as np
import pytest
import yaml

from conftest import ROOT

from kerasllm import config as config_lib
from kerasllm import task_registry
from kerasllm.config import ModelConfig, TrainConfig
from kerasllm.errors import UserError

STEP_VAL_LINE = re.compile(r"Step (\d+)/\d+, Validation Loss: ([0-9.]+)")
TINY = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, seq_len=16, dropout=0.0)


# --- config validation: one line naming the key ------------------------------------------------


@pytest.mark.parametrize("config_name, overrides, message", [
    ("tiny-char.yaml", ["train.lora_rank=-1"], "train.lora_rank must be at least 0, got -1"),
    ("tiny-char.yaml", ["train.lora_alpha=-2"], "train.lora_alpha must be at least 0, got -2.0"),
    ("tiny-char.yaml", ["train.lora_alpha=8"], "train.lora_alpha scales LoRA adapters; set train.lora_rank too"),
    ("seed-lstm.yaml", ["train.lora_rank=4"], "train.lora_rank: lstm runs have no keras-hub Transformer backbone "
     "to fine-tune; LoRA and train.freeze apply to bart, bert, distilbert, encoder/masked_lm, encoder/span, gpt, "
     "gpt2, llama3, seq2seq runs"),
    ("seed-lstm.yaml", ["train.freeze=embeddings"], "train.freeze: lstm runs have no keras-hub Transformer"),
    ("tiny-char.yaml", ["train.freeze=embeddings,heads"], "train.freeze: unknown item 'heads'; give a "
     "comma-separated list of embeddings and layers:N"),
    ("tiny-char.yaml", ["train.freeze=layers:0"], "train.freeze: unknown item 'layers:0'"),
    ("tiny-char.yaml", ["train.freeze=layers:3"], "train.freeze: layers:3 is more Transformer blocks than "
     "model.num_layers (1)"),
    ("tiny-char.yaml", ["train.freeze=embeddings", "train.lora_rank=2"], "train.freeze: not with train.lora_rank"),
])
def test_config_mistakes_are_one_line_errors_naming_the_key(config_name, overrides, message):
    with pytest.raises(UserError) as error:
        config_lib.load(ROOT / "configs" / config_name, overrides)
    text = str(error.value)
    assert text.startswith(f"{ROOT / 'configs' / config_name}: ") and message in text and "\n" not in text


def test_a_config_mistake_is_exit_2_through_the_cli(cli, tmp_path):
    result = cli("train", "--config", ROOT / "configs/seed-lstm.yaml", "--set", "train.lora_rank=2",
                 "--run-dir", tmp_path / "run")
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().splitlines()[-1].startswith("error: ") and "train.lora_rank: lstm runs" in result.err
    assert not (tmp_path / "run").exists()


def test_freeze_reads_items_and_the_keys_apply_to_transformer_tasks_only():
    assert config_lib.parse_freeze(" embeddings , layers:2") == config_lib.Freeze(embeddings=True, layers=2)
    assert config_lib.parse_freeze("") == config_lib.Freeze()
    for kind, head in (("gpt", None), ("seq2seq", None), ("encoder", "span"), ("encoder", "masked_lm"),
                       ("gpt2", None), ("llama3", None), ("bart", None)):
        assert all(config_lib.applies(key, task_registry.get(kind, head)) for key in config_lib.FINETUNE_KEYS)
    assert not any(config_lib.applies(key, task_registry.get("lstm")) for key in config_lib.FINETUNE_KEYS)
    saved = yaml.safe_load(config_lib.load(ROOT / "configs/tiny-char.yaml", ["train.lora_rank=4"]).to_yaml())
    assert saved["train"]["lora_rank"] == 4 and saved["train"]["freeze"] == ""
    assert "lora_rank" not in yaml.safe_load(config_lib.load(ROOT / "configs/seed-lstm.yaml").to_yaml())["train"]


def test_the_keys_belong_to_the_run_identity_without_changing_older_runs_fingerprints():
    plain = config_lib.load(ROOT / "configs/tiny-char.yaml")
    lora = config_lib.load(ROOT / "configs/tiny-char.yaml", ["train.lora_rank=2"])
    assert not set(config_lib.FINETUNE_KEYS) & set(config_lib.identity(plain))  # unset: as before the keys existed
    assert config_lib.diff_identity(yaml.safe_load(lora.to_yaml()), plain) == ["train.lora_rank (2 -> None)"]
    assert config_lib.identity_hash(lora) != config_lib.identity_hash(plain)


# --- the models: what trains, what is saved, what merges ----------------------------------------


def _gpt(layers: int = 2):
    from kerasllm.models import build_gpt

    model = build_gpt(ModelConfig(**{**TINY, "num_layers": layers}), 40)
    model(np.zeros((1, 4), "int32"))
    return model


def _translator():
    from kerasllm.models.seq2seq import Seq2SeqBackbone, Seq2SeqTranslator

    return Seq2SeqTranslator(Seq2SeqBackbone(40, 40, 2, 2, 16, 32, max_sequence_length=16))


def _encoder(head: str):
    from kerasllm.models.encoder import masked_lm_model, span_model

    config = ModelConfig(kind="encoder", head=head, **TINY)
    return (span_model if head == "span" else masked_lm_model)(config, 40)


def _trainable(model) -> set:
    return {v.path for v in model.trainable_variables}


@pytest.mark.parametrize("build, adapted", [
    (_gpt, 4),  # query and value of 2 blocks
    (_translator, 12),  # 2 encoder blocks' self-attention, 2 decoder blocks' self- and cross-attention
    (lambda: _encoder("span"), 4),
    (lambda: _encoder("masked_lm"), 4),
])
def test_lora_trains_the_adapters_and_the_task_s_own_head_only(build, adapted):
    from kerasllm.models import finetune

    model = build()
    finetune.apply(model, TrainConfig(lora_rank=2, lora_alpha=8))
    layers = finetune.adapted_layers(model)
    assert len(layers) == adapted and {layer.name for layer in layers} == {"query", "value"}
    assert all(layer.lora_rank == 2 and layer.lora_alpha == 8 for layer in layers)
    adapters = {v.path for v in finetune.adapter_variables(model)}
    head = {v.path for v in model.weights if not any(v is b for b in model.backbone.weights)}
    assert _trainable(model) == adapters | head  # the backbone's biases, norms and kernels are frozen
    assert all(re.search(r"/lora_kernel_[ab]$", path) for path in adapters) and len(adapters) == 2 * adapted
    line = finetune.describe(model)
    trained = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert line == f"{trained:,} of them trained (LoRA rank 2 on {adapted} layers)"


def _randomise_adapters(model, seed=0):
    from kerasllm.models import finetune

    rng = np.random.default_rng(seed)
    for v in finetune.adapter_variables(model):  # B starts at zero: the update would be nothing
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))


def test_a_lora_model_saves_frozen_kernels_and_adapters_and_loads_them_exactly(tmp_path):
    from kerasllm.models import finetune

    model = _gpt()
    finetune.apply(model, TrainConfig(lora_rank=2))
    _randomise_adapters(model)
    model.save_weights(str(tmp_path / "w.weights.h5"))
    again = _gpt()
    finetune.apply(again, TrainConfig(lora_rank=2))
    again.load_weights(str(tmp_path / "w.weights.h5"))
    for a, b in zip(model.weights, again.weights, strict=True):
        assert a.path == b.path and np.array_equal(np.asarray(a), np.asarray(b)), a.path
    ids = np.arange(12, dtype="int32").reshape(2, 6)
    assert np.array_equal(np.asarray(model(ids)), np.asarray(again(ids)))


@pytest.mark.parametrize("build, inputs", [
    (_gpt, lambda: np.arange(1, 13, dtype="int32").reshape(2, 6)),
    (_translator, lambda: {"encoder_token_ids": np.arange(1, 13, dtype="int32").reshape(2, 6),
                           "encoder_padding_mask": np.ones((2, 6), bool),
                           "decoder_token_ids": np.arange(2, 14, dtype="int32").reshape(2, 6),
                           "decoder_padding_mask": np.ones((2, 6), bool)}),
])
def test_merged_weights_in_a_plain_model_give_the_adapted_outputs(build, inputs):
    from kerasllm.export.merge import merged_weights
    from kerasllm.models import finetune

    adapted, plain = build(), build()
    plain.set_weights(adapted.get_weights())
    before = np.asarray(plain(inputs()))
    finetune.apply(adapted, TrainConfig(lora_rank=2, lora_alpha=3))
    _randomise_adapters(adapted)
    out = np.asarray(adapted(inputs()))
    assert np.abs(out - before).max() > 1e-2  # the adapters change the outputs
    plain.set_weights(merged_weights(adapted))
    assert not finetune.adapted_layers(plain)
    np.testing.assert_allclose(np.asarray(plain(inputs())), out, atol=1e-5)


@pytest.mark.parametrize("build, freeze, frozen, trained", [
    (_gpt, "embeddings", {"token_embedding", "position_embedding"}, {"transformer_layer_0", "layer_norm"}),
    (_gpt, "layers:1", {"transformer_layer_0"}, {"token_embedding", "transformer_layer_1", "layer_norm"}),
    (_translator, "embeddings,layers:1",
     {"encoder_token_embedding", "decoder_position_embedding", "encoder_layer_0", "decoder_layer_0"},
     {"encoder_layer_1", "decoder_layer_1", "encoder_norm"}),
    (lambda: _encoder("span"), "embeddings", {"token_embedding", "position_embedding", "segment_embedding"},
     {"transformer_layer_0", "embeddings_layer_norm", "span_model"}),  # span_model/span_head
])
def test_freeze_takes_embeddings_and_the_first_blocks_out_of_training(build, freeze, frozen, trained):
    from kerasllm.models import finetune

    model = build()
    finetune.apply(model, TrainConfig(freeze=freeze))
    tops = {path.split("/")[0] for path in _trainable(model)}
    assert not frozen & tops and trained <= tops
    assert finetune.describe(model).endswith("of them trained")


def test_freezing_more_blocks_than_a_preset_has_is_refused_when_built():
    from kerasllm.models import finetune

    with pytest.raises(UserError, match=r"train.freeze: layers:3 is more than the model's 2 Transformer block"):
        finetune.apply(_gpt(), TrainConfig(freeze="layers:3"))
    from kerasllm.models import build_lstm

    with pytest.raises(UserError, match="train.lora_rank: a LSTMCausalLM has no keras-hub Transformer backbone"):
        finetune.apply(build_lstm(ModelConfig(kind="lstm", hidden_dim=8, embedding_dim=8), 40), TrainConfig(lora_rank=2))


# --- end to end: train, resume, load, export ----------------------------------------------------


def _weights(run_dir, checkpoint: str) -> dict:
    """Every variable of a run's model after loading one of its checkpoints."""
    from kerasllm.loaded_run import load_run

    lm = load_run(str(run_dir))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        lm.model.load_weights(str(run_dir / "checkpoints" / checkpoint / "weights.weights.h5"))
    return {v.path: np.asarray(v).copy() for v in lm.model.weights}


def _changed(before: dict, after: dict) -> set:
    assert before.keys() == after.keys()
    return {path for path in before if not np.array_equal(before[path], after[path])}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A LoRA run of configs/tiny-char.yaml: 40 steps, validated (on 10
    batches) every 10, a checkpoint every 10 (the last three kept)."""
    from conftest import cli_in_process

    run_dir = tmp_path_factory.mktemp("lora") / "run"
    result = cli_in_process("train", "--config", ROOT / "configs/tiny-char.yaml", "--run-dir", run_dir, "--quiet",
                            *_LORA_SETTINGS)
    assert result.code == 0, result.err
    return run_dir, result.out


_LORA_SETTINGS = ("--set", "train.lora_rank=4", "--set", "train.learning_rate=0.02", "--set", "train.eval_every_steps=10",
                  "--set", "train.keep_checkpoints=3", "--set", "train.num_samples=0", "--set", "train.validation_steps=10")


@pytest.mark.slow
def test_a_lora_run_trains_only_its_adapters_and_its_loss_falls(lora_run):
    run_dir, out = lora_run
    model_line = next(line for line in out.splitlines() if line.startswith("Model: gpt"))
    assert re.search(r"parameters \([\d,]+ of them trained \(LoRA rank 4 on 2 layers\)\)", model_line), model_line
    # A frozen model would score the same at every validation: the adapters
    # alone bring it down (from a random, frozen network: slowly).
    losses = [float(m.group(2)) for m in STEP_VAL_LINE.finditer(out)]
    assert len(losses) == 4 and losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.02, losses
    changed = _changed(_weights(run_dir, "step-000000020"), _weights(run_dir, "step-000000040"))
    assert changed and all(re.search(r"/lora_kernel_[ab]$", path) for path in changed), changed
    assert any(path.endswith("lora_kernel_b") for path in changed)


@pytest.mark.slow
def test_a_lora_run_killed_after_a_checkpoint_resumes_to_the_same_end(lora_run, tmp_path):
    from conftest import cli_in_process

    run_dir, out = lora_run
    whole = {int(m.group(1)): m.group(2) for m in STEP_VAL_LINE.finditer(out)}
    killed = tmp_path / "killed"  # what a kill -9 right after the save at step 30 leaves
    shutil.copytree(run_dir, killed, ignore=shutil.ignore_patterns("logs"))
    shutil.rmtree(killed / "checkpoints/step-000000040")
    (killed / "checkpoints/best.weights.h5").unlink()
    (killed / "checkpoints/latest").write_text("step-000000030")
    resumed = cli_in_process("train", "--config", ROOT / "configs/tiny-char.yaml", "--run-dir", killed, "--quiet",
                             *_LORA_SETTINGS)
    assert resumed.code == 0, resumed.err
    assert {int(m.group(1)): m.group(2) for m in STEP_VAL_LINE.finditer(resumed.out)} == {40: whole[40]}
    assert not _changed(_weights(run_dir, "step-000000040"), _weights(killed, "step-000000040"))


@pytest.mark.slow
def test_a_lora_run_exports_plain_merged_weights_with_the_adapted_outputs(lora_run, tmp_path):
    import tensorflow as tf

    from kerasllm.export.client import LanguageModelClient
    from kerasllm.export.merge import merge_lora
    from kerasllm.export.runs import export_run
    from kerasllm.loaded_run import load_run
    from kerasllm.models import finetune

    run_dir, _ = lora_run
    adapted = load_run(str(run_dir))
    assert len(finetune.adapted_layers(adapted.model)) == 2
    merged = merge_lora(adapted, str(run_dir))
    assert not finetune.adapted_layers(merged.model)
    ids = adapted.tokenizer.tokenize(["ROMEO: Hold thy peace."]).to_tensor().numpy().astype("int32")
    np.testing.assert_allclose(np.asarray(merged.model(ids)), np.asarray(adapted.model(ids)), atol=1e-5)

    path = export_run(str(run_dir), name="lora", base_dir=str(tmp_path))["path"]
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "lora/1/variables/variables"))]
    assert names and not [name for name in names if "lora" in name]
    texts = ["ROMEO: Hold thy peace.", "First Citizen:\nSpeak, speak."]
    served = LanguageModelClient.open(model=path).score(texts)
    direct = LanguageModelClient.open(run=str(run_dir)).score(texts)
    assert served["num_tokens"].tolist() == direct["num_tokens"].tolist()
    np.testing.assert_allclose(served["log_prob"], direct["log_prob"], atol=1e-5)


@pytest.mark.slow
def test_a_new_run_cannot_start_from_a_lora_run(lora_run, cli, tmp_path):
    run_dir, _ = lora_run
    result = cli("train", "--config", ROOT / "configs/tiny-char.yaml", "--run-dir", tmp_path / "run",
                 "--set", f"train.init_from={run_dir}")
    assert result.code == 2 and "Traceback" not in result.err
    assert f"train.init_from: {run_dir} trained LoRA adapters (train.lora_rank)" in result.err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_frozen_weights_stay_bit_identical_while_the_rest_train(tmp_path):
    from conftest import cli_in_process

    run_dir = tmp_path / "run"
    result = cli_in_process("train", "--config", ROOT / "configs/tiny-char.yaml", "--run-dir", run_dir, "--quiet",
                            "--set", "model.num_layers=2", "--set", "train.freeze=embeddings,layers:1",
                            "--set", "train.num_samples=0", "--set", "train.epochs=1", "--set", "train.validation_steps=5")
    assert result.code == 0, result.err
    assert re.search(r"parameters \([\d,]+ of them trained\)", result.out)
    changed = _changed(_weights(run_dir, "step-000000010"), _weights(run_dir, "step-000000020"))
    tops = {path.split("/")[0] for path in changed}
    assert not tops & {"token_embedding", "position_embedding", "transformer_layer_0"}, tops
    assert {"transformer_layer_1", "layer_norm"} <= tops


@pytest.mark.slow
def test_lora_fine_tuning_of_a_pretrained_encoder_keeps_its_weights_and_trains_adapters_and_span_head(tmp_path):
    """A question-answering run with LoRA from a masked-LM run
    (`train.init_from`): the adapters go on after the pretrained weights are
    in, so the encoder keeps them bit for bit while its adapters and the
    new span head train."""
    from conftest import cli_in_process
    from test_qa import _config, _write_squad

    from kerasllm.loaded_run import load_run

    (tmp_path / "text.txt").write_text("".join(f"{n} likes {c}.\n" for n in ("Anna", "Ben", "Carl")
                                               for c in ("red", "blue", "gold", "pink")) * 20)
    mlm = _config(tmp_path / "mlm.yaml", "toy-mlm", "masked_lm",
                  {"source": str(tmp_path / "text.txt"), "format": "text", "document": "line", "split_group": 4},
                  {"epochs": 1, "steps_per_epoch": 2, "validation_steps": 1, "num_samples": 0})
    assert cli_in_process("train", "--quiet", "--config", mlm, "--run-dir", tmp_path / "mlm").code == 0
    qa = _config(tmp_path / "qa.yaml", "toy-qa", "span", {"source": str(_write_squad(tmp_path / "toy.json"))},
                 {"epochs": 1, "steps_per_epoch": 4, "validation_steps": 1, "init_from": str(tmp_path / "mlm"),
                  "lora_rank": 2, "num_samples": 0, "learning_rate": 0.01})
    tuned = cli_in_process("train", "--quiet", "--config", qa, "--run-dir", tmp_path / "qa")
    assert tuned.code == 0, tuned.err[-2000:]
    assert "Initialised 39 of 39 encoder weights" in tuned.out
    assert re.search(r"parameters \([\d,]+ of them trained \(LoRA rank 2 on 4 layers\)\)", tuned.out), tuned.out

    pretrained = {v.path: np.asarray(v) for v in load_run(str(tmp_path / "mlm")).model.backbone.weights}
    model = load_run(str(tmp_path / "qa")).model
    kept = {v.path: np.asarray(v) for v in model.backbone.weights if "lora_kernel" not in v.path}
    assert kept.keys() == pretrained.keys()
    assert all(np.array_equal(kept[path], pretrained[path]) for path in kept)
    assert any(np.asarray(v).any() for v in model.backbone.weights if v.path.endswith("lora_kernel_b"))


# --- pretrained keras-hub backbones (GPT-2, Llama 3) --------------------------------------------


@pytest.fixture(scope="module")
def hub_checkpoints(tmp_path_factory):
    """Tiny Hugging Face checkpoints (tests/tiny_checkpoints.py), kind -> directory."""
    from tiny_checkpoints import write_gpt2, write_llama

    root = tmp_path_factory.mktemp("hub")
    return {"gpt2": write_gpt2(root / "gpt2"), "llama3": write_llama(root / "llama3")}


def _hub(kind, path):
    from kerasllm import pretrained
    from kerasllm.models.hub import HubCausalLM, backbone_from_checkpoint, load_checkpoint_weights

    family = pretrained.FAMILIES[kind]
    model = HubCausalLM.wrap(backbone_from_checkpoint(str(path), family, 32), family, context=32)
    model(np.zeros((1, 2), "int32"))
    load_checkpoint_weights(model.backbone, str(path), family)
    return model


@pytest.mark.parametrize("kind", ["gpt2", "llama3"])
def test_a_pretrained_backbone_takes_lora_merges_and_freezes(kind, hub_checkpoints):
    from kerasllm.export.merge import merged_weights
    from kerasllm.models import finetune

    adapted, plain = _hub(kind, hub_checkpoints[kind]), _hub(kind, hub_checkpoints[kind])
    ids = np.arange(1, 13, dtype="int32").reshape(2, 6)
    before = np.asarray(adapted(ids))
    finetune.apply(adapted, TrainConfig(lora_rank=2))
    assert len(finetune.adapted_layers(adapted)) == 4  # query and value of 2 blocks
    assert _trainable(adapted) == {v.path for v in finetune.adapter_variables(adapted)}
    np.testing.assert_array_equal(np.asarray(adapted(ids)), before)  # lora_kernel_b starts at zero
    _randomise_adapters(adapted, seed=1)
    out = np.asarray(adapted(ids))
    plain.set_weights(merged_weights(adapted))
    np.testing.assert_allclose(np.asarray(plain(ids)), out, atol=1e-5)

    frozen = _hub(kind, hub_checkpoints[kind])
    finetune.apply(frozen, TrainConfig(freeze="embeddings,layers:1"))
    tops = {path.split("/")[0] for path in _trainable(frozen)}
    assert "transformer_layer_1" in tops and not tops & {"token_embedding", "position_embedding", "transformer_layer_0"}


@pytest.mark.slow
def test_lora_fine_tuning_of_a_gpt2_checkpoint_keeps_its_weights_and_saves_a_merged_keras_hub_preset(
        hub_checkpoints, tmp_path, cli):
    """configs/finetune-gpt2.yaml with LoRA: the adapters go on after the
    checkpoint's weights are in, so those stay as they were while the
    adapters train; the run's keras-hub preset (what `export --format
    keras-hub` writes after merging) holds plain weights that compute what
    the run computes. (The SavedModel side of export is tested on the tiny
    GPT above; a GPT-2 export takes most of a minute.)"""
    import keras_hub

    from kerasllm.export.keras_hub_preset import write_preset
    from kerasllm.export.merge import merge_lora
    from kerasllm.loaded_run import load_run

    (tmp_path / "text.txt").write_text("\n".join(["The keeper's lamp was seen from the hills.",
                                                  "A ship came into the harbour at night."] * 100))
    run_dir = tmp_path / "run"
    result = cli("train", "--config", ROOT / "configs/finetune-gpt2.yaml", "--run-dir", run_dir, "--quiet",
                 "--set", f"train.init_from={hub_checkpoints['gpt2']}", "--set", "train.lora_rank=4",
                 "--set", f"data.source={tmp_path / 'text.txt'}", "--set", "data.split_group=8",
                 "--set", "model.seq_len=32", "--set", "train.max_steps=10", "--set", "train.validation_steps=2",
                 "--set", "train.learning_rate=0.01", "--set", "train.warmup_steps=2", "--set", "train.num_samples=0")
    assert result.code == 0, result.err[-2000:]
    assert re.search(r"parameters \([\d,]+ of them trained \(LoRA rank 4 on 4 layers\)\)", result.out), result.out
    start = {v.path: np.asarray(v) for v in _hub("gpt2", hub_checkpoints["gpt2"]).weights}
    tuned = load_run(str(run_dir))
    kept = {v.path: np.asarray(v) for v in tuned.model.weights if "lora_kernel" not in v.path}
    assert kept.keys() == start.keys() and all(np.array_equal(kept[p], start[p]) for p in kept)
    assert all(np.asarray(v).any() for v in tuned.model.weights if v.path.endswith("lora_kernel_b"))

    preset_dir = write_preset(merge_lora(tuned, str(run_dir)), tmp_path / "preset")
    preset = keras_hub.models.CausalLM.from_preset(preset_dir)
    assert type(preset).__name__ == "GPT2CausalLM" and not [w.path for w in preset.weights if "lora" in w.path]
    ids = np.array([[tuned.tokenizer.start_id] + tuned.tokenizer.tokenize(["A ship came"]).to_list()[0]], "int32")
    np.testing.assert_allclose(preset({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}).numpy(),
                               np.asarray(tuned.model(ids)), atol=1e-5)
