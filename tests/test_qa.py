"""Question answering end to end on a small synthetic SQuAD-format file:
masked-LM pretraining, fine-tuning from it (`train.init_from`), the official
metric on held-out articles, `kerasllm qa`, and the mistakes users make."""

from __future__ import annotations

import json
import random
import re

import pytest

from conftest import ROOT, cli_in_process
from export_meta import check_provenance
from kerasllm.evaluation.squad_metric import squad_scores

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_qa")

NAMES = ["anna", "ben", "carl", "dora", "emil", "fay", "gus", "hana"]
COLORS = ["red", "blue", "green", "black", "white", "pink", "gold", "grey"]

ENCODER = {"kind": "encoder", "seq_len": 48, "num_layers": 2, "num_heads": 2, "hidden_dim": 64,
           "intermediate_dim": 128, "dropout": 0.0, "max_question_tokens": 12, "doc_stride": 12, "max_answer_tokens": 8}
TRAIN = {"batch_size": 16, "learning_rate": 3.0e-3, "warmup_steps": 2, "save_every_steps": 10, "log_every_steps": 5,
         "num_samples": 1}


def _write_squad(path, articles=40, seed=0):
    """Articles of two paragraphs like "Anna likes red. Ben likes gold. ...",
    one question per sentence. Paragraphs come from a pool of eight, so the
    held-out articles ask what training taught (a model of seconds can
    learn that; reading unseen paragraphs takes far longer)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(8):
        names = rng.sample(NAMES, 3)
        pool.append([(n.capitalize(), rng.choice(COLORS)) for n in names])
    data = []
    for a in range(articles):
        paragraphs = []
        for p, facts in enumerate(rng.sample(pool, 2)):
            context = " ".join(f"{n} likes {c}." for n, c in facts)
            qas = [{"id": f"{a}-{p}-{i}", "question": f"What does {n} like?",
                    "answers": [{"text": c, "answer_start": context.index(f"{n} likes ") + len(f"{n} likes ")}]}
                   for i, (n, c) in enumerate(facts)]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def _config(path, name, head, data, train, model=None):
    import yaml

    path.write_text(yaml.safe_dump({
        "name": name,
        "data": {"format": "squad", "val_fraction": 0.2, **data},
        "tokenizer": {"kind": "wordpiece", "vocab_size": 48, "lowercase": True},
        "model": {**ENCODER, "head": head, **(model or {})},
        "train": {**TRAIN, **train},
    }))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa")
    squad = _write_squad(tmp / "toy.json")
    rng = random.Random(1)  # pretraining text: any text source works
    (tmp / "text.txt").write_text("".join(f"{rng.choice(NAMES).capitalize()} likes {rng.choice(COLORS)}.\n"
                                          for _ in range(600)))
    mlm = _config(tmp / "mlm.yaml", "toy-mlm", "masked_lm",
                  {"source": str(tmp / "text.txt"), "format": "text", "document": "line", "split_group": 4},
                  {"epochs": 2, "steps_per_epoch": 10})
    pretrained = cli_in_process("train", "--quiet", "--config", mlm, "--run-dir", tmp / "mlm")
    assert pretrained.code == 0, pretrained.err[-3000:]
    qa = _config(tmp / "qa.yaml", "toy-qa", "span", {"source": str(squad)},
                 {"epochs": 18, "init_from": str(tmp / "mlm")}, {"question_match": True})
    tuned = cli_in_process("train", "--quiet", "--config", qa, "--run-dir", tmp / "qa")
    assert tuned.code == 0, tuned.err[-3000:]
    return tmp, squad, pretrained.out, tuned.out


def _val_losses(stdout):
    return [float(v) for v in re.findall(r"Validation Loss: ([0-9.]+)", stdout)]


@pytest.mark.slow
def test_pretraining_then_fine_tuning_from_it(runs):
    tmp, _, pretrained, tuned = runs
    assert "masked-LM pretraining (15% of tokens)" in pretrained and len(_val_losses(pretrained)) == 2
    # Every encoder weight came from the pretraining run (the segment table
    # grows a row for question_match); only the span head is new.
    assert (f"Initialised 38 of 39 encoder weights from {tmp / 'mlm'}; extended with rows copied from the last one: "
            "segment_embedding/embeddings;") in tuned
    assert "trained from scratch: span_model/span_head/kernel, span_model/span_head/bias" in tuned
    assert (tmp / "qa/tokenizer/vocab.txt").read_text() == (tmp / "mlm/tokenizer/vocab.txt").read_text()
    losses = _val_losses(tuned)
    assert len(losses) == 18 and losses[-1] < losses[0] * 0.3
    assert re.search(r"What does \w+ like\? -> '\w+' \(gold '\w+'\)", tuned)  # the training samples
    # The counts of the file read, not of the training split beside them.
    counts = re.search(r"([\d,]+) training / ([\d,]+) validation questions \(the file: ([\d,]+) questions", tuned)
    assert int(counts.group(1)) + int(counts.group(2)) == int(counts.group(3))


def _logged_tags(logdir) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])


@pytest.mark.slow
def test_each_run_reports_the_metrics_that_mean_something_for_it(runs):
    """Span QA: loss and start/end accuracy, no perplexity (of two positions
    in a window it means nothing); masked LM: the masked tokens' loss and
    accuracy. Printed after each epoch and written for TensorBoard."""
    tmp, _, pretrained, tuned = runs
    assert "Perplexity" not in tuned and "Perplexity" not in pretrained
    qa = re.findall(r"Epoch \d+/18, Validation Loss: [0-9.]+, Validation Start Accuracy: ([0-9.]+), "
                    r"Validation End Accuracy: ([0-9.]+)\n", tuned)
    assert len(qa) == 18 and all(0 <= float(v) <= 1 for pair in qa for v in pair)
    assert len(re.findall(r"Epoch \d+/2, Validation Loss: [0-9.]+, Validation Accuracy: [0-9.]+\n", pretrained)) == 2
    assert {"epoch_start_accuracy", "epoch_end_accuracy"} <= _logged_tags(tmp / "qa/logs/validation")
    assert not any("perplexity" in tag for tag in _logged_tags(tmp / "qa/logs/train"))
    assert "epoch_accuracy" in _logged_tags(tmp / "mlm/logs/validation")


@pytest.mark.slow
def test_loading_a_checkpoint_for_inference_is_quiet(runs):
    """A checkpoint also holds optimizer state; loading it for inference or
    as `init_from` must not warn about skipping it (train() is also called
    from Python, where the CLI's warning filter does not apply)."""
    import warnings

    from kerasllm import config as config_lib
    from kerasllm.tasks import build_model as encoder_model
    from kerasllm.run_dir import RunDir

    run = RunDir(runs[0] / "mlm")
    config = config_lib.load(run.config)
    model = encoder_model(config.model, len((run.tokenizer / "vocab.txt").read_text().splitlines()))
    assert run.inference_weights().name == "best.weights.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.load_inference_weights(model)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]


@pytest.mark.slow
def test_evaluate_scores_held_out_articles_with_the_official_metric(cli, runs):
    tmp, squad, _, _ = runs
    result = cli("evaluate", "--run", str(tmp / "qa"), "--split", "validation")
    assert result.code == 0, result.err[-3000:]
    scores = json.loads(result.out)
    assert scores["run"] == str(tmp / "qa") and scores["split"] == "validation"
    predictions = json.loads((tmp / "qa/predictions-validation.json").read_text())
    gold = {q["id"]: [a["text"] for a in q["answers"]] for art in json.loads(squad.read_text())["data"]
            for p in art["paragraphs"] for q in p["qas"] if q["id"] in predictions}
    assert scores["questions"] == len(predictions) == len(gold) > 10
    again = squad_scores(predictions, gold)
    assert scores["exact_match"] == round(again["exact_match"], 2) and scores["f1"] == round(again["f1"], 2)
    # Far better than picking one of the paragraph's three colours.
    assert scores["exact_match"] > 80, scores


def _a_paragraph(squad):
    """A training paragraph, its questions and their answers."""
    paragraph = json.loads(squad.read_text())["data"][0]["paragraphs"][0]
    return (paragraph["context"], [q["question"] for q in paragraph["qas"]],
            [q["answers"][0]["text"] for q in paragraph["qas"]])


def test_answering_batches_passages_of_similar_length_in_the_callers_order():
    import tensorflow as tf

    from kerasllm.inference.qa import answer_questions

    batches = []

    def answer(questions, contexts):  # stands in for answer_fn: echoes its inputs
        qs, cs = ([t.decode() for t in x.numpy()] for x in (questions, contexts))
        batches.append([len(c) for c in cs])
        return {"answer": tf.constant([f"{q}|{c}" for q, c in zip(qs, cs)]), "score": tf.zeros(len(qs)),
                "start": tf.zeros(len(qs), tf.int64), "end": tf.constant([len(c) for c in cs], tf.int64)}

    rng = random.Random(0)
    contexts = ["x" * rng.randrange(1, 500) for _ in range(70)]
    questions = [f"q{i}" for i in range(70)]
    out = answer_questions(answer, questions, contexts, batch_size=8)
    assert [o["answer"] for o in out] == [f"{q}|{c}" for q, c in zip(questions, contexts)]
    assert [o["end"] for o in out] == [len(c) for c in contexts]
    lengths = [n for batch in batches for n in batch]
    assert len(batches) == 9 and lengths == sorted(lengths)


@pytest.mark.slow
def test_qa_command_answers_with_offsets(cli, runs):
    tmp, squad, _, _ = runs
    context, questions, gold = _a_paragraph(squad)
    passage = tmp / "passage.txt"
    passage.write_text("\ufeff" + context)  # a byte-order mark is not part of the passage: offsets count after it
    result = cli("qa", "--run", str(tmp / "qa"), *questions, "--context-file", str(passage))
    assert result.code == 0, result.err[-3000:]
    answers = [json.loads(line) for line in result.out.splitlines()]
    assert [a["answer"] for a in answers] == gold
    for a in answers:
        assert context[a["start"]:a["end"]] == a["answer"] and isinstance(a["score"], float)


@pytest.mark.parametrize("args, message", [
    (["What?"], "give the passage with --context TEXT or --input FILE"),
    (["What?", "--context", "a", "--context-file", "x"], "give the passage with --context TEXT or --input FILE"),
    (["  ", "--context", "Anna likes red."], "question 1 is empty"),
    (["What?", "--context", " "], "the context of question 1 is empty"),
    (["What?", "--context-file", "NONUTF8"], "not UTF-8 text"),
    (["What?", "Who is caf\udce9?", "--context", "Anna likes red."], "QUESTION 2: not valid UTF-8 text"),
    (["What?", "--context", "caf\udce9"], "--context: not valid UTF-8 text"),
])
@pytest.mark.slow
def test_qa_mistakes_are_one_line(cli, runs, args, message):
    tmp, _, _, _ = runs
    (tmp / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    args = [str(tmp / "latin1.txt") if a == "NONUTF8" else a for a in args]
    result = cli("qa", "--run", str(tmp / "qa"), *args)
    assert result.code == 2 and message in result.err, result.err[-2000:]
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_passage_without_tokens_has_no_answer(cli, runs):
    tmp, _, _, _ = runs
    result = cli("qa", "--run", str(tmp / "qa"), "What?", "--context", "\u200b")  # not blank, yet no tokens
    assert result.code == 0, result.err[-2000:]
    assert json.loads(result.out) == {"answer": "", "score": None, "start": 0, "end": 0}


@pytest.mark.slow
def test_config_mistakes_are_one_line(cli, runs, trained, tmp_path):
    _, squad, _, _ = runs
    cases = [
        ({"init_from": str(tmp_path / "nowhere")}, {}, "train.init_from:"),
        ({"init_from": str(trained[0])}, {}, "trained a gpt model, not an encoder; name a run of model.kind encoder"),
        ({}, {"data.source": str(tmp_path / "empty.json")}, "gives 0 training and 0 validation questions"),
        ({}, {"tokenizer.kind": "char"}, "model.kind encoder needs tokenizer.kind: wordpiece"),
        ({}, {"model.max_question_tokens": 46}, "model.max_question_tokens (46) leaves no room"),
        ({}, {"model.max_answer_tokens": 45}, "model.max_answer_tokens (45) is longer than any window's context"),
        ({}, {"model.head": "masked_lm", "model.question_match": "true"}, "applies to model.head span only"),
        ({}, {"data.cleaning.lowercase": "true"}, "data.cleaning: question answering reads SQuAD text as it is"),
    ]
    (tmp_path / "empty.json").write_text('{"version": "1.1", "data": []}')
    for train, overrides, message in cases:
        config = _config(tmp_path / "c.yaml", "bad", "span", {"source": str(squad)}, {"epochs": 1, **train})
        sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
        result = cli("train", "--config", str(config), "--run-dir", str(tmp_path / "run"), *sets)
        assert result.code == 2 and message in result.err, result.err[-2000:]
        assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_encoder_runs_refuse_generate_and_score_and_keep_their_start(cli, runs, tmp_path):
    tmp, _, _, _ = runs
    (tmp_path / "lines.txt").write_text("Anna likes red.\n")
    for command, run, message in [
        (["generate", "x"], "qa", "a question-answering run; use `kerasllm qa --run"),
        (["score", str(tmp_path / "lines.txt")], "mlm", "a masked-LM pretraining run: an encoder, which neither"),
        (["translate", "Anna likes red."], "qa", "a question-answering or masked-LM encoder run; `kerasllm qa`"),
    ]:
        result = cli(command[0], "--run", str(tmp / run), *command[1:])
        assert result.code == 2 and message in result.err, result.err[-2000:]
        assert len(result.err.strip().splitlines()) == 1
    # Where a run started from is part of it: training it again from
    # scratch needs a run directory of its own. (On a copy, so that a
    # regression would not train over the shared run.)
    import shutil

    shutil.copytree(tmp / "qa", tmp_path / "qa")
    scratch = cli("train", "--config", str(tmp / "qa.yaml"), "--run-dir", str(tmp_path / "qa"), "--set",
                      "train.init_from=")
    assert scratch.code == 2 and "belongs to a different config (train.init_from (" in scratch.err


@pytest.mark.slow
def test_evaluating_pretraining_names_the_run_and_split(cli, runs):
    run = runs[0] / "mlm"
    held_out = cli("evaluate", "--run", run)
    assert held_out.code == 0, held_out.err[-3000:]
    scores = json.loads(held_out.out)
    assert scores["run"] == str(run) and scores["split"] == "validation" and scores["masked_loss"] > 0
    assert "note" not in scores
    wrong = cli("evaluate", "--run", run, "--split", "dev")
    assert wrong.code == 2 and "masked-LM pretraining runs are scored on validation, train" in wrong.err


@pytest.mark.slow
def test_evaluate_on_dev_reports_what_it_read_and_refuses_no_questions(cli, runs, tmp_path):
    import shutil

    import yaml

    tmp, _, _, _ = runs
    run = tmp_path / "qa"
    shutil.copytree(tmp / "qa", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["source"] = "squad-v1.1"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    data = tmp_path / "data"
    data.mkdir()
    (data / "squad-v1.1-dev.json").write_text('{"version": "1.1", "data": []}')
    result = cli("evaluate", "--run", str(run), "--data-dir", str(data))
    assert result.code == 2 and "--split dev: no questions to score in it (0 questions" in result.err
    assert not (run / "predictions-dev.json").exists()
    # The dev file's reading is reported with the scores.
    paragraph = {"context": "Anna likes red.", "qas": [
        {"id": "a", "question": "What does anna like?", "answers": [{"text": "red", "answer_start": 11}]},
        {"id": "b", "question": "What does ben like?", "answers": [{"text": " ", "answer_start": 0}]}]}
    (data / "squad-v1.1-dev.json").write_text(json.dumps({"version": "1.1", "data": [{"paragraphs": [paragraph]}]}))
    result = cli("evaluate", "--run", str(run), "--data-dir", str(data))
    assert result.code == 0, result.err[-2000:]
    scores = json.loads(result.out)
    assert scores["questions"] == 1
    assert scores["read"] == "1 questions from 1 paragraphs (2 skipped: 1 empty answer, 1 question with no valid answer)"


def test_blank_means_the_same_to_the_server_and_to_kerasllm_qa():
    import tensorflow as tf

    from kerasllm.export.question_answering import is_blank

    chars = [chr(c) for c in range(0x3001) if not 0xD800 <= c <= 0xDFFF] + ["\u200b", "\ufeff", "\U0001f600"]
    assert is_blank(tf.constant(chars)).numpy().tolist() == [not c.strip() for c in chars]
    assert is_blank(tf.constant(["", " \u3000\n\xa0", " a "])).numpy().tolist() == [True, True, False]


@pytest.fixture(scope="module")
def exported(runs):
    from kerasllm.export.runs import export_run

    tmp = runs[0]
    return export_run(str(tmp / "qa"), "toy-qa", str(tmp / "models"))


@pytest.mark.slow
def test_export_layout_ops_and_warmup(exported, runs):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    from kerasllm.export.saved_model import allowed_ops, graph_ops

    path = exported["path"]
    meta = check_provenance(path, runs[0] / "qa")
    assert meta["kind"] == "question_answering" and meta["signatures"] == ["serving_default"]
    ops = graph_ops(path)
    assert {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} <= ops
    assert ops <= allowed_ops() and not any(op.startswith("Xla") for op in ops), sorted(ops - allowed_ops())
    saved = saved_model_pb2.SavedModel.FromString(open(f"{path}/saved_model.pb", "rb").read())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    assert sorted(signature.inputs) == ["context", "question"]
    assert sorted(signature.outputs) == ["answer", "end", "score", "start"]
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"]
    requests = 0
    for record in tf.data.TFRecordDataset(f"{path}/assets.extra/tf_serving_warmup_requests"):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        assert request.model_spec.name == "toy-qa"
        out = served(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        assert out["answer"].shape == tf.make_ndarray(request.inputs["question"]).shape
        requests += 1
    assert requests == 2


@pytest.mark.slow
def test_exported_answers_equal_the_run_and_load_without_keras(cli, runs, exported):
    tmp, squad = runs[0], runs[1]
    CONTEXT, QUESTIONS, gold = _a_paragraph(squad)
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.signatures['serving_default']\n"
        "q = json.loads(sys.argv[2]); out = f(question=tf.constant(q), context=tf.constant([sys.argv[3]] * len(q)))\n"
        "print(json.dumps({'answers': [a.decode() for a in out['answer'].numpy()],\n"
        "                  'starts': out['start'].numpy().tolist(), 'ends': out['end'].numpy().tolist(),\n"
        "                  'modules': sorted(m for m in ('keras_hub', 'keras_nlp', 'kerasllm') if m in sys.modules)}))\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script, exported["path"], json.dumps(QUESTIONS), CONTEXT],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    # (TensorFlow's loader may import keras, which installing tensorflow brings.)
    assert served["modules"] == [] and served["answers"] == gold
    via_run = cli("qa", "--run", str(tmp / "qa"), *QUESTIONS, "--context", CONTEXT)
    assert via_run.code == 0, via_run.err[-2000:]
    in_process = [json.loads(line) for line in via_run.out.splitlines()]
    assert served["answers"] == [a["answer"] for a in in_process]
    assert served["starts"] == [a["start"] for a in in_process] and served["ends"] == [a["end"] for a in in_process]
    via_model = cli("qa", "--model", str(tmp / "models/toy-qa"), *QUESTIONS, "--context", CONTEXT)
    assert via_model.code == 0 and [json.loads(line)["answer"] for line in via_model.out.splitlines()] == \
        served["answers"]


@pytest.mark.slow
def test_bad_requests_fail_with_invalid_argument(cli, runs, exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(exported["path"])
    served = loaded.signatures["serving_default"]
    for question, context, message in [
        (tf.constant([], tf.string), tf.constant([], tf.string), "question: empty batch"),
        (tf.constant(["Who?", "What?"]), tf.constant(["A text."]), "send one context per question"),
        (tf.constant(["  "]), tf.constant(["A text."]), "question: every question must be non-blank text"),
        (tf.constant(["Who?"]), tf.constant([""]), "context: every context must be non-blank text"),
        (tf.constant(["Who?"]), tf.constant([b"caf\xe9"]), "Invalid"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            served(question=question, context=context)
    tmp = runs[0]
    wrong = cli("generate", "--model", str(tmp / "models/toy-qa"), "ab")
    assert wrong.code == 2 and "use `kerasllm qa`" in wrong.err
    pretraining = cli("export", "--run", str(tmp / "mlm"), "--base-dir", str(tmp / "models"))
    assert pretraining.code == 2 and "a masked-LM pretraining run has nothing to serve" in pretraining.err
