"""Pretrained encoders for extractive question answering (issue 36): BERT
and DistilBERT Hugging Face directories, written tiny by
tests/tiny_checkpoints.py, under a new span head: weights and sequence
output as keras-hub converts them, the checkpoint's WordPiece with offsets
(ids as its tokenizer.json gives them, in eager code and in tf.data), a
short fine-tune on a slice of SQuAD, resume, evaluate, qa, explain, the
export's op audit and fresh-process answers; and each mistake answered in
one line with exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, cli_in_process, dataset_file
from tiny_checkpoints import (SENTENCE, read_tensors, write_bert, write_distilbert, write_keras_hub_preset,
                              write_roberta)

pytestmark = pytest.mark.xdist_group("pretrained_encoders")
POSITIONS = 128  # the tiny checkpoints' max_position_embeddings
SEQ_LEN = 96  # the runs' windows: the position table is cut to it
TEXTS = [SENTENCE, "THE KEEPER'S LAMP, 92 steps up.", "Beyoncé's café in Zürich — São Paulo, naïve résumé!"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One Hugging Face directory per encoder family (kind -> path)."""
    root = tmp_path_factory.mktemp("encoders")
    return {"bert": write_bert(root / "bert", max_positions=POSITIONS),
            "distilbert": write_distilbert(root / "distilbert", max_positions=POSITIONS)}


@pytest.fixture(scope="module")
def squad(tmp_path_factory):
    """The first paragraphs of SQuAD's first articles (a few hundred real questions)."""
    data = json.loads(dataset_file("squad-v1.1").read_text())
    small = {"version": data["version"],
             "data": [{"title": a["title"], "paragraphs": a["paragraphs"][:4]} for a in data["data"][:6]]}
    path = tmp_path_factory.mktemp("squad") / "squad-small.json"
    path.write_text(json.dumps(small))
    return path


def _config(tmp_path: Path, checkpoint, squad_file, name="qa.yaml", **changes) -> Path:
    """configs/squad-bert.yaml, sized for a tiny checkpoint and seconds of training."""
    values = yaml.safe_load((ROOT / "configs/squad-bert.yaml").read_text())
    values["data"].update(source=str(squad_file), format="squad", val_fraction=0.2)
    values["model"].update(seq_len=SEQ_LEN, doc_stride=48, max_question_tokens=24, max_answer_tokens=16)
    values["train"].update(init_from=str(checkpoint), batch_size=16, max_steps=30, learning_rate=1e-3,
                           warmup_steps=3, save_every_steps=10, log_every_steps=10, num_samples=1)
    for key, value in changes.items():
        section, field = key.split(".")
        values[section][field] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def built(checkpoints, squad, tmp_path_factory):
    """kind -> (training task, its model initialised from the checkpoint), as
    a new run builds them (windows of SEQ_LEN: positions cut)."""
    from kerasllm import config as config_lib
    from kerasllm import task_registry
    from kerasllm.run_dir import RunDir

    out = {}
    for kind, path in checkpoints.items():
        tmp = tmp_path_factory.mktemp(f"built-{kind}")
        config = config_lib.load(_config(tmp, path, squad, **{"model.kind": kind}))
        training = task_registry.for_model(config.model).open_training(config, RunDir(tmp / "run"), None)
        model = training.build_model(None)
        training.initialise(model, lambda line: None)
        out[kind] = training, model
    return out


# -- what a checkpoint is ------------------------------------------------------------------------------------------


def test_inspect_reads_each_encoder_family_and_its_positions(checkpoints):
    from kerasllm import pretrained

    for kind, path in checkpoints.items():
        info = pretrained.inspect(str(path))
        assert (info.family.kind, info.family.role, info.max_positions) == (kind, "span", POSITIONS)
        vocab = len((path / "vocab.txt").read_text().splitlines())
        assert info.sizes == {"num_layers": 2, "num_heads": 4, "hidden_dim": 32, "intermediate_dim": 64,
                              "vocab_size": vocab}
    assert "bert (BERT), distilbert (DistilBERT)" in pretrained.supported()


# -- weights, outputs and tokens as keras-hub and the checkpoint's tokenizer give them --------------------------------


def _hugging_face_names(kind: str, num_layers: int) -> dict:
    """keras-hub weight path -> the Hugging Face tensor its converter reads."""
    if kind == "bert":
        names = {"token_embedding/embeddings": "bert.embeddings.word_embeddings.weight",
                 "position_embedding/embeddings": "bert.embeddings.position_embeddings.weight",
                 "segment_embedding/embeddings": "bert.embeddings.token_type_embeddings.weight",
                 "embeddings_layer_norm": "bert.embeddings.LayerNorm", "pooled_dense": "bert.pooler.dense"}
        layer = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
                 "attention_output": "attention.output.dense", "self_attention_layer_norm": "attention.output.LayerNorm",
                 "feedforward_intermediate_dense": "intermediate.dense", "feedforward_output_dense": "output.dense",
                 "feedforward_layer_norm": "output.LayerNorm"}
        prefix = "bert.encoder.layer"
    else:
        names = {"token_and_position_embedding/token_embedding/embeddings":
                 "distilbert.embeddings.word_embeddings.weight",
                 "token_and_position_embedding/position_embedding/embeddings":
                 "distilbert.embeddings.position_embeddings.weight",
                 "embeddings_layer_norm": "distilbert.embeddings.LayerNorm"}
        layer = {"query": "attention.q_lin", "key": "attention.k_lin", "value": "attention.v_lin",
                 "attention_output": "attention.out_lin", "self_attention_layer_norm": "sa_layer_norm",
                 "feedforward_intermediate_dense": "ffn.lin1", "feedforward_output_dense": "ffn.lin2",
                 "feedforward_layer_norm": "output_layer_norm"}
        prefix = "distilbert.transformer.layer"
    for i in range(num_layers):
        for ours, theirs in layer.items():
            inside = "self_attention_layer/" if ours in ("query", "key", "value", "attention_output") else ""
            names[f"transformer_layer_{i}/{inside}{ours}"] = f"{prefix}.{i}.{theirs}"
    return names


def _expected(weight, names: dict, tensors: dict) -> np.ndarray:
    """The source tensor of a keras-hub weight, in keras-hub's layout: linear
    kernels transposed (and split over heads), position rows cut."""
    if weight.path in names:
        value = tensors[names[weight.path]]
        return value[: weight.shape[0]]  # a position table keeps its first rows
    layer, variable = weight.path.rsplit("/", 1)
    suffix = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}[variable]
    value = tensors[f"{names[layer]}.{suffix}"]
    return np.reshape(value.T if variable == "kernel" else value, weight.shape)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_converted_weights_equal_the_source_tensors(built, checkpoints, kind):
    """Every encoder weight of a new run equals the safetensors tensor it
    came from (through keras-hub's converter); only the span head is new."""
    training, model = built[kind]
    tensors = read_tensors(checkpoints[kind])
    names = _hugging_face_names(kind, 2)
    backbone = model.backbone.weights
    assert len(backbone) == {"bert": 39, "distilbert": 36}[kind]
    for weight in backbone:
        np.testing.assert_array_equal(weight.numpy(), _expected(weight, names, tensors), err_msg=weight.path)
    positions = [w for w in backbone if w.path.endswith("position_embedding/embeddings")][0]
    assert positions.shape[0] == SEQ_LEN < POSITIONS
    assert sorted(w.path for w in model.weights if not any(w is b for b in backbone)) == [
        "span_model/span_head/bias", "span_model/span_head/kernel"]


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_sequence_output_equals_keras_hubs_backbone(built, checkpoints, kind):
    """Our model's encoder reads a window as keras-hub's own backbone loaded
    from the same directory does (its full position table)."""
    import keras_hub

    training, model = built[kind]
    windows = training.preprocessor.windows(np.array(["Who keeps the lamp?"]), np.array([SENTENCE]))
    inputs = {k: windows[k] for k in model.backbone_inputs}
    reference = keras_hub.models.Backbone.from_preset(str(checkpoints[kind]))
    assert reference.get_config()["max_sequence_length"] == POSITIONS
    ours, theirs = model.backbone(inputs), reference(inputs)
    if kind == "bert":  # BERT's backbone also has a pooled output; DistilBERT's gives the sequence alone
        ours, theirs = ours["sequence_output"], theirs["sequence_output"]
    assert ours.shape == (1, SEQ_LEN, 32)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    start, end = model(training.preprocessor.model_inputs(windows))
    assert start.shape == end.shape == (1, SEQ_LEN)


def _normalized(text: str) -> str:
    """An uncased BERT's view of text: accents stripped, lowercased."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn").lower()


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_tokens_equal_tokenizer_json_with_offsets_into_the_original_text(built, checkpoints, kind, tmp_path):
    """The run's tokenizer gives the checkpoint's tokenizer.json ids (Hugging
    Face `tokenizers`), accents stripped as it strips them, eagerly, in
    tf.data and once saved and loaded; question answering's offsets give
    the same ids and slice each token's characters out of the original text."""
    import tensorflow as tf
    from tokenizers import Tokenizer as HFTokenizer

    from kerasllm.data.preprocessors import qa_features
    from kerasllm.data.tokenizers import load_tokenizer

    tok = built[kind][0].tokenizer
    hf = HFTokenizer.from_file(str(checkpoints[kind] / "tokenizer.json"))
    expected = [hf.encode(t, add_special_tokens=False).ids for t in TEXTS]
    assert tok.tokenize(TEXTS).to_list() == expected
    tok.save(tmp_path / "tok")
    assert load_tokenizer(tmp_path / "tok").tokenize(TEXTS).to_list() == expected
    data = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2)
    assert [row for batch in data.map(tok.tokenize) for row in batch.to_list()] == expected

    def with_offsets(texts):
        ids, starts, ends = qa_features.tokenize_with_offsets(tok, texts)
        return ids, starts, ends

    rows = [tuple(x.to_list() for x in batch) for batch in data.map(with_offsets)]
    ids = [r for batch in rows for r in batch[0]]
    offsets = [list(zip(s, e)) for batch in rows for s, e in zip(batch[1], batch[2])]
    assert ids == expected
    for text, row, spans in zip(TEXTS, expected, offsets):
        for token_id, (start, end) in zip(row, spans):
            piece = hf.id_to_token(token_id)
            if piece != "[UNK]":
                assert _normalized(text[start:end]) == piece.removeprefix("##"), (text, piece, start, end)
    assert tok.special_id("[CLS]") == hf.token_to_id("[CLS]") and tok.special_id("[SEP]") == hf.token_to_id("[SEP]")


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_a_keras_hub_preset_reads_as_its_hugging_face_directory(built, checkpoints, kind, tmp_path):
    """A keras-hub preset saved from the same checkpoint (`save_to_preset`)
    gives the same family, positions, encoder weights and English tokens.
    (Its tokenizer keeps keras-hub's own setting: accents are stripped only
    for a Hugging Face directory whose tokenizer strips them.)"""
    from kerasllm import pretrained
    from kerasllm.models.hub import backbone_from_checkpoint, load_checkpoint_weights
    from kerasllm.training.pretrained_encoders import encoder_tokenizer

    preset = write_keras_hub_preset(tmp_path / "preset", kind, source=checkpoints[kind])
    info = pretrained.inspect(str(preset))
    assert (info.format, info.family.kind, info.max_positions) == ("keras-hub", kind, POSITIONS)
    assert info.sizes == pretrained.inspect(str(checkpoints[kind])).sizes
    backbone = backbone_from_checkpoint(str(preset), info.family, SEQ_LEN)
    load_checkpoint_weights(backbone, str(preset), info.family)
    for ours, theirs in zip(backbone.weights, built[kind][1].backbone.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    english = TEXTS[:2]
    assert encoder_tokenizer(info).tokenize(english).to_list() == built[kind][0].tokenizer.tokenize(english).to_list()


# -- fine-tuning on SQuAD, and everything a question-answering run does ----------------------------------------------


def _validation_loss(training, model) -> float:
    """The validation loss (start + end cross-entropy) of `model` on the
    run's validation windows, as the trainer computes it."""
    model.compile(loss=training.loss())
    return float(model.evaluate(training.validation_batches(), verbose=0, return_dict=True)["loss"])


@pytest.fixture(scope="module")
def finetuned(checkpoints, squad, tmp_path_factory):
    """A BERT run fine-tuned for 30 steps on the SQuAD slice: (config file,
    run directory, what training printed)."""
    tmp = tmp_path_factory.mktemp("finetuned")
    config = _config(tmp, checkpoints["bert"], squad)
    result = cli_in_process("train", "--config", config, "--run-dir", tmp / "run")
    assert result.code == 0, result.err[-3000:]
    return config, tmp / "run", result.out


@pytest.mark.slow
def test_finetune_lowers_the_validation_loss_and_resumes(built, finetuned, cli):
    """30 steps on real SQuAD questions lower the validation loss below that
    of the checkpoint under a new span head; the run saved the checkpoint's
    tokenizer and its architecture (positions cut), and a second `train`
    with more steps resumes it."""
    config, run_dir, out = finetuned
    before = _validation_loss(*built["bert"])
    after = float(re.search(r"best validation loss ([0-9]+\.[0-9]+)", out).group(1))
    assert "Initialised all 39 encoder weights from the BERT checkpoint" in out and "span head starts from scratch" in out
    assert after < 0.8 * before, (before, after)
    assert json.loads((run_dir / "architecture.json").read_text())["max_sequence_length"] == SEQ_LEN
    assert json.loads((run_dir / "tokenizer" / "tokenizer.json").read_text())["kind"] == "pretrained"
    resumed = cli("train", "--config", config, "--run-dir", run_dir, "--set", "train.max_steps=40")
    assert resumed.code == 0, resumed.err[-2000:]
    assert f"Resuming {run_dir} at step 30" in resumed.out and "Done: reached 40 steps" in resumed.out


@pytest.mark.slow
def test_evaluate_qa_and_explain_a_finetuned_run(finetuned, cli, tmp_path):
    """`evaluate` scores held-out articles with SQuAD's Exact Match and F1,
    `qa --run` answers with offsets into the passage, and `explain` shows
    the start and end probabilities of the passage's tokens."""
    _, run_dir, _ = finetuned
    scored = cli("evaluate", "--run", run_dir, "--split", "validation")
    assert scored.code == 0, scored.err[-2000:]
    result = json.loads(scored.out.strip().splitlines()[-1])
    assert result["questions"] > 50 and 0 <= result["exact_match"] <= result["f1"] <= 100
    context = "Beyoncé rose to fame in the late 1990s as the lead singer of Destiny's Child."
    answered = cli("qa", "--run", run_dir, "When did Beyoncé become famous?", "--context", context)
    assert answered.code == 0, answered.err[-2000:]
    answer = json.loads(answered.out.strip().splitlines()[-1])
    assert answer["answer"] and context[answer["start"]:answer["end"]] == answer["answer"]
    out = tmp_path / "explain.json"
    explained = cli("explain", "--run", run_dir, "When did Beyoncé become famous?", "--context", context,
                    "--format", "json", "--out", out)
    assert explained.code == 0, explained.err[-2000:]
    e = json.loads(out.read_text())
    assert e["answer"] == answer["answer"] and e["tokens"][5]["text"] == "é"  # b e y o n c|é: offsets keep the accent
    for side in ("start", "end"):
        total = sum(t[f"{side}_probability"] for t in e["tokens"]) + e["outside_passage"][side]
        assert total == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_export_passes_the_op_audit_and_answers_in_a_fresh_process(finetuned, cli, tmp_path):
    """The export holds only allowed ops (TF Text's normalize ops for BERT's
    lowercasing among them), loads in a process with only tensorflow and
    tensorflow_text, and answers as `qa --run` does."""
    _, run_dir, _ = finetuned
    _check_export_serves_as_the_run(run_dir, cli, tmp_path)


def _check_export_serves_as_the_run(run_dir, cli, tmp_path):
    """Exports `run_dir`; asserts the op audit, and that a process with only
    tensorflow and tensorflow_text answers as `qa --run` does."""
    from kerasllm.export.saved_model import allowed_ops, graph_ops

    result = cli("export", "--run", run_dir, "--name", "squad-encoder", "--base-dir", tmp_path / "models")
    assert result.code == 0, result.err[-2000:]
    path = json.loads(result.out.strip().splitlines()[-1])["path"]
    ops = graph_ops(path)
    assert {"CaseFoldUTF8", "NormalizeUTF8", "FastWordpieceTokenizeWithOffsets"} <= ops
    assert ops <= allowed_ops() and not [op for op in ops if op.startswith("Xla")], sorted(ops - allowed_ops())
    questions = ["Who rose to fame?", "When did Beyoncé become famous?"]
    context = "Beyoncé rose to fame in the late 1990s as the lead singer of Destiny's Child."
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.signatures['serving_default']\n"
        "q = json.loads(sys.argv[2]); out = f(question=tf.constant(q), context=tf.constant([sys.argv[3]] * len(q)))\n"
        "print(json.dumps({'answers': [a.decode() for a in out['answer'].numpy()],\n"
        "                  'starts': out['start'].numpy().tolist(), 'ends': out['end'].numpy().tolist(),\n"
        "                  'modules': sorted(m for m in ('keras_hub', 'keras_nlp', 'kerasllm') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, path, json.dumps(questions), context],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    here = cli("qa", "--run", run_dir, *questions, "--context", context)
    assert here.code == 0, here.err[-2000:]
    answers = [json.loads(line) for line in here.out.splitlines()]
    assert served["answers"] == [a["answer"] for a in answers]
    assert served["starts"] == [a["start"] for a in answers] and served["ends"] == [a["end"] for a in answers]


@pytest.mark.slow
def test_a_distilbert_checkpoint_fine_tunes_and_answers(checkpoints, squad, tmp_path, cli):
    """DistilBERT (no segment ids) trains under the span head through the
    same config with `model.kind: distilbert`, answers, and its export passes
    the op audit and answers the same in a fresh process."""
    config = _config(tmp_path, checkpoints["distilbert"], squad, **{"model.kind": "distilbert", "train.max_steps": 10})
    result = cli("train", "--config", config, "--run-dir", tmp_path / "run")
    assert result.code == 0, result.err[-3000:]
    assert "Initialised all 36 encoder weights from the DistilBERT checkpoint" in result.out
    context = "The keeper climbs the ninety-two steps to light the lamp."
    answered = cli("qa", "--run", tmp_path / "run", "What does the keeper light?", "--context", context)
    assert answered.code == 0, answered.err[-2000:]
    answer = json.loads(answered.out.strip().splitlines()[-1])
    assert context[answer["start"]:answer["end"]] == answer["answer"]
    _check_export_serves_as_the_run(tmp_path / "run", cli, tmp_path)


# -- mistakes, each one line with exit code 2 ----------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"model.seq_len": 129}, "model.seq_len: 129 is longer than the 128 positions of the checkpoint"),
    ({"tokenizer.vocab_size": 1000}, "tokenizer.vocab_size: 1000 does not match the checkpoint's vocabulary of"),
    ({"model.num_layers": 6}, "model.num_layers: 6 contradicts the checkpoint's 2"),
    ({"model.hidden_dim": 64}, "model.hidden_dim: 64 contradicts the checkpoint's 32"),
    ({"model.kind": "distilbert"}, "model.kind: distilbert, but train.init_from"),
    ({"tokenizer.kind": "char"}, "set tokenizer.kind: pretrained (got char)"),
    ({"model.question_match": True}, "model.question_match: a BERT checkpoint has no segment for question matches"),
    ({"model.head": "masked_lm"}, "model.head: a BERT run answers questions with a span head"),
    ({"train.init_from": ""}, "train.init_from: model.kind bert starts from a BERT checkpoint"),
])
def test_a_config_that_contradicts_its_checkpoint_is_refused(checkpoints, squad, tmp_path, cli, changes, message):
    config = _config(tmp_path, checkpoints["bert"], squad, **changes)
    result = cli("train", "--config", config, "--run-dir", tmp_path / "run")
    assert result.code == 2 and message in result.err and "Traceback" not in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "run" / "checkpoints").exists()


def test_unsupported_and_mismatched_checkpoints_are_refused(checkpoints, squad, tmp_path, cli):
    """A RoBERTa checkpoint (its byte-level BPE gives no offsets) names the
    supported families; tokenizer files of another checkpoint are refused."""
    import shutil

    roberta = write_roberta(tmp_path / "roberta")
    mixed = tmp_path / "mixed"
    shutil.copytree(checkpoints["bert"], mixed)
    values = json.loads((mixed / "config.json").read_text())
    values["vocab_size"] = 100  # fewer embedding rows than vocab.txt has tokens
    (mixed / "config.json").write_text(json.dumps(values))
    for path, message in [
        (roberta, "is a 'roberta' checkpoint, a family kerasllm does not run; supported: gpt2 (GPT-2), "
                  "llama3 (Llama 3), bert (BERT), distilbert (DistilBERT), bart (BART)"),
        (mixed, "tokenizer files hold"),
    ]:
        result = cli("train", "--config", _config(tmp_path, path, squad), "--run-dir", tmp_path / "run")
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1


def test_a_checkpoint_without_a_trained_span_head_is_refused(checkpoints, tmp_path, cli):
    """`qa` and `export --checkpoint` say to fine-tune first; `generate` and
    `score` say it is an encoder for question answering."""
    bert = checkpoints["bert"]
    lines = tmp_path / "lines.txt"
    lines.write_text("The keeper's lamp.\n")
    for args, message in [
        (("qa", "--checkpoint", bert, "Who?", "--context", SENTENCE), "has no trained span head to answer with; "
                                                                      "fine-tune it first"),
        (("export", "--checkpoint", bert, "--base-dir", tmp_path / "models"), "has no trained span head"),
        (("generate", "--checkpoint", bert, "The"), "is an encoder for question answering, not a language model"),
        (("score", "--checkpoint", checkpoints["distilbert"], lines), "a DistilBERT checkpoint is an encoder"),
    ]:
        result = cli(*args)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists()
