"""Interpretability (`kerasllm explain` and the TensorBoard pictures of
training): attention weights are distributions, a toy copy and a toy
reversal translator align as they must, the pictures have the size their
layout gives, surprisal is exactly what `score` adds up, training writes
the pictures at every epoch, and the command's mistakes are one line before
TensorFlow loads."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, cli_in_process

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_explain")


def _pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


# -- attention weights ---------------------------------------------------------


def _tiny_gpt():
    from kerasllm.config import ModelConfig
    from kerasllm.tasks import build_model

    model = build_model(ModelConfig(kind="gpt", num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                                    seq_len=16, dropout=0.0), vocabulary_size=30)
    model(np.zeros((1, 2), "int32"))
    return model


def test_self_attention_rows_are_causal_distributions_and_the_walk_is_the_model():
    from keras import ops

    from kerasllm.inference.attention import self_attention

    model = _tiny_gpt()
    ids = np.array([1, 5, 9, 3, 7, 2, 8], "int32")
    scores = self_attention(model, ids)
    assert scores.shape == (2, 2, 7, 7)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(scores, k=1) == 0)  # nothing reads a later position
    # The blocks run one by one (how attention.py reaches each block's input) give the model's own logits.
    backbone = model.backbone
    x = backbone.embed(ids[None], start_index=0)
    for layer in backbone.transformer_layers:
        x = layer(x)
    walked = backbone.token_embedding(backbone.layer_norm(x), reverse=True)
    np.testing.assert_allclose(ops.convert_to_numpy(walked), ops.convert_to_numpy(model(ids[None])), atol=1e-5)


def test_cross_attention_rows_are_distributions_over_the_source():
    from kerasllm.config import ModelConfig
    from kerasllm.data.tokenizers import CharTokenizer
    from kerasllm.inference.attention import cross_attention
    from kerasllm.models import build_translator

    tok = CharTokenizer(list("abcdef"))
    model = build_translator(ModelConfig(kind="seq2seq", num_layers=2, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, seq_len=12, dropout=0.0), tok, tok)
    ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)
    model({"encoder_token_ids": ids, "encoder_padding_mask": mask, "decoder_token_ids": ids, "decoder_padding_mask": mask})
    scores = cross_attention(model, [3, 4, 5, 6, 7], [tok.eot_id, 3, 4])
    assert scores.shape == (2, 2, 3, 5)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(scores > 0)  # every source token is visible to every output position


def test_select_attention_takes_layers_and_heads_or_their_mean():
    from kerasllm.errors import UserError
    from kerasllm.inference.explain import select_attention

    scores = np.random.default_rng(0).random((3, 2, 4, 4))
    last = select_attention(scores)
    assert [(m.layer, m.head) for m in last] == [(2, None)]
    np.testing.assert_allclose(last[0].weights, scores[2].mean(axis=0))
    chosen = select_attention(scores, layers=[0, 1], heads=[1])
    assert [(m.layer, m.head) for m in chosen] == [(0, 1), (1, 1)] and chosen[1].weights is not None
    np.testing.assert_array_equal(chosen[1].weights, scores[1, 1])
    with pytest.raises(UserError, match=r"--layers 3: the model has 3 \(layers 0 to 2\)"):
        select_attention(scores, layers=[3])
    with pytest.raises(UserError, match="--heads 2"):
        select_attention(scores, heads=[2])


def test_token_texts_are_what_each_token_adds():
    from kerasllm.data.tokenizers import ByteTokenizer, CharTokenizer
    from kerasllm.inference.explain import token_texts

    assert token_texts(CharTokenizer(list(" Tabeo")), [4, 8, 3, 6, 7, 1]) == ["T", "o", " ", "b", "e", ""]
    byte = ByteTokenizer()
    ids = byte.tokenize(["é!"])[0].numpy().tolist()  # é is two bytes: neither alone is a character
    assert len(ids) == 3 and token_texts(byte, ids)[-1] == "!"


def test_an_lstm_explanation_is_surprisal_only():
    from types import SimpleNamespace

    from kerasllm.config import ModelConfig
    from kerasllm.data.tokenizers import CharTokenizer
    from kerasllm.inference.explain import explain_language_model
    from kerasllm.tasks import build_model

    tok = CharTokenizer(list(" Tabeo"))
    model = build_model(ModelConfig(kind="lstm", embedding_dim=8, hidden_dim=8, dropout=0.0), tok.vocabulary_size)
    lm = SimpleNamespace(model=model, tokenizer=tok)
    explanation = explain_language_model(lm, "To be", layers=[0])
    assert explanation.tokens == list("To be") and len(explanation.log_probs) == 5
    assert explanation.attention == [] and explanation.notes == ["this model (an LSTM) has no attention: surprisal only"]
    assert [p.name for p in explanation.panels()] == ["surprisal"]


# -- pictures --------------------------------------------------------------------


def _panels():
    from kerasllm.pictures.panels import Heatmap, SpanProbabilities, TokenValues

    text = list("First Citizen:\nBefore we proceed any further, hear me speak.")
    weights = np.tril(np.ones((12, 12)))
    return [
        TokenValues("surprisal", "Surprisal", text, list(np.linspace(0, 5, len(text))), "surprisal (nats)"),
        Heatmap("attention", "Attention", text[:12], text[:12], weights / weights.sum(axis=1, keepdims=True)),
        SpanProbabilities("start_end", "Start and end", ["Anna", "likes", "red", "."], [0, 0.1, 0.8, 0.1],
                          [0, 0, 0.9, 0.1], span=(2, 2), gold=(2, 2)),
    ]


def test_pictures_have_the_size_their_layout_gives():
    from kerasllm.pictures.panels import Heatmap, TokenValues
    from kerasllm.pictures.png import png_size, render_png

    panels = _panels()
    for chosen in ([p] for p in panels):
        width, height = png_size(chosen)
        assert _pixels(render_png(chosen)).shape == (height, width, 4)
    assert _pixels(render_png(panels)).shape == (sum(png_size([p])[1] for p in panels), 800, 4)
    # More tokens, more room: a longer text takes more lines, a longer sequence a taller heatmap.
    short, long = (TokenValues("s", "S", list("ab" * n), [1.0] * 2 * n, "nats") for n in (10, 200))
    assert png_size([long])[1] > png_size([short])[1]
    small, big = (Heatmap("a", "A", list("x" * n), list("x" * n), np.eye(n)) for n in (10, 40))
    assert png_size([big])[1] > png_size([small])[1]


def test_the_html_page_is_self_contained():
    from kerasllm.pictures.html import render_html

    page = render_html(_panels(), title="<run> & text", notes=["one note"])
    assert page.startswith("<!DOCTYPE html>") and "&lt;run&gt; &amp; text" in page and "<p>one note</p>" in page
    assert page.count('src="data:image/png;base64,') == 2  # the heatmap and the span plot
    assert "http" not in page and "<script" not in page  # nothing from outside
    assert 'title="surprisal (nats): 5.000"' in page and "\u21b5</span><br>" in page  # tokens as text, line breaks kept


# -- the command's mistakes ------------------------------------------------------


@pytest.fixture
def fake_runs(tmp_path):
    """Run directories as the checks before TensorFlow see them (config.yaml only)."""
    models = {"gpt": {"kind": "gpt", "num_layers": 2, "num_heads": 4}, "lstm": {"kind": "lstm"},
              "mlm": {"kind": "encoder", "head": "masked_lm"}, "qa": {"kind": "encoder", "head": "span"}}
    for name, model in models.items():
        (tmp_path / name).mkdir()
        tokenizer = {"kind": "wordpiece", "vocab_size": 100} if model["kind"] == "encoder" else {"kind": "char"}
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"name": name, "tokenizer": tokenizer,
                                                                     "model": model}))
    return tmp_path


def test_explain_mistakes_exit_2_with_one_line_before_tensorflow_loads(fake_runs):
    cases = [
        (["--run", fake_runs / "none", "x"], "not a run directory (no config.yaml)"),
        (["--run", fake_runs / "gpt", "x", "--layers", "2"], "--layers 2: the model has 2 layers, numbered 0 to 1"),
        (["--run", fake_runs / "gpt", "x", "--heads", "0,x"], "--heads 0,x: the model has 4 heads"),
        (["--run", fake_runs / "gpt", "x", "--context", "a passage"], "only a question-answering run reads a passage"),
        (["--run", fake_runs / "gpt", "x", "--out", "x.json", "--format", "png"], "give a .png file"),
        (["--run", fake_runs / "qa", "Who?"], "give the passage with --context TEXT or --input FILE"),
        (["--run", fake_runs / "qa", "Who?", "--input", fake_runs / "missing.txt"], "--input"),
        (["--run", fake_runs / "mlm", "x"], "a encoder/masked_lm run (masked-LM pretraining)"),
    ]
    script = (
        "import json, sys\n"
        "from kerasllm.cli.main import main\n"
        "out = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        main(['explain'] + args)\n"
        "    except SystemExit as e:\n"
        "        out.append(e.code)\n"
        "print(json.dumps([out, 'tensorflow' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, json.dumps([[str(a) for a in args] for args, _ in cases])],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    codes, tensorflow_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases) and not tensorflow_loaded, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(cases)
    for (_, message), line in zip(cases, errors):
        assert message in line, (message, line)


def test_an_lstm_asked_for_attention_says_so_in_one_line(cli, fake_runs):
    """The warning comes before TensorFlow loads; loading the fake run then fails."""
    result = cli("explain", "--run", fake_runs / "lstm", "x", "--layers", "0")
    assert result.err.splitlines()[0] == "warning: --layers/--heads: an LSTM has no attention; explain shows the surprisal only"


# -- a language model ------------------------------------------------------------

TEXT = "ROMEO: What say you?\nJULIET: Nothing."


@pytest.mark.slow
def test_language_model_pictures_page_and_numbers(trained, cli, tmp_path):
    from kerasllm.inference.explain import explain_language_model
    from kerasllm.loaded_run import load_run
    from kerasllm.pictures.png import png_size

    run_dir, _ = trained
    png = cli("explain", "--run", run_dir, TEXT, "--layers", "0", "--heads", "all", "--out", tmp_path / "lm.png")
    assert png.code == 0 and png.out == f"wrote {tmp_path / 'lm.png'}\n", png.err
    # The picture: the surprisal strip and one heatmap per head, at the size the layout gives.
    explanation = explain_language_model(load_run(str(run_dir)), TEXT, layers=[0], heads=[0, 1])
    assert [p.name for p in explanation.panels()] == ["surprisal", "attention_layer_0_head_0", "attention_layer_0_head_1"]
    width, height = png_size(explanation.panels())
    assert _pixels((tmp_path / "lm.png").read_bytes()).shape == (height, width, 4)
    # tiny-char's context is 32 tokens: attention covers the start token and the first 31, and says so.
    assert "note: attention over the first 31 tokens" in png.err
    assert explanation.attention[0].weights.shape == (32, 32)
    page = cli("explain", "--run", run_dir, TEXT, "--out", tmp_path / "lm.html")
    assert page.code == 0 and (tmp_path / "lm.html").read_text().count('title="surprisal (nats): ') == len(TEXT)
    numbers = cli("explain", "--run", run_dir, TEXT, "--format", "json", "--out", "-")
    data = json.loads(numbers.out)
    assert data["kind"] == "language_model" and "".join(t["text"] for t in data["tokens"]) == TEXT
    assert [m["head"] for m in data["attention"]["maps"]] == ["mean"] and data["attention"]["tokens"][0] == "<start>"


@pytest.mark.slow
def test_surprisal_is_the_log_probabilities_that_score_adds_up(trained, cli, tmp_path):
    import tensorflow as tf

    from kerasllm.loaded_run import load_run

    run_dir, _ = trained
    data = json.loads(cli("explain", "--run", run_dir, TEXT, "--format", "json", "--out", "-").out)
    log_probs = [t["log_prob"] for t in data["tokens"]]
    assert all(t["surprisal"] == -t["log_prob"] for t in data["tokens"]) and data["unit"] == "nats"
    (tmp_path / "line.txt").write_text(TEXT.replace("\n", " ") + "\n" + TEXT.split("\n")[0] + "\n")
    one_line = json.loads(cli("explain", "--run", run_dir, TEXT.replace("\n", " "), "--format", "json",
                              "--out", "-").out)
    scored = cli("score", "--run", run_dir, "--input", tmp_path / "line.txt").out.splitlines()[1].split("\t")
    assert float(scored[0]) == pytest.approx(sum(t["log_prob"] for t in one_line["tokens"]), abs=2e-3)
    assert int(scored[1]) == len(one_line["tokens"])
    # Each number is the model's own: log-softmax of its logits at the token, after the start token
    # (the text is 37 tokens, longer than the 32-token context: the second window starts afresh, as in score).
    lm = load_run(str(run_dir))
    ids = [lm.tokenizer.eot_id] + [t["id"] for t in data["tokens"]]
    expected = []
    for start in range(0, len(ids) - 1, 32):
        window = ids[start:start + 33]
        logits = tf.nn.log_softmax(tf.cast(lm.model(np.array([window[:-1]], "int32")), tf.float32))[0].numpy()
        expected += [logits[i, t] for i, t in enumerate(window[1:])]
    np.testing.assert_allclose(log_probs, expected, atol=1e-4)


def _explain_images(log_dir) -> dict:
    """{tag: [(step, width, height)]} of the `explain/` images in a TensorBoard log directory."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    found = {}
    for tag in events.Tags()["tensors"]:
        if tag.startswith("explain/"):
            for event in events.Tensors(tag):
                value = tf.make_ndarray(event.tensor_proto)
                entry = (event.step, int(value[0]), int(value[1])) if value.ndim else (event.step, value.item().decode())
                found.setdefault(tag, []).append(entry)
    return found


@pytest.mark.slow
def test_training_writes_a_language_models_pictures_at_every_epoch(trained):
    run_dir, _ = trained
    images = _explain_images(run_dir / "logs" / "train")
    # tiny-char: 2 epochs of 20 steps; the callback draws after each.
    assert [(step, width) for step, width, _ in images["explain/surprisal"]] == [(20, 800), (40, 800)]
    assert [step for step, *_ in images["explain/attention_layer_0_mean"]] == [20, 40]
    losses = images["explain/token_loss"]
    assert [step for step, _ in losses] == [20, 40] and losses[0][1].startswith("Loss per token (nats)")


# -- translators: a copy task and a reversal task ----------------------------------

LETTERS, LENGTH = "abcdefgh", 6


def _toy_translator(tmp, name: str, target) -> str:
    """A translator of fixed-length letter strings (letters repeat, so only
    positions say where a letter goes), trained for two short epochs from
    configs/spa-eng-transformer.yaml with --set overrides."""
    rng = random.Random(0)
    words = ["".join(rng.choice(LETTERS) for _ in range(LENGTH)) for _ in range(1500)]
    (tmp / f"{name}.tsv").write_text("".join(f"{w}\t{target(w)}\n" for w in words))
    settings = {
        "name": name, "data.source": tmp / f"{name}.tsv", "data.val_fraction": 0.05, "data.test_fraction": 0.05,
        # Separate vocabularies: with one shared (tied) embedding these toys learned far slower.
        "tokenizer.kind": "char", "tokenizer.shared": "false", "model.seq_len": LENGTH + 2, "model.num_layers": 1,
        "model.num_heads": 1, "model.hidden_dim": 32, "model.intermediate_dim": 64, "model.dropout": 0,
        "train.batch_size": 32, "train.epochs": 2, "train.steps_per_epoch": 200, "train.learning_rate": 0.01,
        "train.warmup_steps": 10, "train.label_smoothing": 0, "train.num_samples": 0, "train.seed": 0,
    }
    args = [a for key, value in settings.items() for a in ("--set", f"{key}={value}")]
    result = cli_in_process("train", "--config", ROOT / "configs/spa-eng-transformer.yaml", *args,
                            "--run-dir", tmp / name, "--quiet")
    assert result.code == 0, result.err[-3000:]
    return str(tmp / name)


@pytest.fixture(scope="module")
def toy_translators(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toys")
    return {"copy": _toy_translator(tmp, "copy", lambda w: w), "reverse": _toy_translator(tmp, "reverse", lambda w: w[::-1])}


def _alignment_hits(run_dir: str, where) -> float:
    """Share of output tokens whose strongest cross-attention (last layer,
    mean of heads) falls on `where(i, n)`, over 12 new strings the model
    translates itself; every translation must be right."""
    from kerasllm.inference.explain import explain_translation
    from kerasllm.loaded_run import load_run

    lm = load_run(run_dir)
    rng = random.Random(7)
    hits = total = 0
    for _ in range(12):
        word = "".join(rng.choice(LETTERS) for _ in range(LENGTH))
        explanation = explain_translation(lm, word)
        assert explanation.output_tokens[-1] == "<end>" and len(explanation.output_tokens) == LENGTH + 1
        weights = explanation.cross_attention[0].weights[:LENGTH]  # the end-of-text row reads anything
        hits += sum(int(row.argmax() == where(i, LENGTH)) for i, row in enumerate(weights))
        total += LENGTH
    return hits / total


@pytest.mark.slow
def test_a_copy_translator_attends_along_the_diagonal(toy_translators):
    # Trained this way, the alignment is exact (every token, on Linux x86-64);
    # 90% leaves room for floating-point differences elsewhere, while chance
    # (a 1 in 6 guess) or an off-by-one alignment would score far below.
    assert _alignment_hits(toy_translators["copy"], lambda i, n: i) >= 0.9


@pytest.mark.slow
def test_a_reversal_translator_attends_along_the_anti_diagonal(toy_translators):
    assert _alignment_hits(toy_translators["reverse"], lambda i, n: n - 1 - i) >= 0.9


@pytest.mark.slow
def test_a_translators_picture_and_its_training_pictures(toy_translators, cli, tmp_path):
    from kerasllm.inference.explain import explain_translation
    from kerasllm.loaded_run import load_run
    from kerasllm.pictures.png import png_size

    run_dir = toy_translators["reverse"]
    result = cli("explain", "--run", run_dir, "abcdef", "--out", tmp_path / "reverse.png")
    assert result.code == 0, result.err
    explanation = explain_translation(load_run(run_dir), "abcdef")
    assert explanation.translation == "fedcba" and explanation.source_tokens == list("abcdef")
    assert [p.name for p in explanation.panels()] == ["cross_attention_layer_0_mean", "output_surprisal"]
    width, height = png_size(explanation.panels())
    assert _pixels((tmp_path / "reverse.png").read_bytes()).shape == (height, width, 4)
    # Training drew the first validation pair read against its reference, after each 200-step epoch.
    images = _explain_images(f"{run_dir}/logs/train")
    assert [step for step, *_ in images["explain/cross_attention_layer_0_mean"]] == [200, 400]
    assert [step for step, *_ in images["explain/output_surprisal"]] == [200, 400]


# -- question answering ------------------------------------------------------------


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    """A span model trained from scratch for two epochs of 5 steps on
    "Anna likes red." paragraphs: enough to have pictures, not answers."""
    tmp = tmp_path_factory.mktemp("qa")
    rng = random.Random(0)
    names, colours = ["Anna", "Ben", "Carl", "Dora", "Emil"], ["red", "blue", "green", "pink", "gold"]
    data = []
    for a in range(25):
        facts = list(zip(rng.sample(names, 3), rng.sample(colours, 3)))
        context = " ".join(f"{n} likes {c}." for n, c in facts)
        qas = [{"id": f"{a}-{n}", "question": f"What does {n} like?",
                "answers": [{"text": c, "answer_start": context.index(f"{n} likes {c}") + len(f"{n} likes ")}]}
               for n, c in facts]
        data.append({"title": f"article {a}", "paragraphs": [{"context": context, "qas": qas}]})
    (tmp / "toy.json").write_text(json.dumps({"version": "1.1", "data": data}))
    (tmp / "qa.yaml").write_text(yaml.safe_dump({
        "name": "toy-qa", "data": {"source": str(tmp / "toy.json"), "format": "squad", "val_fraction": 0.2},
        "tokenizer": {"kind": "wordpiece", "vocab_size": 48, "lowercase": True},
        "model": {"kind": "encoder", "head": "span", "seq_len": 32, "num_layers": 1, "num_heads": 2, "hidden_dim": 32,
                  "intermediate_dim": 64, "dropout": 0.0, "max_question_tokens": 10, "doc_stride": 8,
                  "max_answer_tokens": 4},
        "train": {"batch_size": 8, "epochs": 2, "steps_per_epoch": 5, "learning_rate": 3e-3, "warmup_steps": 2,
                  "num_samples": 0}}))
    result = cli_in_process("train", "--config", tmp / "qa.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.code == 0, result.err[-3000:]
    return tmp / "run"


PASSAGE = "Ben likes red. Anna likes gold. Carl likes pink, and Dora likes grey."


@pytest.mark.slow
def test_question_answering_pictures_numbers_and_training_pictures(qa_run, cli, tmp_path):
    from kerasllm.inference.explain import explain_question_answering
    from kerasllm.loaded_run import load_run
    from kerasllm.pictures.png import png_size

    (tmp_path / "passage.txt").write_text(PASSAGE)
    result = cli("explain", "--run", qa_run, "What does Anna like?", "--input", tmp_path / "passage.txt",
                 "--out", tmp_path / "qa.png")
    assert result.code == 0, result.err
    explanation = explain_question_answering(load_run(str(qa_run)), "What does Anna like?", PASSAGE)
    width, height = png_size(explanation.panels())
    assert _pixels((tmp_path / "qa.png").read_bytes()).shape == (height, width, 4)
    data = json.loads(json.dumps(explanation.to_dict()))  # what --format json writes
    answer = json.loads(cli("qa", "--run", qa_run, "What does Anna like?", "--context", PASSAGE).out)
    assert (data["answer"], data["start"], data["end"]) == (answer["answer"], answer["start"], answer["end"])
    tokens = data["tokens"]
    assert all(PASSAGE[t["start"]:t["end"]] == t["text"] for t in tokens)
    # Probabilities over one window's positions: the passage's share plus the rest is 1.
    for side in ("start", "end"):
        total = sum(t[f"{side}_probability"] for t in tokens) + data["outside_passage"][side]
        assert total == pytest.approx(1.0, abs=1e-3)
    first, last = data["span"]
    assert tokens[first]["start"] < data["end"] and tokens[last]["end"] > data["start"]  # the answer's tokens
    images = _explain_images(qa_run / "logs" / "train")
    assert [step for step, *_ in images["explain/start_end"]] == [5, 10]
    assert [step for step, _ in images["explain/token_loss"]] == [5, 10]
    assert images["explain/token_loss"][0][1].startswith("Gold answer: tokens")
