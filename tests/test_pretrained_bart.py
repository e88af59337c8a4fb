"""A pretrained encoder-decoder for translation (issue 36): a BART Hugging
Face directory, written tiny by tests/tiny_checkpoints.py, fine-tuned on a
slice of the English-Spanish pairs with kerasllm's trainer: weights and
logits as keras-hub converts them, BART's framing of ids in tf.data, a
short fine-tune that lowers the validation loss and resumes, evaluate,
`translate --run | --checkpoint`, the export's op audit and fresh-process
translations; and each mistake answered in one line with exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, cli_in_process, dataset_file
from tiny_checkpoints import read_tensors, write_bart

pytestmark = pytest.mark.xdist_group("pretrained_bart")
POSITIONS = 64  # the tiny checkpoint's max_position_embeddings
SEQ_LEN = 24  # the runs' tokens per side: the position tables are cut to it
SOURCES = ["Where is the station?", "I like tea."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_bart(tmp_path_factory.mktemp("bart") / "bart", max_positions=POSITIONS)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Every 100th English-Spanish pair (about 1,200, short and long alike)."""
    lines = dataset_file("spa-eng").read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path_factory.mktemp("pairs") / "spa-eng-small.tsv"
    path.write_text("".join(lines[::100]), encoding="utf-8")
    return path


def _config(tmp_path: Path, checkpoint, pairs_file, name="bart.yaml", **changes) -> Path:
    """configs/translate-bart.yaml, sized for a tiny checkpoint and seconds of training."""
    values = yaml.safe_load((ROOT / "configs/translate-bart.yaml").read_text())
    values["data"].update(source=str(pairs_file), val_fraction=0.1, test_fraction=0.05, shuffle_buffer=2000)
    values["model"].update(seq_len=SEQ_LEN)
    values["train"].update(init_from=str(checkpoint), batch_size=32, max_steps=40, learning_rate=3e-3,
                           warmup_steps=4, label_smoothing=0.0, save_every_steps=20, log_every_steps=20,
                           num_samples=1)
    for key, value in changes.items():
        section, field = key.split(".")
        values[section][field] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def built(checkpoint, pairs, tmp_path_factory):
    """(training task, its model initialised from the checkpoint), as a new
    run builds them (SEQ_LEN positions: the tables cut)."""
    from kerasllm import config as config_lib
    from kerasllm import task_registry
    from kerasllm.run_dir import RunDir

    tmp = tmp_path_factory.mktemp("built")
    config = config_lib.load(_config(tmp, checkpoint, pairs))
    training = task_registry.for_model(config.model).open_training(config, RunDir(tmp / "run"), None)
    model = training.build_model(None)
    training.initialise(model, lambda line: None)
    return training, model


# -- what a checkpoint is ------------------------------------------------------------------------------------------


def test_inspect_reads_a_bart_checkpoint_and_its_positions(checkpoint):
    from kerasllm import pretrained, task_registry

    info = pretrained.inspect(str(checkpoint))
    assert (info.family.kind, info.family.role, info.max_positions) == ("bart", "seq2seq", POSITIONS)
    vocab = len(json.loads((checkpoint / "vocab.json").read_text()))
    assert info.sizes == {"num_layers": 2, "num_heads": 4, "hidden_dim": 32, "intermediate_dim": 64,
                          "vocab_size": vocab}
    task = task_registry.get("bart")
    assert (task.serving_kind, task.commands, task.splits[0]) == ("translator", ("translate",), "test")
    assert "bart (BART)" in pretrained.supported()


# -- weights, logits and ids as keras-hub gives them -----------------------------------------------------------------


def _hugging_face_tensor(path: str, shape, tensors: dict) -> np.ndarray:
    """The Hugging Face tensor keras-hub's BART converter reads for the
    backbone weight at `path`, in the Keras layout."""
    layer, variable = path.rsplit("/", 1)
    if layer == "token_embedding":
        return tensors["model.shared.weight"]
    side = "encoder" if layer.startswith(("encoder", "transformer_encoder")) else "decoder"
    if layer.endswith("position_embedding"):
        return tensors[f"model.{side}.embed_positions.weight"][2: 2 + shape[0]]  # BART's offset of 2 rows
    if layer.endswith("embeddings_layer_norm"):
        name = f"model.{side}.layernorm_embedding"
    else:
        index, *rest = layer.split("/")
        index = index.rsplit("_", 1)[1]
        parts = {"self_attention_layer": "self_attn", "self_attention": "self_attn", "cross_attention": "encoder_attn",
                 "self_attention_layer_norm": "self_attn_layer_norm",
                 "cross_attention_layer_norm": "encoder_attn_layer_norm", "feedforward_layer_norm": "final_layer_norm",
                 "feedforward_intermediate_dense": "fc1", "feedforward_output_dense": "fc2", "query": "q_proj",
                 "key": "k_proj", "value": "v_proj", "attention_output": "out_proj"}
        name = f"model.{side}.layers.{index}." + ".".join(parts[p] for p in rest)
    suffix = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}[variable]
    value = tensors[f"{name}.{suffix}"]
    return np.reshape(value.T if variable == "kernel" else value, shape)


def test_converted_weights_equal_the_source_tensors(built, checkpoint):
    """Every weight of a new run's BartSeq2SeqLM equals the safetensors
    tensor it came from (through keras-hub's converter); the position
    tables are cut to model.seq_len after BART's 2 offset rows."""
    training, model = built
    tensors = read_tensors(checkpoint)
    weights = model.backbone.weights
    assert type(model).__name__ == "BartSeq2SeqLM" and len(weights) == len(model.weights) == 91
    for weight in weights:
        expected = _hugging_face_tensor(weight.path, tuple(weight.shape), tensors)
        np.testing.assert_array_equal(weight.numpy(), expected, err_msg=weight.path)
    positions = [w for w in weights if w.path.endswith("position_embedding/embeddings")]
    assert len(positions) == 2 and all(w.shape[0] == SEQ_LEN < POSITIONS for w in positions)


def test_logits_equal_keras_hubs_own_bart_seq2seq_lm(built, checkpoint):
    """The run's model gives the logits keras-hub's own BartSeq2SeqLM
    (its whole position table) gives for the same framed pair."""
    import keras_hub
    import tensorflow as tf

    training, model = built
    reference = keras_hub.models.Seq2SeqLM.from_preset(str(checkpoint), preprocessor=None)
    assert type(reference).__name__ == "BartSeq2SeqLM"
    assert reference.backbone.get_config()["max_sequence_length"] == POSITIONS
    sources, decoder_ids, labels = training.corpus.preprocessor.encode_pairs(
        tf.constant(["I like tea."]), tf.constant(["Me gusta el té."]))
    inputs = {"encoder_token_ids": sources.to_tensor(), "encoder_padding_mask": tf.ones_like(sources.to_tensor(), bool),
              "decoder_token_ids": decoder_ids.to_tensor(),
              "decoder_padding_mask": tf.ones_like(decoder_ids.to_tensor(), bool)}
    ours, theirs = model(inputs), reference(inputs)
    assert ours.shape == (1, inputs["decoder_token_ids"].shape[1], 461)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


def test_pairs_are_framed_as_bart_was_pretrained(built, checkpoint):
    """The encoder reads `<s> source </s>`, the decoder `</s> <s> target`
    and learns `<s> target </s>`; the ids between are the checkpoint's
    tokenizer.json's (Hugging Face's tokenizers), in tf.data batches too."""
    import tensorflow as tf
    from tokenizers import Tokenizer

    training, _ = built
    hf = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    preprocessor = training.corpus.preprocessor
    english, spanish = "Where is the station?", "¿Dónde está la estación?"
    sources, decoder_ids, labels = preprocessor.encode_pairs(tf.constant([english]), tf.constant([spanish]))
    s, t = hf.encode(english).ids, hf.encode(spanish).ids  # RoBERTa's template: <s> ... </s>
    assert sources.to_list() == [s]
    assert decoder_ids.to_list() == [[2] + t[:-1]] and labels.to_list() == [t]
    inputs, targets, weights = next(iter(training.validation_batches()))
    first = inputs["encoder_token_ids"].numpy()[0]
    assert first[0] == 0 and 2 in first and inputs["decoder_token_ids"].numpy()[0][:2].tolist() == [2, 0]
    assert targets.shape == weights.shape == inputs["decoder_token_ids"].shape


def test_lora_and_freeze_reach_the_encoder_and_the_decoder(checkpoint):
    """train.lora_rank adapts the query and value projections of every
    encoder self-attention and decoder self- and cross-attention;
    train.freeze stops the embedding tables and the first block of each half."""
    from kerasllm import pretrained
    from kerasllm.config import TrainConfig
    from kerasllm.models import finetune
    from kerasllm.models.hub import backbone_from_checkpoint, seq2seq_lm_on

    family = pretrained.FAMILIES["bart"]
    ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)

    def model(**train):
        m = seq2seq_lm_on(backbone_from_checkpoint(str(checkpoint), family, SEQ_LEN), family)
        m({"encoder_token_ids": ids, "encoder_padding_mask": mask, "decoder_token_ids": ids,
           "decoder_padding_mask": mask})
        finetune.apply(m, TrainConfig(**train))
        return m

    lora = model(lora_rank=2)
    assert finetune.describe(lora).endswith("(LoRA rank 2 on 12 layers)")  # 2 x (2 encoder + 4 decoder)
    assert {w.path.rsplit("/", 1)[1] for w in lora.trainable_weights} == {"lora_kernel_a", "lora_kernel_b"}
    frozen = model(freeze="embeddings,layers:1")
    trainable = {w.path.split("/")[0] for w in frozen.trainable_weights}
    # The tables freeze; the layer norms after them train on, as for BERT's.
    assert trainable == {"transformer_encoder_layer_1", "transformer_decoder_layer_1",
                         "encoder_embeddings_layer_norm", "decoder_embeddings_layer_norm"}, trainable


# -- fine-tuning, resume, evaluate, translate, export ----------------------------------------------------------------


def _validation_loss(training, model) -> float:
    model.compile(loss=training.loss(), weighted_metrics=[])
    return float(model.evaluate(training.validation_batches(), verbose=0, return_dict=True)["loss"])


@pytest.fixture(scope="module")
def finetuned(checkpoint, pairs, tmp_path_factory):
    """A BART run fine-tuned for 40 steps on the pair slice: (config file,
    run directory, what training printed)."""
    tmp = tmp_path_factory.mktemp("finetuned")
    config = _config(tmp, checkpoint, pairs)
    result = cli_in_process("train", "--config", config, "--run-dir", tmp / "run")
    assert result.code == 0, result.err[-3000:]
    return config, tmp / "run", result.out


@pytest.mark.slow
def test_finetune_lowers_the_validation_loss_and_resumes(built, finetuned, cli):
    """40 steps on real pairs lower the validation loss below the
    checkpoint's; the run saved the checkpoint's tokenizer and its
    architecture (positions cut), and a second `train` resumes it."""
    config, run_dir, out = finetuned
    before = _validation_loss(*built)
    after = float(re.search(r"best validation loss ([0-9]+\.[0-9]+)", out).group(1))
    assert "Initialised all 91 weights from the BART checkpoint" in out and "Model: bart" in out
    assert after < 0.8 * before, (before, after)
    assert " -> " in out  # a validation sample: source -> translation
    assert json.loads((run_dir / "architecture.json").read_text())["max_sequence_length"] == SEQ_LEN
    assert json.loads((run_dir / "tokenizer" / "tokenizer.json").read_text())["kind"] == "pretrained"
    resumed = cli("train", "--config", config, "--run-dir", run_dir, "--set", "train.max_steps=50")
    assert resumed.code == 0, resumed.err[-2000:]
    assert f"Resuming {run_dir} at step 40" in resumed.out and "Done: reached 50 steps" in resumed.out


@pytest.mark.slow
def test_evaluate_and_translate_a_run_and_a_checkpoint(finetuned, checkpoint, cli):
    """`evaluate` scores the test split (BLEU, chrF, loss); `translate`
    works on the run and on the checkpoint as it is; `explain` says it
    has no pictures for BART."""
    _, run_dir, _ = finetuned
    scored = cli("evaluate", "--run", run_dir)
    assert scored.code == 0, scored.err[-2000:]
    result = json.loads(scored.out.strip().splitlines()[-1])
    assert result["pairs"] > 20 and 0 <= result["bleu"] <= 100 and 0 < result["chrf"] <= 100
    assert np.isfinite(result["loss"]) and 0 < result["accuracy"] <= 1
    assert len((run_dir / "eval/test.hyp.txt").read_text().splitlines()) == result["pairs"]
    for source in (("--run", run_dir), ("--checkpoint", checkpoint)):
        out = cli("translate", *source, *SOURCES, "--beams", "2", "--max-new-tokens", "8")
        assert out.code == 0, out.err[-2000:]
        assert len(out.out.splitlines()) == len(SOURCES)
    refused = cli("explain", "--run", run_dir, "I like tea.")
    assert refused.code == 2 and "a BART run has no explanation" in refused.err


@pytest.mark.slow
def test_export_passes_the_op_audit_and_translates_in_a_fresh_process(finetuned, cli, tmp_path):
    """The export holds only allowed ops (no Xla*), has its warmup file,
    loads in a process with only tensorflow and tensorflow_text, and
    translates as `translate --run` does."""
    from kerasllm.export.saved_model import allowed_ops, graph_ops

    _, run_dir, _ = finetuned
    result = cli("export", "--run", run_dir, "--name", "bart", "--base-dir", tmp_path / "models", "--beams", "1")
    assert result.code == 0, result.err[-2000:]
    path = json.loads(result.out.strip().splitlines()[-1])["path"]
    ops = graph_ops(path)
    assert {"While", "TensorStridedSliceUpdate", "MutableHashTableV2"} <= ops
    assert ops <= allowed_ops() and not [op for op in ops if op.startswith("Xla")], sorted(ops - allowed_ops())
    meta = json.loads((Path(path) / "assets.extra" / "kerasllm.json").read_text())
    assert (meta["kind"], meta["model"], meta["max_length"]) == ("translator", "bart", SEQ_LEN)
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.translate\n"
        "s = tf.constant(json.loads(sys.argv[2]))\n"
        "out = {'greedy': f(sources=s, beams=tf.constant(1)), 'beam2': f(sources=s, beams=tf.constant(2))}\n"
        "warmup = sum(1 for _ in tf.data.TFRecordDataset(sys.argv[1] + '/assets.extra/tf_serving_warmup_requests'))\n"
        "print(json.dumps({k: [t.decode() for t in v['translations'].numpy()] for k, v in out.items()}\n"
        "                 | {'warmup': warmup,\n"
        "                    'modules': sorted(m for m in ('keras_hub', 'kerasllm') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, path, json.dumps(SOURCES)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["modules"] == [] and served["warmup"] == 3
    for beams in ("1", "2"):
        here = cli("translate", "--run", run_dir, *SOURCES, "--beams", beams, "--length-penalty", "0.6")
        assert here.code == 0, here.err[-2000:]
        assert served["greedy" if beams == "1" else "beam2"] == here.out.splitlines()
    via_cli = cli("translate", "--model", Path(path).parent, *SOURCES, "--beams", "1")
    assert via_cli.code == 0 and via_cli.out.splitlines() == served["greedy"]


@pytest.mark.slow
def test_a_checkpoint_exports_as_it_is(checkpoint, cli, tmp_path):
    """`export --checkpoint` serves the checkpoint's own weights and
    tokenizer, recording the checkpoint instead of a run."""
    from kerasllm.export.saved_model import allowed_ops, graph_ops

    result = cli("export", "--checkpoint", checkpoint, "--base-dir", tmp_path / "models", "--beams", "1")
    assert result.code == 0, result.err[-2000:]
    path = json.loads(result.out.strip().splitlines()[-1])["path"]
    assert graph_ops(path) <= allowed_ops()
    meta = json.loads((Path(path) / "assets.extra" / "kerasllm.json").read_text())
    assert (meta["model"], meta["max_length"], meta["checkpoint"]) == ("bart", POSITIONS, str(checkpoint.resolve()))
    served = cli("translate", "--model", Path(path).parent, *SOURCES, "--max-new-tokens", "6")
    here = cli("translate", "--checkpoint", checkpoint, *SOURCES, "--max-new-tokens", "6")
    assert served.code == here.code == 0 and served.out == here.out, (served.err[-2000:], here.err[-2000:])


# -- mistakes, each one line with exit code 2 ----------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"model.seq_len": 65}, "model.seq_len: 65 is longer than the 64 positions of the checkpoint"),
    ({"tokenizer.vocab_size": 1000}, "tokenizer.vocab_size: 1000 does not match the checkpoint's vocabulary of 461"),
    ({"model.num_layers": 6}, "model.num_layers: 6 contradicts the checkpoint's 2"),
    ({"model.hidden_dim": 64}, "model.hidden_dim: 64 contradicts the checkpoint's 32"),
    ({"model.kind": "gpt2"}, "model.kind: gpt2, but train.init_from"),
    ({"tokenizer.kind": "char"}, "set tokenizer.kind: pretrained (got char)"),
    ({"train.init_from": ""}, "train.init_from: model.kind bart starts from a BART checkpoint"),
])
def test_a_config_that_contradicts_its_checkpoint_is_refused(checkpoint, pairs, tmp_path, cli, changes, message):
    config = _config(tmp_path, checkpoint, pairs, **changes)
    result = cli("train", "--config", config, "--run-dir", tmp_path / "run")
    assert result.code == 2 and message in result.err and "Traceback" not in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "run" / "checkpoints").exists()


def test_a_bart_with_unequal_halves_is_refused(checkpoint, pairs, tmp_path, cli):
    """keras-hub's BartBackbone has one size for encoder and decoder."""
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(checkpoint, odd)
    values = json.loads((odd / "config.json").read_text())
    values["decoder_layers"] = 3
    (odd / "config.json").write_text(json.dumps(values))
    result = cli("train", "--config", _config(tmp_path, odd, pairs), "--run-dir", tmp_path / "run")
    assert result.code == 2 and "has encoder_layers 2 but decoder_layers 3" in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


def test_other_commands_on_a_bart_checkpoint_name_translate(checkpoint, tmp_path, cli):
    lines = tmp_path / "lines.txt"
    lines.write_text("I like tea.\n")
    for args in (("generate", "--checkpoint", checkpoint, "The"), ("score", "--checkpoint", checkpoint, lines),
                 ("qa", "--checkpoint", checkpoint, "Who?", "--context", "I like tea.")):
        result = cli(*args)
        assert result.code == 2 and "a BART translation model; use `kerasllm translate`" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
