"""The benchmarks' shared record (bench/record.py) and the checks that keep a
benchmark from reporting figures it did not measure: qa_quality's reuse of
finished runs, generate_speed's token counts, translation_quality's export
comparison, transfer's A/B runs and its reading of the trainer's model line.
Pure Python: nothing trains, TensorFlow is not needed."""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import generate_speed  # noqa: E402
import qa_quality  # noqa: E402
import record  # noqa: E402
import transfer  # noqa: E402
import translation_quality  # noqa: E402

from kerasllm.errors import UserError  # noqa: E402

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 xsave

processor\t: 1
model name\t: Other
flags\t\t: fpu
"""


def test_cpu_info_reads_the_first_processors_model_and_the_kernel_relevant_flags():
    info = record.cpu_info(CPUINFO)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["flags"] == ["sse4_2", "fma", "avx", "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert info["logical_cpus"] == os.cpu_count()


def test_cpu_info_without_a_flags_line_says_none_rather_than_no_flags():
    assert record.cpu_info("model name\t: Some CPU\n")["flags"] is None
    assert record.cpu_info("model name\t: AMD EPYC\nflags\t: fpu avx2\n")["flags"] == ["avx2"]


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert record.git_state(repo) == {"commit": head, "dirty": False}
    (repo / "run-output.txt").write_text("untracked\n")  # run directories and such do not count
    assert record.git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    assert record.git_state(repo) == {"commit": head, "dirty": True}


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert record.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_emit_prints_one_json_line_with_the_result_and_its_record():
    from kerasllm import config as config_lib

    overrides = ["train.max_steps=5", "model.num_layers=1"]
    config = config_lib.load(ROOT / "configs" / "tiny-char.yaml", overrides)
    out = io.StringIO()
    record.emit({"benchmark": "x", "value": 1.5}, {"run": record.config_entry(config, overrides)}, file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert (line["benchmark"], line["value"]) == ("x", 1.5)
    rec = line["record"]
    date = datetime.datetime.fromisoformat(rec["date_utc"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - date).total_seconds()) < 60
    assert datetime.datetime.fromisoformat(rec["started_utc"]) <= date
    assert rec["git"]["commit"] == _git(ROOT, "rev-parse", "HEAD").strip()
    assert "git_at_end" not in rec
    assert isinstance(rec["git"]["dirty"], bool)
    assert rec["cpu"] == record.cpu_info()
    # The versions setup.cfg pins (read without importing TensorFlow).
    assert rec["versions"]["tensorflow"].startswith("2.21.") and rec["versions"]["keras"].startswith("3.15.")
    assert rec["versions"]["keras-hub"].startswith("0.32.")
    run = rec["configs"]["run"]
    assert run["overrides"] == overrides
    assert run["config"]["train"]["max_steps"] == 5 and run["config"]["model"]["num_layers"] == 1


def test_record_says_when_the_checkout_changed_while_the_bench_ran(monkeypatch):
    started = {"date_utc": "2026-01-01T00:00:00+00:00", "git": {"commit": "0" * 40, "dirty": False}}
    monkeypatch.setattr(record, "STARTED", started)
    rec = record.record()
    assert rec["git"] == started["git"] and rec["started_utc"] == started["date_utc"]
    assert rec["git_at_end"] == record.git_state() != started["git"]


def test_differences_lists_each_changed_leaf_with_its_path():
    old = {"train": {"epochs": 3, "lr": 0.1}, "name": "a"}
    new = {"train": {"epochs": 4, "lr": 0.1, "extra": 1}, "name": "a"}
    assert record.differences(old, new) == ["train.epochs (3 -> 4)", "train.extra (None -> 1)"]
    assert record.differences(old, json.loads(json.dumps(old))) == []


def _qa_args(**changes) -> argparse.Namespace:
    values = dict(pretrain_minutes=80.0, finetune_minutes=45.0, validate_every=400, finetune_steps=0, overrides=[])
    return argparse.Namespace(**{**values, **changes})


def _finish(run_dir: Path, entry: dict | None) -> None:
    """A run as a finished qa_quality call leaves it (entry None: by the old bench)."""
    run_dir.mkdir(parents=True)
    summary = {"minutes": 80.0, "steps": 10, "best_val_loss": 1.0}
    if entry is not None:
        summary["options"] = entry
    (run_dir / "bench-result.json").write_text(json.dumps(summary))


def test_qa_quality_reuses_a_finished_run_only_with_the_options_it_was_made_with(tmp_path):
    out = str(tmp_path)
    made = qa_quality.resolve_runs(out, _qa_args())
    _finish(tmp_path / "squad-mlm", made["squad-mlm"][1])
    again = qa_quality.resolve_runs(out, _qa_args(finetune_minutes=10.0))  # pretraining's own options unchanged
    qa_quality.check_reusable(str(tmp_path / "squad-mlm"), again["squad-mlm"][1])
    other = qa_quality.resolve_runs(out, _qa_args(pretrain_minutes=5.0))
    with pytest.raises(UserError, match=r"trained with other options \(train\.time_limit_minutes \(80\.0 -> 5\.0\)\)"):
        qa_quality.check_reusable(str(tmp_path / "squad-mlm"), other["squad-mlm"][1])
    overridden = qa_quality.resolve_runs(out, _qa_args(overrides=["model.num_layers=1"]))
    with pytest.raises(UserError, match=r"model\.num_layers"):
        qa_quality.check_reusable(str(tmp_path / "squad-mlm"), overridden["squad-mlm"][1])
    qa_quality.check_reusable(str(tmp_path / "squad-qa"), other["squad-qa"][1])  # not finished: nothing to check


def test_qa_quality_refuses_a_run_finished_without_recorded_options(tmp_path):
    _finish(tmp_path / "squad-mlm", None)
    entry = qa_quality.resolve_runs(str(tmp_path), _qa_args())["squad-mlm"][1]
    with pytest.raises(UserError, match="did not record its options; use a new --out"):
        qa_quality.check_reusable(str(tmp_path / "squad-mlm"), entry)


def test_qa_quality_call_with_other_options_stops_with_one_line_and_exit_2(tmp_path):
    made = qa_quality.resolve_runs(str(tmp_path), _qa_args())
    _finish(tmp_path / "squad-mlm", made["squad-mlm"][1])
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "qa_quality.py"), "--out", str(tmp_path),
                           "--runs", "", "--pretrain-minutes", "5"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("qa_quality.py: error: ") and "train.time_limit_minutes (80.0 -> 5.0)" in lines[0]


def test_generate_speed_finds_cases_where_keras_hub_made_other_token_counts():
    same = {("saved_model", 16, 64, "greedy"): [64] * 16, ("keras_hub", 16, 64, "greedy"): [64] * 16}
    assert generate_speed.token_count_mismatches(same) == []
    fewer = {**same, ("saved_model", 1, 256, "top_p"): [256], ("keras_hub", 1, 256, "top_p"): [31]}
    assert generate_speed.token_count_mismatches(fewer) == ["b1_256_top_p: saved_model 256, keras_hub 31 tokens"]
    # Equal totals spread over other rows are still different work per row.
    swapped = {("saved_model", 2, 64, "greedy"): [64, 10], ("keras_hub", 2, 64, "greedy"): [10, 64]}
    assert generate_speed.token_count_mismatches(swapped) == ["b2_64_greedy: saved_model 74, keras_hub 74 tokens"]
    missing = {("saved_model", 1, 64, "greedy"): [64]}
    assert generate_speed.token_count_mismatches(missing) == ["b1_64_greedy: saved_model 64, keras_hub none tokens"]


def test_translation_export_comparison_counts_the_sentences_it_compared():
    assert translation_quality.compare(["a", "b", "c"], ["a", "b", "c"]) == {
        "compared_sentences": 3, "equal_sentences": 3, "equals_in_process": True}
    assert translation_quality.compare(["a", "x", "c"], ["a", "b", "c"]) == {
        "compared_sentences": 3, "equal_sentences": 2, "equals_in_process": False}
    assert translation_quality.compare(["a"], ["a", "b"])["equals_in_process"] is False


def _transfer_args(**changes) -> argparse.Namespace:
    values = {"pretrain_minutes": 30.0, "finetune_minutes": 5.0, "tokenizer": "sentencepiece", "vocab_size": 8000,
              "overrides": [], "pretrain_overrides": [], "finetune_overrides": []}
    return argparse.Namespace(**{**values, **changes})


def test_transfer_fine_tuned_and_scratch_runs_differ_only_in_name_and_init_from(tmp_path):
    from kerasllm import config as config_lib

    sets = transfer.run_overrides(tmp_path, _transfer_args(finetune_overrides=["train.learning_rate=1e-4"]))
    runs = {run: config_lib.load(transfer.BASE, sets[run]) for run in transfer.RUNS}
    assert record.differences(runs["scratch"].to_dict(), runs["finetune"].to_dict()) == [
        "name ('transfer-scratch' -> 'transfer-finetune')",
        f"train.init_from ('' -> {str(tmp_path / 'pretrain')!r})",
    ]
    assert runs["finetune"].train.learning_rate == 1e-4 and runs["pretrain"].train.learning_rate == 1.5e-3
    assert runs["pretrain"].data.source == "squad-v1.1" and runs["finetune"].data.source == "tinyshakespeare"
    assert runs["pretrain"].train.time_limit_minutes == 30.0 and runs["scratch"].train.time_limit_minutes == 5.0
    # One vocabulary for all three, and the shape of configs/shakespeare-char.yaml.
    assert {(r.tokenizer.kind, r.tokenizer.vocab_size, r.model.num_layers, r.model.hidden_dim)
            for r in runs.values()} == {("sentencepiece", 8000, 4, 256)}


def test_transfer_seeds_a_run_with_the_config_the_trainer_would_write_and_checks_tokenizers(tmp_path, capsys):
    from kerasllm import config as config_lib

    config = config_lib.load(transfer.BASE, transfer.run_overrides(tmp_path, _transfer_args())["scratch"])
    source = tmp_path / "pretrain" / "tokenizer"
    source.mkdir(parents=True)
    (source / "tokenizer.json").write_text('{"kind": "sentencepiece"}')
    (source / "model.spm").write_bytes(b"pieces")
    transfer.seed_tokenizer(tmp_path / "scratch", config, source)
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["config.yaml", "tokenizer"]
    assert config_lib.load(tmp_path / "scratch" / "config.yaml").to_dict() == config.to_dict()
    transfer.check_same_tokenizer(source, tmp_path / "scratch" / "tokenizer")
    (tmp_path / "scratch" / "tokenizer" / "model.spm").write_bytes(b"other")
    with pytest.raises(SystemExit, match=r"tokenizer files \['model.spm'\] differ"):
        transfer.check_same_tokenizer(source, tmp_path / "scratch" / "tokenizer")


def test_transfer_reads_the_parameter_count_and_the_trained_share_from_the_model_line():
    full = transfer.MODEL_LINE.search("x\nModel: gpt2, 124,439,808 parameters; vocabulary 457 (pretrained); 1 replica(s)")
    assert full.group(1) == "124,439,808" and full.group(2) is None
    lora = transfer.MODEL_LINE.search("Model: gpt, 12,448 parameters (640 of them trained (LoRA rank 4 on 2 layers)); "
                                      "vocabulary 65 (char); 1 replica(s); float32")
    assert lora.group(1) == "12,448" and lora.group(2) == "640 of them trained (LoRA rank 4 on 2 layers)"
