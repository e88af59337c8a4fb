"""Pretrained decoder checkpoints (issue 36): GPT-2 and Llama 3 Hugging Face
directories and keras-hub presets, written tiny by tests/tiny_checkpoints.py,
used as they are (`--checkpoint`), fine-tuned (`train.init_from`), resumed
after kill -9, exported and served in a process without kerasllm; and
each mistake answered in one line with exit code 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tiny_checkpoints import SENTENCE, write_corrupt_copy, write_gpt2, write_keras_hub_preset, write_llama, write_roberta

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("pretrained")
LINES = ["The keeper's lamp was seen from the hills.", "A ship came into the harbour at night."]
FAMILY_WRITERS = {"gpt2": write_gpt2, "llama3": write_llama}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One Hugging Face directory per decoder family (kind -> path)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: write(root / kind) for kind, write in FAMILY_WRITERS.items()}


def _finetune_config(tmp_path: Path, checkpoint: Path, **changes) -> Path:
    values = yaml.safe_load((ROOT / "configs/finetune-gpt2.yaml").read_text())
    values["train"].update(init_from=str(checkpoint), max_steps=30, eval_every_steps=10, validation_steps=4,
                           save_every_steps=10, log_every_steps=5, warmup_steps=2, learning_rate=2e-3,
                           sample_tokens=8, num_samples=1)
    values["model"]["seq_len"] = 32
    values["data"]["split_group"] = 8
    for key, value in changes.items():
        section, name = key.split(".")
        values[section][name] = value
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


# -- what a checkpoint is, without TensorFlow ----------------------------------------------------------------------


def test_inspect_reads_the_family_and_sizes_of_each_checkpoint(checkpoints):
    from kerasllm import pretrained

    gpt2 = pretrained.inspect(str(checkpoints["gpt2"]))
    assert (gpt2.format, gpt2.family.kind, gpt2.max_positions) == ("huggingface", "gpt2", 64)
    assert gpt2.sizes == {"num_layers": 2, "num_heads": 4, "hidden_dim": 32, "intermediate_dim": 128,
                          "vocab_size": json.loads((checkpoints["gpt2"] / "config.json").read_text())["vocab_size"]}
    llama = pretrained.inspect(str(checkpoints["llama3"]))
    assert (llama.family.kind, llama.sizes["num_heads"], llama.sizes["intermediate_dim"]) == ("llama3", 4, 64)


def test_unsupported_and_damaged_checkpoints_are_one_line(tmp_path, checkpoints, cli):
    roberta = write_roberta(tmp_path / "roberta")
    truncated = write_corrupt_copy(checkpoints["gpt2"], tmp_path / "truncated", how="truncate")
    garbage = write_corrupt_copy(checkpoints["gpt2"], tmp_path / "garbage", how="garbage_header")
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES))
    cases = {
        roberta: "is a 'roberta' checkpoint, a family kerasllm does not run; supported: gpt2 (GPT-2), llama3 (Llama 3), "
                 "bert (BERT), distilbert (DistilBERT), bart (BART)",
        truncated: "model.safetensors is truncated",
        garbage: "model.safetensors is corrupt (its header is not JSON); download it again",
        tmp_path / "missing": "is not a directory; give a Hugging Face model directory or a keras-hub preset",
        tmp_path: "has no config.json",
    }
    for path, message in cases.items():
        result = cli("score", "--checkpoint", path, lines)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, (path, result.err)
        assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("changes, message", [
    ({"model.seq_len": 65}, "model.seq_len: 65 is longer than the 64 positions of the checkpoint"),
    ({"tokenizer.vocab_size": 1000}, "tokenizer.vocab_size: 1000 does not match the checkpoint's vocabulary of"),
    ({"model.num_layers": 6}, "model.num_layers: 6 contradicts the checkpoint's 2"),
    ({"model.kind": "llama3"}, "model.kind: llama3, but train.init_from"),
    ({"tokenizer.kind": "char"}, "set tokenizer.kind: pretrained (got char)"),
    ({"train.init_from": ""}, "train.init_from: model.kind gpt2 starts from a GPT-2 checkpoint"),
])
def test_a_config_that_contradicts_its_checkpoint_is_refused(tmp_path, checkpoints, cli, changes, message):
    config = _finetune_config(tmp_path, checkpoints["gpt2"], **changes)
    result = cli("train", "--config", config, "--run-dir", tmp_path / "run")
    assert result.code == 2 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_tokenizer_files_of_another_checkpoint_are_refused(tmp_path, checkpoints, cli):
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(checkpoints["gpt2"], mixed)
    config = json.loads((mixed / "config.json").read_text())
    config["vocab_size"] = 300  # fewer embedding rows than vocab.json has tokens
    (mixed / "config.json").write_text(json.dumps(config))
    result = cli("train", "--config", _finetune_config(tmp_path, mixed), "--run-dir", tmp_path / "run")
    assert result.code == 2 and "tokenizer files hold" in result.err and "300 embedding rows" in result.err


# -- the checkpoint as its framework reads it ----------------------------------------------------------------------


def _keras_hub_log_probs(path, token_ids):
    """Per-text log-probabilities under keras-hub's own CausalLM of `path`."""
    import keras_hub

    model = keras_hub.models.CausalLM.from_preset(str(path), preprocessor=None)
    out = []
    for ids in token_ids:
        ids = np.array([ids], "int32")
        logits = model({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}).numpy().astype("float64")[0]
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
        out.append(float(sum(logp[i, t] for i, t in enumerate(ids[0, 1:]))))
    return out


@pytest.mark.parametrize("kind", ["gpt2", "llama3"])
def test_checkpoint_logits_tokens_and_scores_equal_keras_hubs(checkpoints, tmp_path, cli, kind):
    """`--checkpoint` reads the weights, tokenizer and start token as
    keras-hub does: logits equal keras-hub's model's, ids equal the
    checkpoint's own tokenizer.json (Hugging Face tokenizers) in eager code
    and in tf.data, and `score` equals keras-hub's log-probabilities; a
    keras-hub preset of the same checkpoint scores the same."""
    import keras_hub
    import tensorflow as tf
    from tokenizers import Tokenizer as HFTokenizer

    from kerasllm.loaded_run import load_checkpoint

    path = checkpoints[kind]
    lm = load_checkpoint(str(path))
    ids = [lm.tokenizer.start_id] + lm.tokenizer.tokenize([SENTENCE]).to_list()[0]
    reference = keras_hub.models.CausalLM.from_preset(str(path), preprocessor=None)
    batch = np.array([ids], "int32")
    np.testing.assert_allclose(lm.model(batch).numpy(),
                               reference({"token_ids": batch, "padding_mask": np.ones_like(batch, bool)}).numpy(),
                               atol=1e-6)
    hf = HFTokenizer.from_file(str(path / "tokenizer.json"))
    expected = [hf.encode(t, add_special_tokens=False).ids for t in LINES + [SENTENCE]]
    assert lm.tokenizer.tokenize(LINES + [SENTENCE]).to_list() == expected
    in_data = tf.data.Dataset.from_tensor_slices(LINES + [SENTENCE]).batch(3).map(lm.tokenizer.tokenize)
    assert [row for batch in in_data for row in batch.to_list()] == expected
    assert [t.decode() for t in lm.tokenizer.detokenize(tf.ragged.constant(expected)).numpy()] == LINES + [SENTENCE]
    lm.tokenizer.save(tmp_path / "tok")
    from kerasllm.data.tokenizers import load_tokenizer

    assert load_tokenizer(tmp_path / "tok").tokenize(LINES).to_list() == expected[:2]

    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(LINES))
    want = _keras_hub_log_probs(path, [[lm.tokenizer.start_id] + e for e in expected[:2]])
    for source in (path, write_keras_hub_preset(tmp_path / "preset", {"gpt2": "gpt2", "llama3": "llama"}[kind],
                                                source=path)):
        result = cli("score", "--checkpoint", source, lines)
        assert result.code == 0, result.err
        got = [float(row.split("\t")[0]) for row in result.out.splitlines()[1:3]]
        np.testing.assert_allclose(got, want, atol=2e-3)


def test_every_allowed_core_op_has_a_kernel_in_tensorflow_alone():
    """The ops serving_ops.txt lists as core TensorFlow (keras-hub's BPE
    cache tables among them) have CPU kernels in a process that imports
    tensorflow and nothing else (or a DEFAULT-device kernel, as NoOp and
    Assert have): stock TF Serving links those kernels."""
    from kerasllm.export.saved_model import ALLOWED_OPS_FILE

    text = ALLOWED_OPS_FILE.read_text()
    core = [line.strip() for line in text[text.index("# core TensorFlow"):].splitlines()
            if line.strip() and not line.startswith("#")]
    assert {"MutableHashTableV2", "LookupTableFindV2", "LookupTableInsertV2"} <= set(core)
    script = ("import json, sys, tensorflow\n"
              "from tensorflow.python.framework import kernels\n"
              "ops = json.loads(sys.argv[1])\n"
              "missing = [op for op in ops if not any(k.device_type in ('CPU', 'DEFAULT') for k in "
              "kernels.get_registered_kernels_for_op(op).kernel)]\n"
              "print(json.dumps({'missing': missing, 'text': 'tensorflow_text' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(core)], capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"missing": [], "text": False}


# -- fine-tuning, resuming, exporting ------------------------------------------------------------------------------


def _latest_step(run_dir: Path) -> int:
    pointer = run_dir / "checkpoints" / "latest"
    return int(pointer.read_text().strip().split("-")[1]) if pointer.is_file() else 0


def _scores(cli, flag, source, lines) -> float:
    result = cli("score", flag, source, lines)
    assert result.code == 0, result.err
    return float(result.out.strip().splitlines()[-1].split()[3])  # the corpus perplexity


@pytest.mark.slow
def test_finetune_lowers_the_loss_resumes_after_kill_9_and_serves_without_kerasllm(checkpoints, tmp_path, cli):
    """A GPT-2 checkpoint fine-tuned on Tiny Shakespeare: killed with
    SIGKILL after its first checkpoint, it resumes to the planned end; its
    perplexity on Shakespeare falls below the checkpoint's; its export
    holds only allowed ops, loads in a process with only tensorflow and
    tensorflow_text, and decodes greedily as the run does in Python; its
    keras-hub preset (`--format keras-hub`) loads in keras-hub with the
    fine-tuned weights."""
    from kerasllm.export.saved_model import allowed_ops, graph_ops
    from kerasllm.inference.generate import generate
    from kerasllm.loaded_run import load_run

    config, run_dir = _finetune_config(tmp_path, checkpoints["gpt2"]), tmp_path / "run"
    cmd = [sys.executable, "-c", "from kerasllm.cli.main import main; main()", "train", "--config", str(config),
           "--run-dir", str(run_dir), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _latest_step(run_dir) < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _latest_step(run_dir)
    assert 10 <= killed_at < 30
    final = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert f"Resuming {run_dir} at step {killed_at}" in final.stdout and "Done: reached 30 steps" in final.stdout
    assert json.loads((run_dir / "architecture.json").read_text())["max_sequence_length"] == 32

    lines = tmp_path / "shakespeare.txt"
    lines.write_text("\n".join(ln for ln in (ROOT.parent / "shared/data/tinyshakespeare.txt").read_text()
                               .splitlines()[-200:] if ln.strip()))
    before, after = _scores(cli, "--checkpoint", checkpoints["gpt2"], lines), _scores(cli, "--run", run_dir, lines)
    assert after < 0.8 * before, (before, after)

    result = cli("export", "--run", run_dir, "--name", "gpt2", "--base-dir", tmp_path / "models", "--format", "keras-hub")
    assert result.code == 0, result.err
    summary = json.loads(result.out.strip().splitlines()[-1])
    version = summary["path"]
    # The keras-hub preset loads with keras-hub alone and holds the fine-tuned weights and the tokenizer.
    import keras_hub

    preset = keras_hub.models.CausalLM.from_preset(summary["keras_hub_preset"])
    assert type(preset).__name__ == "GPT2CausalLM" and summary["keras_hub_preset"].endswith("models/gpt2/keras-hub")
    tuned = load_run(str(run_dir))
    ids = np.array([[tuned.tokenizer.start_id] + tuned.tokenizer.tokenize(["ROMEO: the king"]).to_list()[0]], "int32")
    np.testing.assert_allclose(preset({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}).numpy(),
                               tuned.model(ids).numpy(), atol=1e-5)
    assert preset.preprocessor.tokenizer.tokenize("ROMEO: the king").tolist() == ids[0, 1:].tolist()
    ops = graph_ops(version)
    assert ops <= allowed_ops() and not [op for op in ops if op.startswith("Xla")], sorted(ops - allowed_ops())
    prompts = ["ROMEO:", "The king"]
    out = subprocess.run([sys.executable, str(ROOT / "tests/serving_client.py"), version, json.dumps(prompts)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    assert served["modules"] in ([], ["keras"]) and served["detokenized"] == prompts and served["threaded_all_equal"]
    lm = load_run(str(run_dir))
    assert served["greedy"] == generate(lm.model, lm.tokenizer, prompts, 12, temperature=0).texts


@pytest.mark.slow
def test_a_llama_checkpoint_exports_as_it_is_and_generates_as_in_python(checkpoints, tmp_path, cli):
    """`export --checkpoint` of a Llama 3 directory: the op audit passes, the
    version loads without kerasllm, and greedy text equals
    `generate --checkpoint`'s (the begin-of-text start token in both)."""
    from kerasllm.export.saved_model import allowed_ops, graph_ops

    result = cli("export", "--checkpoint", checkpoints["llama3"], "--base-dir", tmp_path / "models")
    assert result.code == 0, result.err
    exported = json.loads(result.out.strip().splitlines()[-1])
    assert exported["path"].endswith("models/llama3/1")
    meta = json.loads((Path(exported["path"]) / "assets.extra/kerasllm.json").read_text())
    assert meta["checkpoint"] == str(checkpoints["llama3"]) and meta["model"] == "llama3" and meta["start_id"] != meta["eot_id"]
    ops = graph_ops(exported["path"])
    assert ops <= allowed_ops(), sorted(ops - allowed_ops())
    prompts = ["The keeper", ""]
    out = subprocess.run([sys.executable, str(ROOT / "tests/serving_client.py"), exported["path"], json.dumps(prompts)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    assert served["modules"] in ([], ["keras"]) and served["detokenized"] == prompts
    here = cli("generate", "--checkpoint", checkpoints["llama3"], prompts[0], "--temperature", "0",
               "--max-new-tokens", "12", "--no-stream")
    assert here.code == 0, here.err
    assert here.out.rstrip("\n") == prompts[0] + served["greedy"][0]


def test_a_handle_that_cannot_be_fetched_says_where_to_put_the_files(monkeypatch):
    """`hf://` / `kaggle://` handles are keras-hub's downloads; offline (here:
    keras-hub's fetch raising as it does without a network) one line says
    to download the files elsewhere and give the directory."""
    from keras_hub.src.utils import preset_utils

    from kerasllm import pretrained
    from kerasllm.errors import UserError

    def offline(preset, path):
        raise FileNotFoundError(f"'[Errno -2] Name or service not known' thrown while requesting {preset}/{path}")

    monkeypatch.setattr(preset_utils, "get_file", offline)
    with pytest.raises(UserError, match=r"--checkpoint: could not fetch hf://openai-community/gpt2 "
                                        r"\(FileNotFoundError\); offline, download its files"):
        pretrained.inspect("hf://openai-community/gpt2", "--checkpoint")
