"""Progress lines on stderr: a redrawn line on a terminal, rate-limited plain
lines elsewhere, nothing with --quiet; and the commands that show them keep
stdout one JSON line."""

from __future__ import annotations

import io
import json
import time

import pytest

from conftest import ROOT
from kerasllm import progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Stream(io.StringIO):
    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def _report(terminal: bool, **kwargs):
    clock, stream = FakeClock(), Stream(terminal)
    settings = progress.Settings(delay=2.0, interval_terminal=0.2, interval_log=10.0)
    report = progress.Progress("evaluate", unit="batches", total=100, stream=stream, clock=clock, settings=settings,
                               **kwargs)
    return report, clock, stream


def test_a_log_gets_plain_lines_at_most_every_interval_and_a_final_line():
    report, clock, stream = _report(terminal=False)
    with report:
        for _ in range(100):  # one batch every 0.5 s: 50 s in all
            clock.now += 0.5
            report.advance()
    out = stream.getvalue()
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    # First line once the 2 s delay has passed, then one every 10 s, then the final one.
    assert lines[0] == "evaluate: 4/100 batches, 2.0/s (2.0 s)"
    assert [line.split("(")[-1] for line in lines[1:-1]] == ["12.0 s)", "22.0 s)", "32.0 s)", "42.0 s)"]
    assert lines[-1] == "evaluate: 100/100 batches, 2.0/s, done in 50.0 s"


def test_a_terminal_gets_one_redrawn_line():
    report, clock, stream = _report(terminal=True)
    with report:
        for _ in range(20):
            clock.now += 0.5
            report.advance()
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")  # only the final line ends
    draws = out.split("\r")[1:]
    assert len(draws) == 18  # every 0.5 s from 2 s to 10 s (interval 0.2 s), and the final line
    assert draws[-1].startswith("evaluate: 20/100 batches, 2.0/s, done in 10.0 s")
    assert "\x1b" not in out  # padding, not escapes, wipes a longer old line


def test_quick_work_and_disabled_progress_print_nothing():
    report, clock, stream = _report(terminal=False)
    with report:
        clock.now += 1.9
        report.advance()
    assert stream.getvalue() == ""
    stream = Stream(False)
    with progress.silenced():
        with progress.Progress("x", stream=stream, settings=None) as quiet:
            quiet.update("anything")
    assert stream.getvalue() == "" and progress.SETTINGS.enabled


def test_an_error_leaves_no_final_line_and_clears_the_terminal_line():
    report, clock, stream = _report(terminal=True)
    with pytest.raises(ValueError):
        with report:
            clock.now += 3
            report.advance()
            raise ValueError("boom")
    out = stream.getvalue()
    assert "done" not in out and "\n" not in out and out.endswith("\r") and out.split("\r")[-2].strip() == ""


def test_a_ticking_phase_shows_elapsed_time_during_one_long_call():
    stream = Stream(False)
    settings = progress.Settings(delay=0.0, interval_terminal=0.02, interval_log=0.05)
    with progress.phase("export: saving", stream=stream, settings=settings):
        time.sleep(0.4)  # a call that reports nothing itself
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("export: saving (") for line in lines[:-1])
    assert lines[-1].startswith("export: saving, done in 0.")


def test_progress_passes_a_silenced_stderr(capfd):
    """SentencePiece's log is hidden by pointing descriptor 2 at /dev/null;
    progress lines still reach the real stderr."""
    import sys

    from kerasllm.quiet import stderr_silenced

    settings = progress.Settings(delay=0.0)
    with stderr_silenced():
        with progress.Progress("tokenizer: learning", stream=sys.stderr, settings=settings):
            pass
    assert "tokenizer: learning, done in" in capfd.readouterr().err


def test_text_bytes_are_counted_in_the_graph():
    import tensorflow as tf

    texts = ["héllo", "", "wörld!"] * 50
    batches, read = progress.count_text_bytes(tf.data.Dataset.from_tensor_slices(texts).batch(7))
    assert read() == 0
    assert list(batches.unbatch().as_numpy_iterator()) == [t.encode() for t in texts]
    assert read() == sum(len(t.encode()) for t in texts)


@pytest.fixture
def shown(monkeypatch):
    """Progress lines even for quick work (tiny runs end within the delay)."""
    monkeypatch.setattr(progress, "SETTINGS", progress.Settings(delay=0.0))


def _one_json_line(out: str) -> dict:
    assert len(out.splitlines()) == 1, out
    return json.loads(out)


def _progress_lines(err: str, prefix: str) -> list:
    assert "\r" not in err and "\x1b" not in err
    return [line for line in err.splitlines() if line.startswith(prefix)]


def test_prepare_evaluate_and_export_show_progress_on_stderr_only(cli, shown, trained, tmp_path):
    prepared = cli("prepare", "--config", ROOT / "configs" / "tiny-char.yaml", "--out", tmp_path / "prepared",
                   "--shard-mb", "0.25")
    assert prepared.code == 0, prepared.err
    assert _one_json_line(prepared.out)["shards"]["train"] > 1
    final = _progress_lines(prepared.err, "prepare: ")[-1]
    assert "MB of text read" in final and "MB/s" in final and "shard(s) written, done in" in final

    run_dir, _ = trained
    evaluated = cli("evaluate", "--run", run_dir)
    assert evaluated.code == 0, evaluated.err
    assert "perplexity" in _one_json_line(evaluated.out)
    assert _progress_lines(evaluated.err, "evaluate: validation split: ")[-1].split(" batches")[0].split()[-1].isdigit()

    exported = cli("export", "--run", run_dir, "--name", "tiny", "--base-dir", tmp_path / "models")
    assert exported.code == 0, exported.err
    assert _one_json_line(exported.out)["version"] == 1
    phases = [line.split(", done in")[0] for line in _progress_lines(exported.err, "export: ") if ", done in" in line]
    assert phases == ["export: loading the run", "export: tracing 6 signature(s)", "export: saving",
                      "export: checking the graph's ops, writing warmup requests"]

    quiet = cli("evaluate", "--run", run_dir, "--quiet")
    assert quiet.code == 0 and quiet.err == "" and _one_json_line(quiet.out) == _one_json_line(evaluated.out)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_counting_through_the_data_service_says_it_waits_for_workers(tmp_path, capsys, monkeypatch):
    """No worker has registered yet: the trainer's count of the training
    tokens names the wait, and goes on once a worker comes."""
    import threading

    from conftest import data_dir
    from kerasllm import config as config_lib
    from kerasllm.data import service
    from kerasllm.data.corpus import count_blocks, open_corpus

    text = (data_dir() / "tinyshakespeare.txt").read_text(encoding="utf-8")[:60_000]
    for i in range(2):
        (tmp_path / f"part{i}.txt").write_text(text[i * 30_000:(i + 1) * 30_000], encoding="utf-8")
    port = _free_port()
    dispatcher = service.start_dispatcher(port)
    config = config_lib.load(ROOT / "configs" / "tiny-char.yaml",
                             [f"data.source={tmp_path}", f"train.data_service=grpc://127.0.0.1:{port}"])
    corpus = open_corpus(config, tmp_path / "tokenizer", for_training=True)
    workers = []
    threading.Timer(3.0, lambda: workers.append(service.start_worker(f"127.0.0.1:{port}", _free_port(),
                                                                    "127.0.0.1"))).start()
    monkeypatch.setattr(progress, "SETTINGS", progress.Settings(delay=0.0, interval_log=0.5))
    capsys.readouterr()
    try:
        counts = count_blocks(corpus, 32)
    finally:
        for server in workers + [dispatcher]:
            server.stop()
    assert counts["train"] > 0
    lines = _progress_lines(capsys.readouterr().err, "data: counting the train split's tokens")
    assert f"waiting for the tf.data service at grpc://127.0.0.1:{port} and its workers" in lines[0]
    assert "waiting" not in lines[-1] and ", done in" in lines[-1]


def test_a_warning_clears_the_terminal_line_and_the_next_tick_redraws_it():
    report, clock, stream = _report(terminal=True)
    with report:
        clock.now += 3
        report.advance()
        drawn = stream.getvalue()
        progress.clear_line()  # what the CLI's warning handler does first
        cleared = stream.getvalue()[len(drawn):]
        assert cleared.strip() == "" and cleared.startswith("\r") and cleared.endswith("\r")
        clock.now += 0.01  # sooner than the redraw interval: redrawn anyway, the line is gone
        report.advance()
        assert stream.getvalue()[len(drawn) + len(cleared):].startswith("\revaluate: 2/100 batches")


def test_counting_blocks_per_batch_of_chunks_counts_what_the_graph_counts():
    import tensorflow as tf

    from kerasllm.data import pipelines

    chunks = tf.data.Dataset.from_tensor_slices(tf.range(5000)).batch(3)  # 1667 chunks: two batches of 1024
    heard = []
    assert pipelines.count_blocks(chunks, 9, heard.append) == pipelines.count_blocks(chunks, 9) == 500
    assert heard == [3072, 1928]


def test_question_answering_reports_each_batch_of_answers():
    import tensorflow as tf

    from kerasllm.inference.qa import answer_questions

    def answer(questions, contexts):
        n = int(tf.size(questions))
        return {"answer": tf.fill([n], "x"), "score": tf.zeros([n]), "start": tf.zeros([n], tf.int32),
                "end": tf.ones([n], tf.int32)}

    heard = []
    answers = answer_questions(answer, ["Who?"] * 70, ["Anna."] * 70, batch_size=32, on_batch=heard.append)
    assert heard == [32, 32, 6] and len(answers) == 70


def test_keras_progbar_still_redraws_when_not_on_a_terminal(capsys):
    """Why kerasllm.progress exists: Keras' Progbar writes '\\r' (and '\\b')
    to stdout even when it is not a terminal. Once it prints plain lines
    there, see whether it can replace the reporter (progress.py docstring)."""
    import keras

    capsys.readouterr()
    bar = keras.utils.Progbar(3)
    bar.update(3, finalize=True)
    out = capsys.readouterr().out
    assert "3/3" in out and ("\r" in out or "\b" in out)
