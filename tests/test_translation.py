"""Translation end to end through the CLI: train a tiny encoder-decoder on a
toy mapping, translate, evaluate (BLEU/chrF), export for TF Serving and
translate with the export, and the errors around it."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, cli_in_process
from export_meta import check_provenance

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_translation")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
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
    result = cli_in_process("train", "--config", tmp / "toy.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.code == 0, result.err
    return tmp, result.out


@pytest.mark.slow
def test_train_translate_and_evaluate_a_toy_mapping(toy_run, cli):
    tmp, trained = toy_run
    run_dir = tmp / "run"
    assert "Model: seq2seq" in trained and "skipped 1 malformed lines, the first at" in trained
    padding = float(re.search(r"batches per epoch \((\d+)% padding\)", trained).group(1))
    assert padding < 15  # length buckets: sentences of 7-11 characters
    assert "Epoch 3/3, Validation Loss:" in trained and " -> " in trained  # samples: source -> translation
    # The target's token-level perplexity and accuracy mean something here (BLEU and chrF come from evaluate).
    assert re.search(r"Epoch 3/3, Validation Loss: [0-9.]+, Validation Perplexity: [0-9.]+, "
                     r"Validation Accuracy: [0-9.]+\n", trained)
    out = cli("translate", "--run", run_dir, "ab c de f", "fe d cb a", "--beams", "2")
    assert out.code == 0, out.err
    assert out.out.splitlines() == ["AB C DE F", "FE D CB A"]
    report = cli("evaluate", "--run", run_dir)
    assert report.code == 0, report.err
    scores = json.loads(report.out)
    assert scores["run"] == str(run_dir) and scores["split"] == "test" and 100 < scores["pairs"] < 220
    assert scores["bleu"] > 50 and scores["chrf"] > 60 and scores["accuracy"] > 0.9, scores
    hyps = (run_dir / "eval/test.hyp.txt").read_text().splitlines()
    refs = (run_dir / "eval/test.ref.txt").read_text().splitlines()
    assert len(hyps) == len(refs) == scores["pairs"]
    # The same run resumes as a finished run, and wrong uses are one-line errors.
    again = cli("train", "--config", tmp / "toy.yaml", "--run-dir", run_dir, "--quiet")
    assert again.code == 0 and "training already complete" in again.out
    assert "a translation run" in cli("generate", "--run", run_dir, "x").err
    too_long = cli("translate", "--run", run_dir, "ab c", "--max-length", "99")
    assert too_long.code == 2 and "model.seq_len=12" in too_long.err
    # --max-new-tokens counts new tokens; the old --max-length also counted the start token.
    short = cli("translate", "--run", run_dir, "ab c de f", "--max-new-tokens", "2")
    assert short.code == 0 and short.out == cli("translate", "--run", run_dir, "ab c de f", "--max-length", "3").out
    assert len(short.out.rstrip("\n")) <= 2 < len(cli("translate", "--run", run_dir, "ab c de f").out.rstrip("\n"))
    # Source characters the char vocabulary lacks are named, once.
    unknown = cli("translate", "--run", run_dir, "ab ç", "ab ç z")
    assert unknown.code == 0
    assert unknown.err == "warning: 2 characters not in the model's vocabulary, read as unknown (<unk>): 'ç' 'z'\n"


@pytest.mark.slow
def test_strict_data_fails_on_the_first_malformed_line(toy_run, cli):
    tmp, _ = toy_run
    result = cli("train", "--config", tmp / "toy.yaml", "--set", "data.strict=true", "--run-dir", tmp / "strict", "--quiet")
    assert result.code == 2
    assert f"{tmp / 'toy.tsv'}:1501: 1 columns, need 2" in result.err
    assert not (tmp / "strict").exists()  # no half-made run directory


SOURCES = ["ab c de f", "fe d cb a", "", "a b c d e f a b c d e f"]  # empty, and longer than seq_len


@pytest.fixture(scope="module")
def exported_translator(toy_run):
    from kerasllm.export.runs import export_run

    tmp, _ = toy_run
    return export_run(str(tmp / "run"), "toy", str(tmp / "models"), beams=3, length_penalty=1.0)


@pytest.mark.slow
def test_export_layout_ops_and_warmup(exported_translator, toy_run):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from kerasllm.export.saved_model import allowed_ops, graph_ops

    path = exported_translator["path"]
    assert exported_translator["version"] == 1 and path.endswith("toy/1")
    meta = check_provenance(path, toy_run[0] / "run")
    assert meta["kind"] == "translator" and meta["signatures"] == ["serving_default"]
    assert meta["beams"] == 3 and meta["length_penalty"] == 1.0 and meta["max_length"] == 12
    ops = graph_ops(path)
    assert "While" in ops and "TensorStridedSliceUpdate" in ops
    assert ops <= allowed_ops(), sorted(ops - allowed_ops())
    # TF Serving fills inputs a request leaves out from the SignatureDef's defaults.
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString(open(f"{path}/saved_model.pb", "rb").read())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    assert sorted(signature.inputs) == ["beams", "length_penalty", "max_length", "sources"]
    assert sorted(signature.defaults) == ["beams", "length_penalty", "max_length"]
    assert list(signature.outputs) == ["translations"]
    loaded = tf.saved_model.load(path)
    served = loaded.translate  # the signature's function, with its defaults
    requests = 0
    for record in tf.data.TFRecordDataset(f"{path}/assets.extra/tf_serving_warmup_requests"):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        assert request.model_spec.name == "toy" and request.model_spec.signature_name == "serving_default"
        out = served(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        assert out["translations"].shape == tf.make_ndarray(request.inputs["sources"]).shape
        requests += 1
    assert requests == 3


@pytest.mark.slow
def test_exported_translations_equal_in_process_decoding(toy_run, exported_translator, cli):
    tmp, _ = toy_run
    path = exported_translator["path"]
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.translate\n"
        "s = tf.constant(json.loads(sys.argv[2]))\n"
        "out = {'default': f(sources=s), 'greedy': f(sources=s, beams=tf.constant(1)),\n"
        "       'beam4': f(sources=s, beams=tf.constant(4), length_penalty=tf.constant(0.6))}\n"
        "print(json.dumps({k: [t.decode() for t in v['translations'].numpy()] for k, v in out.items()}\n"
        "                 | {'modules': sorted(m for m in ('keras_hub', 'kerasllm') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, path, json.dumps(SOURCES)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["modules"] == []  # loads with tensorflow + tensorflow_text only
    assert served["greedy"][:2] == ["AB C DE F", "FE D CB A"]

    def in_process(*args):
        result = cli("translate", "--run", tmp / "run", *SOURCES, *args)
        assert result.code == 0, result.err
        return result.out.splitlines()

    assert served["greedy"] == in_process()
    assert served["beam4"] == in_process("--beams", "4", "--length-penalty", "0.6")
    assert served["default"] == in_process("--beams", "3", "--length-penalty", "1.0")  # the export's defaults
    via_cli = cli("translate", "--model", tmp / "models/toy", *SOURCES, "--beams", "4")
    assert via_cli.code == 0 and via_cli.out.splitlines() == served["beam4"]


@pytest.mark.slow
def test_bad_requests_and_wrong_models(toy_run, exported_translator, cli):
    import tensorflow as tf

    tmp, _ = toy_run
    loaded = tf.saved_model.load(exported_translator["path"])
    served = loaded.translate
    for inputs, message in [
        ({"sources": tf.constant([], tf.string)}, "sources: empty batch"),
        ({"beams": tf.constant(0)}, "beams must be in [1, 16]"),
        ({"beams": tf.constant(17)}, "beams must be in [1, 16]"),
        ({"length_penalty": tf.constant(-1.0)}, "length_penalty must be >= 0"),
        ({"max_length": tf.constant(13)}, "max_length must be in [2, 12]"),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
            served(**{"sources": tf.constant(["ab"]), **inputs})
    wrong = cli("generate", "--model", tmp / "models/toy", "ab")
    assert wrong.code == 2 and "a translator model, not a language model; use `kerasllm translate`" in wrong.err
    both = cli("translate", "--model", tmp / "models/toy", "--run", tmp / "run", "ab")
    assert both.code == 2 and "exactly one of --model" in both.err


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_equals_one_uninterrupted_run(toy_run, cli):
    """A training process killed with SIGKILL mid-epoch resumes with its
    weights, optimizer state and place in the shuffled data: it ends with
    the weights of a run that was never interrupted."""
    import signal
    import time

    from conftest import ROOT, cli_in_process
    from kerasllm.loaded_run import load_run

    tmp, _ = toy_run
    args = ["train", "--config", str(tmp / "toy.yaml"), "--set", "train.max_steps=60",
            "--set", "train.save_every_steps=10", "--quiet"]
    whole = cli(*args, "--run-dir", tmp / "whole")
    assert whole.code == 0 and "Done: reached 60 steps" in whole.out, whole.err
    parts = tmp / "parts"
    latest = parts / "checkpoints" / "latest"
    proc = subprocess.Popen([sys.executable, "-c", "from kerasllm.cli.main import main; main()", *args,
                             "--run-dir", str(parts)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (latest.is_file() and latest.read_text().strip() >= "step-000000020") and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = int(latest.read_text().strip().split("-")[1])
    assert 20 <= saved < 60
    rest = cli(*args, "--run-dir", parts)
    assert rest.code == 0, rest.err
    assert f"Resuming {parts} at step {saved} (epoch 1/1)" in rest.out and "Done: reached 60 steps" in rest.out
    a, b = load_run(str(tmp / "whole")).model, load_run(str(parts)).model
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=x.path)


@pytest.mark.slow
def test_a_translation_run_continues_on_new_pairs_from_another_runs_weights(toy_run, cli):
    """`train.init_from` naming a translation run: its tokenizer and weights
    start the new run, which reads other pairs (one step at a learning rate
    of 1e-9 leaves the model as it was: the same translations)."""
    tmp, _ = toy_run
    config = yaml.safe_load((tmp / "toy.yaml").read_text())
    rng = np.random.default_rng(1)  # other sentences of the same toy language
    words = [" ".join("".join(rng.choice(list("abcdef"), rng.integers(1, 3))) for _ in range(3)) for _ in range(400)]
    (tmp / "more.tsv").write_text("".join(f"{w}\t{w.upper()}\tCC-BY\n" for w in words))
    config["data"]["source"] = str(tmp / "more.tsv")
    config["train"].update(init_from=str(tmp / "run"), max_steps=1, learning_rate=1e-9, warmup_steps=0, num_samples=0)
    (tmp / "more.yaml").write_text(yaml.safe_dump(config))
    result = cli("train", "--config", tmp / "more.yaml", "--run-dir", tmp / "more")
    assert result.code == 0, result.err
    assert "Initialised all" in result.out and f"weights from {tmp / 'run'}" in result.out
    sources = ["ab cd ef a", "f e d c"]
    first, more = (cli("translate", "--run", tmp / run, *sources) for run in ("run", "more"))
    assert first.code == more.code == 0 and first.out == more.out
