"""The command line's options and its answers to mistakes, without a model:
one spelling per option in every command, the old spellings still accepted,
and argument or config mistakes answered before TensorFlow is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import click
import pytest
import yaml
from conftest import ROOT, run_cli

from kerasllm.cli.main import cli as root

# A mistake is answered in well under a second (about 0.1-0.3 s: Python, click
# and yaml); importing TensorFlow alone takes 4-6 s, so this bound leaves
# headroom for a loaded machine and still fails if TensorFlow loads first.
FAST_S = 1.5
MODEL_COMMANDS = ["generate", "score", "translate", "qa"]


@pytest.fixture
def fake_runs(tmp_path):
    """Directories that look like runs to the checks made before TensorFlow
    (a config.yaml with a model.kind), and a prompts file."""
    for kind in ("gpt", "seq2seq"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "config.yaml").write_text(yaml.safe_dump({"name": kind, "model": {"kind": kind}}))
    return tmp_path


def mistakes(tmp):
    """(arguments, what the one error line says) for mistakes found before TensorFlow loads."""
    missing = str(tmp / "missing.txt")
    tiny = str(ROOT / "configs" / "tiny-char.yaml")
    return [
        (["train", "--config", str(tmp / "missing.yaml")], "config file not found"),
        (["train", "--verbose", "--config", str(tmp / "missing.yaml")], "config file not found"),
        (["train", "--config", tiny, "--set", "train.batch_size=0"], "train.batch_size must be at least 1"),
        (["train", "--config", tiny, "--set", "nope.key=1"], "unknown key 'nope'"),
        (["generate", "ROMEO:"], "give exactly one of --model"),
        (["generate", "--run", str(tmp / "gpt"), "--model", str(tmp / "gpt"), "x"], "give exactly one of --model"),
        (["score", "--run", str(tmp), "lines.txt"], "not a run directory (no config.yaml)"),
        (["score", "--run", str(tmp / "gpt")], "--input FILE or as a FILE argument"),
        (["translate", "--model", str(tmp / "nothing"), "x"], "no SavedModel there"),
        (["translate", "--run", str(tmp / "seq2seq")], "nothing to translate"),
        (["qa", "--run", str(tmp / "gpt"), "Who?"], "--context TEXT or --input FILE"),
        (["generate", "--run", str(tmp / "gpt"), "--input", missing], f"--input {missing}: No such file"),
        (["export", "--run", str(tmp / "gpt"), "--beams", "8"], "give --beam-search-width 8"),
        (["evaluate", "--run", str(tmp / "nothing")], "not a run directory"),
    ]


def test_mistakes_exit_2_with_one_line_before_tensorflow_loads(fake_runs):
    for args, message in mistakes(fake_runs):
        times = []
        for _ in range(3):  # the fastest of three tries: a busy machine stalls a process now and then
            start = time.monotonic()
            result = run_cli(*args, timeout=60)
            times.append(time.monotonic() - start)
            assert result.returncode == 2, (args, result.stderr[-2000:])
            assert result.stderr.count("\n") == 1 and message in result.stderr, (args, result.stderr)
            if times[-1] < FAST_S:
                break
        assert min(times) < FAST_S, (args, times)


def test_mistakes_do_not_import_tensorflow(fake_runs):
    script = (
        "import json, sys\n"
        "from kerasllm.cli.main import main\n"
        "codes = []\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        codes.append(e.code)\n"
        "print(json.dumps([codes, 'tensorflow' in sys.modules]))\n"
    )
    cases = [args for args, _ in mistakes(fake_runs)]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    codes, tensorflow_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases) and not tensorflow_loaded


@pytest.mark.parametrize("command, old, what", [
    ("generate", "--prompts-file", "--input"),
    ("translate", "--file", "--input"),
    ("qa", "--context-file", "--input"),
])
def test_old_input_spellings_still_read_the_file(cli, fake_runs, command, old, what):
    run = str(fake_runs / ("seq2seq" if command == "translate" else "gpt"))
    missing = str(fake_runs / "missing.txt")
    result = cli(command, "--run", run, "Who?", old, missing)
    assert result.code == 2 and result.err == f"error: {what} {missing}: No such file or directory\n"
    both = cli(command, "--run", run, "Who?", old, missing, "--input", missing)
    assert both.code == 2 and f"{old} is the old spelling of --input: give one of them" in both.err


def test_score_reads_its_file_from_input_or_the_argument(cli, fake_runs):
    run, missing = str(fake_runs / "gpt"), str(fake_runs / "missing.txt")
    assert cli("score", "--run", run, "--input", missing).err == f"error: --input {missing}: No such file or directory\n"
    assert cli("score", "--run", run, missing).err == f"error: FILE {missing}: No such file or directory\n"
    both = cli("score", "--run", run, missing, "--input", missing)
    assert both.code == 2 and "one of them" in both.err


def test_a_hidden_alias_converts_to_the_new_option_and_stays_out_of_help():
    from kerasllm.cli.main import hidden_alias

    got = []

    @click.command()
    @click.option("--max-new-tokens", type=int, default=None)
    @hidden_alias("--max-length", "--max-new-tokens", "max_new_tokens", convert=lambda n: n - 1, type=click.IntRange(min=2))
    def command(max_new_tokens):
        got.append(max_new_tokens)

    for args in (["--max-length", "5"], ["--max-new-tokens", "4"], []):
        command.main(args, standalone_mode=False)
    assert got == [4, 4, None]
    assert "--max-length" not in command.get_help(click.Context(command))
    translate_aliases = [p for p in root.commands["translate"].params if "--max-length" in p.opts]
    assert len(translate_aliases) == 1 and translate_aliases[0].hidden


@pytest.mark.parametrize("args, verbose", [
    (["--verbose", "train", "--config", "missing.yaml"], True),
    (["train", "--verbose", "--config", "missing.yaml"], True),
    (["train", "--config", "missing.yaml"], False),
    (["generate", "x", "--verbose"], True),
])
def test_verbose_before_or_after_the_command_name(args, verbose):
    from kerasllm.errors import UserError

    ctx = root.make_context("kerasllm", list(args))
    with pytest.raises(UserError):  # found before TensorFlow, after the options are read
        with ctx:
            root.invoke(ctx)
    assert ctx.obj["verbose"] is verbose
    worker = root.commands["data-service"].commands["worker"]
    assert any("--verbose" in p.opts for p in worker.params)


def test_help_names_the_model_kinds_and_one_model_source(cli):
    top = " ".join(cli("--help").out.split())
    assert all(kind in top for kind in ("language models", "translators", "question answerers")), top
    for command in MODEL_COMMANDS:
        shown = " ".join(cli(command, "--help").out.split())  # help text is wrapped
        assert "exactly one of --run / --model" in shown, command
        assert "--input FILE" in shown, command
        assert "--file " not in shown and "--prompts-file" not in shown and "--context-file" not in shown, command
    assert "--max-new-tokens" in cli("translate", "--help").out and "--max-length" not in cli("translate", "--help").out


def test_beams_has_one_default_everywhere():
    defaults = {}
    for name, command in root.commands.items():
        for param in command.params:
            if "--beams" in param.opts:
                defaults[name] = param.default
    assert defaults == {"generate": 1, "translate": 1, "evaluate": 1, "export": 1}


def test_export_width_options_apply_to_their_kind(cli, fake_runs):
    lm = cli("export", "--run", fake_runs / "gpt", "--beams", "8")
    assert lm.code == 2 and lm.err == ("error: --beams 8: a language model's requests do not choose a width; "
                                       "for the width of its beam_search signature give --beam-search-width 8\n")
    translator = cli("export", "--run", fake_runs / "seq2seq", "--beam-search-width", "8")
    assert translator.code == 2 and "--beam-search-width: a translator has no beam_search signature" in translator.err
