"""Export for TF Serving: layout, op allowlist, warmup file, loading without
kerasllm, serving signatures, scoring, bad requests, and the CLI on top."""

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_export")

PROMPTS = ["ROMEO:", "", "First Citizen:\nWe are"]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from kerasllm.export.runs import export_run

    from kerasllm.models import gpt

    run_dir, _ = trained
    base = tmp_path_factory.mktemp("saved_models")
    # A cache chunk far below prompt + new tokens, so the exported decoding
    # grows its cache several times in the tests that compare it with
    # in-process generation (whole-length cache) and serve it.
    chunk, gpt.CACHE_CHUNK = gpt.CACHE_CHUNK, 4
    try:
        report = export_run(str(run_dir), "tiny", str(base))
    finally:
        gpt.CACHE_CHUNK = chunk
    return run_dir, base, report


@pytest.fixture
def kerasllm_warnings():
    """Messages of the `kerasllm` logger (the CLI may have stopped it propagating to pytest's)."""
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("kerasllm")
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def served(exported):
    return tf.saved_model.load(exported[2]["path"])


@pytest.mark.slow
def test_layout_versions_and_no_leftovers(exported, cli):
    run_dir, base, report = exported
    version = base / "tiny" / "1"
    assert report["path"] == str(version) and report["version"] == 1 and report["size_mb"] > 0
    for name in ("saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/kerasllm.json"):
        assert (version / name).is_file(), name
    meta = json.loads((version / "assets.extra/kerasllm.json").read_text())
    assert meta["context"] == 32 and meta["max_new_tokens"] == 31 and meta["tokenizer"] == "char" and meta["eot_id"] == 1
    again = cli("export", "--run", run_dir, "--name", "tiny", "--base-dir", base)
    assert again.code == 0, again.err
    assert json.loads(again.out)["version"] == 2
    taken = cli("export", "--run", run_dir, "--name", "tiny", "--base-dir", base, "--version", "1")
    assert taken.code == 2 and "already exists" in taken.err
    bad_name = cli("export", "--run", run_dir, "--name", "a/b", "--base-dir", base)
    assert bad_name.code == 2 and "--name" in bad_name.err
    (base / "a-file").write_text("")
    bad_base = cli("export", "--run", run_dir, "--name", "tiny", "--base-dir", base / "a-file" / "models")
    assert bad_base.code == 2 and "cannot write" in bad_base.err and len(bad_base.err.splitlines()) == 1
    assert sorted(p.name for p in (base / "tiny").iterdir()) == ["1", "2"]  # nothing half-written left
    shown = subprocess.run([str(Path(sys.executable).with_name("saved_model_cli")), "show", "--dir", str(version), "--all"],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "generate_ids", "beam_search", "score", "tokenize", "detokenize"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "inputs['max_new_tokens']" in shown.stdout and "outputs['perplexity']" in shown.stdout
    # TF Serving fills inputs a request leaves out from the SignatureDef's
    # defaults; the first warmup requests rely on them.
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((version / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    assert sorted(signature.inputs) == ["max_new_tokens", "prompts", "seed", "temperature", "top_k", "top_p"]
    defaults = {k: tf.make_ndarray(v).item() for k, v in signature.defaults.items()}
    assert defaults == {"max_new_tokens": 16, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": -1}  # 16: half of 32


@pytest.mark.slow
def test_an_export_that_loses_its_version_to_another_says_so(exported, monkeypatch):
    from kerasllm.errors import UserError
    from kerasllm.export import saved_model
    from kerasllm.export.runs import export_run

    run_dir, base, _ = exported
    taken = base / "race" / "1"

    def another_export_finishes_first(staging):
        taken.mkdir(parents=True)
        (taken / "saved_model.pb").write_text("theirs")
        return set()

    monkeypatch.setattr(saved_model, "disallowed_ops", another_export_finishes_first)
    with pytest.raises(UserError, match="appeared while exporting"):
        export_run(str(run_dir), "race", str(base))
    assert [p.name for p in (base / "race").iterdir()] == ["1"] and (taken / "saved_model.pb").read_text() == "theirs"


@pytest.mark.slow
def test_graph_has_only_allowed_ops(exported):
    from kerasllm.export.saved_model import allowed_ops, graph_ops

    ops = graph_ops(exported[2]["path"])
    assert "TensorStridedSliceUpdate" in ops and "While" in ops  # the decode loop is in the graph
    assert ops <= allowed_ops(), sorted(ops - allowed_ops())
    assert not [op for op in ops | allowed_ops() if op.startswith("Xla") or "PyFunc" in op]


def test_keras_slice_update_still_needs_the_workaround():
    """Keras still emits XlaDynamicUpdateSlice; inside no_xla_ops() the same
    update is a core op with the same result."""
    import keras

    from kerasllm.export.xla_free import no_xla_ops

    def update(x, i):
        return keras.ops.slice_update(x, [0, i, 0], tf.ones([2, 1, 3]))

    x, i = tf.zeros([2, 4, 3]), tf.constant(2)
    plain = tf.function(update).get_concrete_function(x, i)
    assert "XlaDynamicUpdateSlice" in {n.type for n in plain.graph.get_operations()}
    with no_xla_ops():
        patched = tf.function(update).get_concrete_function(x, i)
    assert "XlaDynamicUpdateSlice" not in {n.type for n in patched.graph.get_operations()}
    np.testing.assert_array_equal(plain(x, i).numpy(), patched(x, i).numpy())


@pytest.mark.slow
def test_warmup_requests_parse_and_run(exported, served):
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported[2]["path"] + "/assets.extra/tf_serving_warmup_requests"
    signatures = set()
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "tiny"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        fn = getattr(served, {"serving_default": "generate"}.get(request.model_spec.signature_name,
                                                                  request.model_spec.signature_name))
        fn(**inputs)  # a valid request
        signatures.add(request.model_spec.signature_name)
    assert signatures == {"serving_default", "generate_ids", "beam_search", "score", "tokenize", "detokenize"}


@pytest.mark.slow
def test_fresh_process_with_only_tensorflow_serves_every_signature(trained, exported):
    from kerasllm.inference.generate import generate
    from kerasllm.loaded_run import load_run

    out = subprocess.run([sys.executable, str(ROOT / "tests/serving_client.py"), exported[2]["path"], json.dumps(PROMPTS)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["signatures"] == ["beam_search", "detokenize", "generate_ids", "score", "serving_default", "tokenize"]
    assert result["modules"] == [] or result["modules"] == ["keras"]  # no keras_hub, no kerasllm
    assert result["threaded_requests"] == 400 and result["threaded_all_equal"]  # greedy and seeded sampling
    assert result["detokenized"] == PROMPTS
    lm = load_run(str(trained[0]))
    # Greedy decoding and beam search in the SavedModel equal keras-hub's
    # CausalLM.generate on the same weights, in this process.
    assert result["greedy"] == generate(lm.model, lm.tokenizer, PROMPTS, 12, temperature=0).texts
    assert result["beam"] == generate(lm.model, lm.tokenizer, PROMPTS, 12, beams=4).texts
    assert all(1 <= n <= 12 for n in result["sampled_tokens"])
    assert all(p > 1 for p in result["perplexity"][:1])


@pytest.mark.slow
def test_score_equals_keras_model_likelihood(trained, served):
    from kerasllm.loaded_run import load_run

    lm = load_run(str(trained[0]))
    short, long = "To be, or not to be", "ROMEO: " * 12  # 84 tokens: three windows of the 32-token context
    out = served.score(tf.constant([short, long, ""]))
    for i, text in enumerate([short, long]):
        ids = [lm.tokenizer.eot_id] + lm.tokenizer.tokenize([text]).to_list()[0]
        nll, count = 0.0, 0
        for start in range(0, len(ids) - 1, 32):  # the documented windowing
            window = ids[start : start + 33]
            logits = lm.model(np.array([window[:-1]], "int32")).numpy()[0].astype("float64")
            logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
            nll -= sum(logp[j, t] for j, t in enumerate(window[1:]))
            count += len(window) - 1
        assert int(out["num_tokens"][i]) == count == len(text)
        assert float(out["log_prob"][i]) == pytest.approx(-nll, rel=1e-4)
        assert float(out["perplexity"][i]) == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert int(out["num_tokens"][2]) == 0 and float(out["perplexity"][2]) == 1.0
    # Scored a window at a time (as a book-length line would be), the same.
    from kerasllm.inference import scoring
    from kerasllm.inference.prompts import with_start_token

    tokens = with_start_token(lm.tokenizer, tf.constant([short, long, ""]))
    whole = scoring.sequence_log_probs(lm.model, tokens, lm.tokenizer.pad_id, 32)
    chunk, scoring.TOKENS_PER_CALL = scoring.TOKENS_PER_CALL, 40  # one 32-token window per model call
    try:
        one_by_one = scoring.sequence_log_probs(lm.model, tokens, lm.tokenizer.pad_id, 32)
    finally:
        scoring.TOKENS_PER_CALL = chunk
    np.testing.assert_allclose(one_by_one[0].numpy(), whole[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(whole[0].numpy(), out["log_prob"].numpy(), rtol=1e-4)


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"max_new_tokens": 32}, "max_new_tokens must be at most 31: the model context is 32 tokens"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"prompts": []}, "prompts: empty batch"),
    ],
)
@pytest.mark.slow
def test_bad_requests_fail_with_a_clear_invalid_argument(served, request_, message):
    inputs = {"prompts": tf.constant(["ROMEO:"])}
    for key, value in request_.items():
        inputs[key] = tf.constant(value, tf.string if key == "prompts" else None)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        served.generate(**inputs)


@pytest.mark.slow
def test_request_sampler_settings(served):
    def run(**settings):
        out = served.generate(tf.constant(PROMPTS), max_new_tokens=tf.constant(16),
                              **{k: tf.constant(v) for k, v in settings.items()})
        return [t.decode() for t in out["text"].numpy()]

    greedy = run(temperature=0.0)
    assert run(temperature=1.0, top_k=1, seed=3) == greedy  # top-1 is greedy
    assert run(temperature=1.0, top_p=1e-6, seed=3) == greedy  # so is a tiny nucleus
    assert run(temperature=1.0, seed=5) == run(temperature=1.0, seed=5)  # a seed replays
    assert len({tuple(run(temperature=1.5, seed=s)) for s in range(4)}) > 1


@pytest.mark.slow
def test_cli_generate_and_score_from_the_saved_model(trained, exported, cli, tmp_path):
    run_dir, base, _ = exported
    model = base / "tiny"
    greedy = ["--temperature", "0", "--max-new-tokens", "20"]
    from_model = cli("generate", "--model", model, "ROMEO:", *greedy)
    from_run = cli("generate", "--run", run_dir, "ROMEO:", *greedy)
    unstreamed = cli("generate", "--model", model, "ROMEO:", *greedy, "--no-stream")
    assert from_model.code == 0, from_model.err
    assert from_model.out == from_run.out == unstreamed.out and from_model.out.startswith("ROMEO:")
    # Prompts from a file, several samples each.
    (tmp_path / "prompts.txt").write_text("\ufeffROMEO:\nJULIET:\n")  # a byte-order mark is not part of a prompt
    many = cli("generate", "--model", model, "--prompts-file", tmp_path / "prompts.txt", "--num-samples", "2", "--seed", "1")
    assert many.code == 0 and many.out.count("-" * 40) == 4 and many.out.count("JULIET:") >= 2
    assert many.out.startswith("ROMEO:")
    # A stop string ends the text before it.
    text = from_model.out[len("ROMEO:"):].rstrip("\n")
    stop = text[5:7]
    stopped = cli("generate", "--model", model, "ROMEO:", *greedy, "--stop", stop)
    assert stopped.out == "ROMEO:" + text[: text.find(stop)] + "\n"
    (tmp_path / "empty.txt").write_text("")
    no_prompts = cli("generate", "--model", model, "--prompts-file", tmp_path / "empty.txt")
    assert no_prompts.code == 2 and "no prompts in it" in no_prompts.err
    beams = cli("generate", "--model", model, "ROMEO:", "--beams", "3")
    assert beams.code == 2 and "exported for beam search with 4 beams" in beams.err
    assert "re-export with `kerasllm export --beam-search-width 3`" in beams.err
    same_beams = cli("generate", "--model", model, "ROMEO:", "--beams", "4", "--num-samples", "2")
    assert same_beams.code == 2 and "beam search is deterministic" in same_beams.err
    # Past the first batch of 32, samples get their own seed instead of
    # repeating the first batch's draws.
    hot = ["--temperature", "5", "--max-new-tokens", "12", "--seed", "7", "--num-samples", "33"]
    samples = cli("generate", "--model", model, "ROMEO:", *hot).out.split("-" * 40 + "\n")
    assert len(samples) == 34 and samples[32] != samples[0]
    (tmp_path / "lines.txt").write_text("To be, or not to be\nROMEO:\n")
    scored = cli("score", "--model", model, tmp_path / "lines.txt")
    assert scored.code == 0, scored.err
    rows = [line.split("\t") for line in scored.out.splitlines()[1:3]]
    assert [int(r[1]) for r in rows] == [19, 6]
    total_lp, total_n = sum(float(r[0]) for r in rows), sum(int(r[1]) for r in rows)
    corpus = float(scored.out.splitlines()[-1].split()[3])
    assert corpus == pytest.approx(math.exp(-total_lp / total_n), rel=1e-3)
    # Prompts can come from stdin too.
    import io

    sys_stdin = sys.stdin
    try:
        sys.stdin = io.TextIOWrapper(io.BytesIO(b"ROMEO:\n"))
        piped = cli("generate", "--model", model, "--prompts-file", "-", *greedy)
    finally:
        sys.stdin = sys_stdin
    assert piped.code == 0 and piped.out == from_model.out
    not_utf8 = cli("generate", "--model", model, "ROMEO:", "caf\udce9")  # how Python passes the bytes caf\xe9
    assert not_utf8.code == 2 and not_utf8.err == "error: PROMPT 2: not valid UTF-8 text\n"
    bad_escape = cli("generate", "--model", model, "ROMEO:", "--stop", "\\x")
    assert bad_escape.code == 2 and "truncated \\xXX escape" in bad_escape.err and len(bad_escape.err.splitlines()) == 1
    missing = cli("generate", "--model", tmp_path / "nothing", "x")
    assert missing.code == 2 and "no SavedModel there" in missing.err
    both = cli("score", "--model", model, "--run", run_dir, tmp_path / "lines.txt")
    assert both.code == 2 and "exactly one of --model" in both.err


def test_stop_strings_read_backslash_escapes_and_keep_other_characters():
    from kerasllm.cli.main import _unescape
    from kerasllm.errors import UserError

    assert _unescape("\\n\\n", "--stop") == "\n\n" and _unescape("a\\tb\\u2029", "--stop") == "a\tb\u2029"
    assert _unescape("。", "--stop") == "。" and _unescape("fin.\\n", "--stop") == "fin.\n"
    assert _unescape("café", "--stop") == "café"  # not re-read as Latin-1 ("cafÃ©")
    # A backslash before a non-ASCII character stays, as before \\q; it once
    # turned "\\。" into the six characters "\\u3002".
    assert _unescape("\\。", "--stop") == "\\。" and _unescape("\\q", "--stop") == "\\q"
    assert _unescape("\\\\。\\n", "--stop") == "\\。\n" and _unescape("é\\té", "--stop") == "é\té"
    with pytest.raises(UserError, match="truncated"):
        _unescape("\\u30。", "--stop")
    assert _unescape("\\ud83d\\ude00", "--stop") == "😀" == _unescape("\\U0001f600", "--stop")
    with pytest.raises(UserError, match="half a surrogate pair"):
        _unescape("a\\ud800", "--stop")


@pytest.mark.slow
def test_streaming_yields_pieces_that_join_to_the_one_shot_text(exported, served):
    from kerasllm.export.client import LanguageModelClient, stream

    lm = LanguageModelClient.open(model=str(exported[1] / "tiny"))
    # 7 prompt tokens + 24 new fit the 32-token context, so no call cuts the prompt.
    pieces = list(stream(lm, "ROMEO:", 24, chunk=8, temperature=0.0))
    assert len([p for p in pieces if p]) >= 3
    assert "".join(pieces) == lm.generate(["ROMEO:"], 24, temperature=0.0).texts[0]
    # A seeded stream draws what one call with that seed draws: every call
    # continues the ids so far with the same seed, and draws are keyed by position.
    sampled = dict(temperature=1.5, top_k=0, top_p=1.0, seed=11)
    one_shot = lm.generate(["ROMEO:"], 24, **sampled).texts[0]
    assert "".join(stream(lm, "ROMEO:", 24, chunk=8, **sampled)) == one_shot
    # ... and what serving_default, text in and out, returns.
    out = served.generate(tf.constant(["ROMEO:"]), max_new_tokens=tf.constant(24), temperature=tf.constant(1.5),
                          seed=tf.constant(11))
    assert out["text"].numpy()[0].decode() == one_shot


@pytest.mark.slow
def test_generate_ids_continues_ids_and_refuses_what_does_not_fit(served):
    ids = tf.constant([[1, 0, 0], [1, 5, 6]])  # end-of-text start, then padding
    out = served.generate_ids(ids, tf.constant([1, 3]), max_new_tokens=tf.constant(4), temperature=tf.constant(0.0))
    assert out["token_ids"].shape == (2, 4) and out["num_tokens"].numpy().tolist() == [4, 4]
    # Ids carried into a second call continue where the first stopped.
    whole = served.generate_ids(ids[:1, :1], tf.constant([1]), max_new_tokens=tf.constant(8), temperature=tf.constant(0.0))
    first = out["token_ids"].numpy()[0].tolist()
    more = served.generate_ids(tf.constant([[1] + first]), tf.constant([5]), max_new_tokens=tf.constant(4),
                               temperature=tf.constant(0.0))
    assert whole["token_ids"].numpy()[0].tolist() == first + more["token_ids"].numpy()[0].tolist()
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_tokens \\+ max_new_tokens must be at most the model context, 32"):
        served.generate_ids(tf.ones([1, 30], tf.int32), tf.constant([30]), max_new_tokens=tf.constant(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_tokens must be at least 1"):
        served.generate_ids(ids, tf.constant([0, 3]), max_new_tokens=tf.constant(3))


@pytest.mark.slow
def test_an_exported_model_states_its_limit_and_cuts_long_prompts_in_one_line(exported, served, cli):
    model = exported[1] / "tiny"
    greedy = ["--temperature", "0"]
    over = cli("generate", "--model", model, "ROMEO:", "--max-new-tokens", "40", *greedy, "--num-samples", "33")
    assert over.code == 0, over.err
    # 33 samples are two batches, and still one line; the prompt is then cut
    # to the one token the 31 new ones leave (said once as well).
    assert over.err.splitlines() == [
        "warning: max_new_tokens=40 lowered to 31: the model's context is 32 tokens; "
        "`kerasllm generate --run` continues past the context",
        "warning: prompt of 7 tokens cut to its last 1 to fit the context of 32",
    ]
    prompt = "First Citizen:\nBefore we proceed"  # 32 characters: with 20 new tokens, 11 fit the context
    for stream in ("--stream", "--no-stream"):
        out = cli("generate", "--model", model, prompt, "--max-new-tokens", "20", *greedy, stream)
        assert out.code == 0 and out.err == "warning: prompt of 33 tokens cut to its last 12 to fit the context of 32\n"
        cut = served.generate(tf.constant([prompt]), max_new_tokens=tf.constant(20), temperature=tf.constant(0.0))
        assert out.out == prompt + cut["text"].numpy()[0].decode() + "\n"  # the cut serving_default makes
    unknown = cli("generate", "--model", model, "日本語", "--max-new-tokens", "3")
    assert unknown.err == "warning: 3 characters not in the model's vocabulary, read as unknown (<unk>): '日' '本' '語'\n"


@pytest.mark.slow
def test_a_model_exported_before_generate_ids_asks_to_be_exported_again(exported, cli, tmp_path):
    import shutil

    old = tmp_path / "old" / "1"
    shutil.copytree(exported[2]["path"], old)
    meta_path = old / "assets.extra" / "kerasllm.json"
    meta = json.loads(meta_path.read_text())
    del meta["eot_id"]  # as exports before generate_ids wrote it
    meta_path.write_text(json.dumps(meta))
    out = cli("generate", "--model", old, "ROMEO:")
    assert out.code == 2 and "exported by an older kerasllm" in out.err and len(out.err.splitlines()) == 1


def test_new_tokens_default_to_half_the_context_and_stay_within_it(kerasllm_warnings):
    from kerasllm.inference.generate import cap_new_tokens

    assert cap_new_tokens(None, 64) == 32 and cap_new_tokens(None, 1024) == 100 and cap_new_tokens(None, None) == 100
    assert cap_new_tokens(63, 64) == 63 and kerasllm_warnings == []
    assert cap_new_tokens(64, 64) == 63 and kerasllm_warnings == ["max_new_tokens=64 lowered to 63: the model's context is 64 tokens"]
    assert cap_new_tokens(5000, None) == 4096 and "lowered to 4096" in kerasllm_warnings[-1]


def test_kerasllm_json_says_which_run_step_and_config_the_weights_come_from(exported, trained, monkeypatch):
    import re

    from export_meta import check_provenance
    from kerasllm import config as config_lib
    from kerasllm.export.runs import provenance

    run_dir, base, report = exported
    meta = check_provenance(report["path"], run_dir)
    # The weights exported are the best validation's: its epoch's last step (20 steps an epoch).
    config = config_lib.load(ROOT / "configs/tiny-char.yaml")
    losses = [float(v) for v in re.findall(r"Validation Loss: ([0-9.]+)", trained[1])]
    best = losses.index(min(losses))
    assert meta["step"] == (best + 1) * config.train.steps_per_epoch
    assert meta["best_val_loss"] == pytest.approx(min(losses), abs=1e-4)
    # The hash is the run's identity: the same for the config it was trained from
    # and for settings a resume may change, another for another model.
    assert meta["config_hash"] == config_lib.identity_hash(config)
    longer = config_lib.load(ROOT / "configs/tiny-char.yaml", ["train.epochs=9"])
    deeper = config_lib.load(ROOT / "configs/tiny-char.yaml", ["model.num_layers=2"])
    assert config_lib.identity_hash(longer) == meta["config_hash"] != config_lib.identity_hash(deeper)
    monkeypatch.chdir(run_dir.parent)  # a relative --run is recorded as an absolute path
    assert provenance(config, run_dir.name)["run"] == str(run_dir.resolve())
