"""The `kerasllm` command line: thin commands over the library.

Each command parses its options, loads the config, calls one library
function and prints. A user mistake (`UserError`) is one line on stderr and
exit code 2. TensorFlow is imported inside the commands, so `--help` is fast,
and its log noise is silenced unless `--verbose` is given.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import warnings

import click

from kerasllm import progress
from kerasllm.errors import UserError
from kerasllm.quiet import stderr_silenced

EXAMPLES = """
\b
Examples:
  kerasllm train --config configs/shakespeare-char.yaml
  kerasllm train --config configs/shakespeare-char.yaml --set train.max_steps=200 --run-dir runs/smoke
  tensorboard --logdir runs
  kerasllm generate --run runs/shakespeare-char "ROMEO:" --max-new-tokens 100 --top-k 10
  kerasllm evaluate --run runs/shakespeare-char
  kerasllm train --config configs/spa-eng-transformer.yaml
  kerasllm translate --run runs/spa-eng "Where is the station?" --beams 4
  kerasllm export --run runs/shakespeare-char --name shakespeare
  kerasllm export --run runs/spa-eng --name spa-eng && kerasllm translate --model saved_models/spa-eng "I like tea."
  kerasllm generate --model saved_models/shakespeare "ROMEO:" --top-p 0.9
  kerasllm score --model saved_models/shakespeare lines.txt
  kerasllm prepare --config configs/shakespeare-wordpiece.yaml --out data/shakespeare-wp
  kerasllm train --config configs/squad-mlm.yaml && kerasllm train --config configs/squad-qa.yaml
  kerasllm qa --run runs/squad-qa "Who wrote Hamlet?" --context "Hamlet is a tragedy by William Shakespeare."
  kerasllm data-report --config configs/spa-eng-transformer.yaml --set data.cleaning.pii=mask
  kerasllm explain --run runs/shakespeare-char "ROMEO: What say you?" --format html
"""


def _quiet_tensorflow(verbose: bool) -> None:
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    else:
        os.environ["KERASLLM_VERBOSE"] = "1"


def _after_tf_import(verbose: bool) -> None:
    """Imports TensorFlow and friends, quietly unless --verbose (given before
    or after the command name: both set ctx.obj["verbose"] before this runs)."""
    _quiet_tensorflow(verbose)
    if verbose:
        return
    with stderr_silenced():
        import absl.logging
        import keras  # noqa: F401
        import keras_hub  # noqa: F401
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")


class _EchoHandler(logging.Handler):
    """Prints the library's warnings as `warning: ...` on stderr."""

    def emit(self, record):
        progress.clear_line()  # a progress line drawn on the terminal would run into the warning
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def _setup_logging() -> None:
    from kerasllm.errors import logger

    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler(logging.WARNING))
        logger.propagate = False


VERBOSE_HELP = "Show TensorFlow's log messages and full tracebacks (before or after the command name)."


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--verbose", is_flag=True, help=VERBOSE_HELP)
@click.version_option(package_name="kerasllm")
@click.pass_context
def cli(ctx, verbose):
    """kerasllm: prepare text and train Transformer models with Keras -- language
    models, translators and question answerers -- then export them for TF
    Serving, generate, score, translate and answer questions with them."""
    ctx.obj = {"verbose": verbose}
    _setup_logging()


def _set_verbose(ctx, param, value):
    if value:
        ctx.find_root().obj["verbose"] = True


def verbose_option(f):
    """`--verbose` after the command name (`kerasllm train --verbose ...`):
    the same switch as `kerasllm --verbose train ...`."""
    return click.option("--verbose", is_flag=True, expose_value=False, callback=_set_verbose, help=VERBOSE_HELP)(f)


def hidden_alias(old_flag: str, new_flag: str, param: str, convert=None, **option_kwargs):
    """Keeps an option's old spelling working, hidden from --help.

    The old option's value goes to `param`, the new option's parameter
    (through `convert` if the old one counted differently); giving both is a
    mistake. A wrapper rather than two options on one parameter name: how
    click arbitrates such a pair differs between click versions.

    Args:
        old_flag: the old spelling, e.g. "--prompts-file".
        new_flag: the spelling it stands for, e.g. "--input" (for messages).
        param: the new option's parameter name.
        convert: old value -> new value (default: the same).
        option_kwargs: click.option arguments for the old spelling (its type).

    Example:
        @hidden_alias("--max-length", "--max-new-tokens", "max_new_tokens", convert=lambda n: n - 1,
                      type=click.IntRange(min=2))
    """
    alias_param = "old_" + old_flag.lstrip("-").replace("-", "_")

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            old_value = kwargs.pop(alias_param)
            if old_value is not None:
                if kwargs[param] is not None:
                    raise UserError(f"{old_flag} is the old spelling of {new_flag}: give one of them")
                kwargs[param] = convert(old_value) if convert else old_value
            return f(*args, **kwargs)

        return click.option(old_flag, alias_param, hidden=True, default=None, **option_kwargs)(command)

    return decorate


def input_option(what: str, alias: str | None = None):
    """`--input FILE` ('-' = stdin), the one spelling of an input file in
    every command; `alias` is the command's old spelling, still accepted."""

    def decorate(f):
        f = click.option("--input", "input_path", type=str, default=None, metavar="FILE",
                         help=f"{what} ('-' reads stdin).")(f)
        return hidden_alias(alias, "--input", "input_path", type=str)(f) if alias else f

    return decorate


config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="A YAML run config (see configs/)."
)
set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. --set train.batch_size=32 (repeatable)."
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="Directory with dataset files (default: $KERASLLM_DATA_DIR, else ~/.cache/kerasllm).",
)


@cli.command(epilog="""\b
Examples:
  kerasllm train --config configs/shakespeare-char.yaml --set train.epochs=3
  kerasllm train --config configs/shakespeare-char.yaml --set train.strategy=mirrored --set train.cpu_devices=2
  # two machines (run the same command on each, with its own index):
  kerasllm train --config configs/shakespeare-char.yaml --workers host1:2222,host2:2222 --worker-index 0
""")
@config_option
@set_option
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Run directory (default: runs/<name>).")
@data_dir_option
@click.option("--quiet", is_flag=True, help="No progress bar or step lines; validation lines still print.")
@click.option("--workers", default=None, help="Multi-worker training: every worker's host:port, comma-separated "
              "(writes TF_CONFIG; worker 0 is the chief).")
@click.option("--worker-index", type=click.IntRange(min=0), default=None, help="This worker's place in --workers.")
@verbose_option
@click.pass_context
def train(ctx, config_path, overrides, run_dir, data_dir, quiet, workers, worker_index):
    """Train a model; run the same command again to resume after a crash."""
    from kerasllm import config as config_lib

    overrides = list(overrides)
    if (workers is None) != (worker_index is None):
        raise UserError("--workers and --worker-index go together")
    if workers is not None:
        overrides.append("train.strategy=multi_worker")
    config = config_lib.load(config_path, overrides)
    _after_tf_import(ctx.obj["verbose"])
    if workers is not None:
        from kerasllm.training.strategy import worker_tf_config

        os.environ["TF_CONFIG"] = worker_tf_config(workers, worker_index)
    from kerasllm.training.trainer import train as run_training

    with progress.silenced(quiet):
        result = run_training(config, run_dir=run_dir, data_dir=data_dir, verbose=0 if quiet else 1)
    click.echo(f"Done: {result.stop_reason}; best validation loss {result.best_val_loss:.4f}. Run directory: {result.run_dir}")
    for text in result.samples:
        click.echo("-" * 40)
        click.echo(text)


def _read_bytes(path: str, what: str) -> bytes:
    """A file's bytes ('-' = stdin), or a one-line error."""
    try:
        return sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror}") from None


def _utf8_args(texts, what: str, numbered: bool = True) -> list[str]:
    """Command-line text, refused in one line if it is not UTF-8 (Python
    hands invalid bytes over as lone surrogates, which TensorFlow rejects)."""
    texts = list(texts)
    for number, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"{what}{f' {number}' if numbered else ''}: not valid UTF-8 text") from None
    return texts


def _unescape(text: str, what: str) -> str:
    """Backslash escapes (\\n, \\t, \\u2029) in an option, other characters as
    they are; a backslash before a non-ASCII character stays a backslash (as
    an unknown escape such as \\q does)."""
    parts = re.split(r"([^\x00-\x7f]+)", text)  # ASCII runs at even indexes
    for i in range(0, len(parts), 2):
        run, kept = parts[i], ""
        if i + 1 < len(parts) and (len(run) - len(run.rstrip("\\"))) % 2:
            run, kept = run[:-1], "\\"
        try:
            with warnings.catch_warnings():  # an unknown escape (\\q) warns, and stays as written
                warnings.simplefilter("ignore", DeprecationWarning)
                parts[i] = run.encode("ascii").decode("unicode_escape") + kept
        except UnicodeDecodeError as e:
            raise UserError(f"{what} {text!r}: {e.reason}; write a backslash as \\\\") from None
    try:  # \\ud83d\\ude00 is one character; a lone surrogate is not text
        return "".join(parts).encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise UserError(f"{what} {text!r}: a \\u escape names half a surrogate pair; "
                        "write the character or its \\U escape") from None


def _read_lines(path: str, what: str) -> list[str]:
    """Lines of a UTF-8 file ('-' = stdin), without their line ends."""
    lines = _read_bytes(path, what).removeprefix(b"\xef\xbb\xbf").splitlines()  # a byte-order mark is not text
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{what} {path} line {number}: not valid UTF-8") from None
    return [line.decode("utf-8") for line in lines]


ONE_MODEL = "exactly one of --run / --model / --checkpoint"
model_source_options = [
    click.option("--model", "model_dir", type=click.Path(), default=None,
                 help=f"An exported SavedModel: saved_models/<name> (newest version) or saved_models/<name>/<version> "
                      f"({ONE_MODEL})."),
    click.option("--run", "run_dir", type=click.Path(file_okay=False), default=None,
                 help=f"A run directory from `kerasllm train`: its best weights ({ONE_MODEL})."),
    click.option("--checkpoint", "checkpoint_dir", type=str, default=None,
                 help="A pretrained checkpoint used as it is: a Hugging Face model directory, a keras-hub preset, "
                      f"or a hf:// / kaggle:// handle ({ONE_MODEL}; docs/pretrained.md)."),
]


def model_source(f):
    for option in reversed(model_source_options):
        f = option(f)
    return f


def _check_model_source(model_dir: str | None, run_dir: str | None, checkpoint_dir: str | None = None) -> None:
    """The mistakes in --run / --model / --checkpoint found without
    TensorFlow (the clients check the rest once it is loaded), so they are
    answered at once."""
    if sum(source is not None for source in (model_dir, run_dir, checkpoint_dir)) != 1:
        raise UserError("give exactly one of --model (an exported SavedModel), --run (a run directory) or "
                        "--checkpoint (a pretrained checkpoint)")
    if checkpoint_dir is not None:
        from kerasllm import pretrained

        if not pretrained.is_handle(checkpoint_dir):  # a handle is fetched once TensorFlow is loaded
            pretrained.inspect(checkpoint_dir, "--checkpoint")
    elif run_dir is not None:
        _check_run_dir(run_dir)
    elif not os.path.exists(model_dir):
        raise UserError(f"--model {model_dir}: no SavedModel there (expected {model_dir}/<version>/saved_model.pb); "
                        "make one with `kerasllm export`")


def _check_run_dir(run_dir: str) -> None:
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")


BATCH = 32  # prompts or lines per call
SEED_MAX = 2**31 - 1  # seeds are int32 in the graph


@cli.command(epilog="""\b
Examples:
  kerasllm generate --run runs/shakespeare-char "ROMEO:" --top-k 10
  kerasllm generate --model saved_models/shakespeare "ROMEO:" --top-p 0.9 --stop "\\n\\n"
  kerasllm generate --model saved_models/shakespeare --input prompts.txt --temperature 0
  kerasllm generate --model saved_models/shakespeare "ROMEO:" --beams 4 --max-new-tokens 30
""")
@model_source
@click.argument("prompts", nargs=-1)
@input_option("More prompts, one per line", alias="--prompts-file")
@click.option("--max-new-tokens", default=None, type=click.IntRange(min=1),
              help="--run continues past the model's context (a sliding window); an exported model makes at most "
                   "context - 1. [default: 100, at most half the model's context]")
@click.option("--temperature", default=0.8, show_default=True, type=click.FloatRange(min=0.0), help="0 = greedy.")
@click.option("--top-k", default=0, show_default=True, type=click.IntRange(min=0, max=2**31 - 1), help="Sample among the k most likely tokens (0 = all).")
@click.option("--top-p", default=1.0, show_default=True, type=click.FloatRange(min=0.0, max=1.0, min_open=True),
              help="Sample from the smallest set of tokens whose probability reaches p (1 = all).")
@click.option("--beams", default=1, show_default=True, type=click.IntRange(min=1),
              help="Beam search with this many beams (1 = no beam search: sample); the sampling options do not apply "
                   "to it. An exported model searches with the width it was exported with (export --beam-search-width).")
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1), help="Continuations per prompt.")
@click.option("--seed", default=None, type=click.IntRange(min=0, max=SEED_MAX), help="Seed for reproducible sampling.")
@click.option("--stop", multiple=True, help="Stop at this string, which is not printed (repeatable; '\\n' is a newline).")
@click.option("--stream/--no-stream", default=True, show_default=True, help="Print a single sample as it is generated.")
@verbose_option
@click.pass_context
def generate(ctx, model_dir, run_dir, checkpoint_dir, prompts, input_path, max_new_tokens, temperature, top_k, top_p, beams,
             num_samples, seed, stop, stream):
    """Continue PROMPTS (and --input lines; default: an empty prompt) with a
    language model: a run or an exported model, exactly one of --run / --model."""
    _check_model_source(model_dir, run_dir, checkpoint_dir)
    from_file = _read_lines(input_path, "--input") if input_path else []
    if input_path and not from_file and not prompts:
        raise UserError(f"--input {input_path}: no prompts in it (one per line)")
    prompts = _utf8_args(prompts, "PROMPT") + from_file
    stop = [_unescape(s, "--stop") for s in _utf8_args(stop, "--stop")]
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm import tasks
    from kerasllm.export import client as client_lib

    if beams > 1 and num_samples > 1:
        raise UserError(f"--beams {beams} with --num-samples {num_samples}: beam search is deterministic and would "
                        "print the same text each time; drop --num-samples, or sample (--beams 1)")
    lm = tasks.open_client("generate", model=model_dir, run=run_dir, checkpoint=checkpoint_dir, beams=beams)
    prompts = prompts or [""]
    lm.warn_unknown_characters(prompts)
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    batch = [p for p in prompts for _ in range(num_samples)]
    if stream and len(batch) == 1 and beams == 1:
        click.echo(batch[0], nl=False)
        for piece in client_lib.stream(lm, batch[0], max_new_tokens, stop, seed, **settings):
            click.echo(piece, nl=False)
        click.echo()
        return
    for start in range(0, len(batch), BATCH):
        part = batch[start : start + BATCH]
        # Draws depend on (seed, position, row): each batch gets its own seed
        # so that samples 33.. do not repeat samples 1..
        part_seed = None if seed is None else (seed + start // BATCH) % 2**31
        out = lm.generate(part, max_new_tokens, seed=part_seed, beams=beams, **settings)
        for prompt, text in zip(part, out.texts):
            click.echo(prompt + client_lib.cut_at_stop(text, stop)[0])
            if len(batch) > 1:
                click.echo("-" * 40)


@cli.command(epilog="""\b
Examples:
  kerasllm score --model saved_models/shakespeare --input nbest.txt
  kerasllm score --run runs/shakespeare-char --input - < lines.txt
""")
@model_source
@click.argument("file", type=str, required=False)
@input_option("The lines to score; a FILE argument does the same")
@verbose_option
@click.pass_context
def score(ctx, model_dir, run_dir, checkpoint_dir, file, input_path):
    """Log-probability, token count and perplexity of each line of --input
    FILE (or a FILE argument; '-' = stdin) under a language model: a run or
    an exported model, exactly one of --run / --model.

    Prints one tab-separated line per input line, then the corpus perplexity
    (exp of the mean negative log-likelihood over all tokens) on a line
    starting with '#'.
    """
    _check_model_source(model_dir, run_dir, checkpoint_dir)
    if (file is None) == (input_path is None):
        raise UserError("give the lines to score with --input FILE or as a FILE argument (one of them)")
    what, path = ("FILE", file) if input_path is None else ("--input", input_path)
    lines = _read_lines(path, what)
    if not lines:
        raise UserError(f"{what} {path}: no lines to score")
    _after_tf_import(ctx.obj["verbose"])
    import math

    from kerasllm import tasks

    lm = tasks.open_client("score", model=model_dir, run=run_dir, checkpoint=checkpoint_dir)
    lm.warn_unknown_characters(lines)
    total_log_prob, total_tokens = 0.0, 0
    click.echo("log_prob\tnum_tokens\tperplexity")
    for start in range(0, len(lines), BATCH):
        out = lm.score(lines[start : start + BATCH])
        for log_prob, n, ppl in zip(out["log_prob"], out["num_tokens"], out["perplexity"]):
            click.echo(f"{log_prob:.4f}\t{n}\t{ppl:.4f}")
            total_log_prob += float(log_prob)
            total_tokens += int(n)
    corpus = math.exp(-total_log_prob / max(total_tokens, 1))
    click.echo(f"# corpus perplexity {corpus:.4f} over {total_tokens} tokens in {len(lines)} lines")


@cli.command(epilog="""\b
Examples:
  kerasllm export --run runs/shakespeare-char --name shakespeare
  kerasllm export --run runs/shakespeare-char --name shakespeare --version 7 --beam-search-width 8
  kerasllm export --run runs/spa-eng --name spa-eng --beams 4
  kerasllm export --checkpoint checkpoints/gpt2 --name gpt2
  kerasllm export --run runs/shakespeare-char --name shakespeare --format keras-hub
""")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="A run directory from `kerasllm train` (exactly one of --run / --checkpoint).")
@click.option("--checkpoint", "checkpoint_dir", default=None, type=str,
              help="A pretrained checkpoint exported as it is: a Hugging Face model directory, a keras-hub preset, "
                   "or a hf:// / kaggle:// handle (exactly one of --run / --checkpoint; docs/pretrained.md).")
@click.option("--name", default=None, help="Model name: the directory under --base-dir (default: the run's config "
                                           "name, or the checkpoint directory's name).")
@click.option("--version", "version", default=None, type=int, help="Version number (default: the next free one).")
@click.option("--base-dir", default="saved_models", show_default=True, type=click.Path(file_okay=False),
              help="Where model directories live (TF Serving's --model_base_path is <base-dir>/<name>).")
@click.option("--beams", default=1, show_default=True, type=click.IntRange(min=1, max=16),
              help="Translators: the beam width of a request that names none (its `beams` input; 1 = greedy), "
                   "as --beams in translate and evaluate.")
@click.option("--beam-search-width", default=4, show_default=True, type=click.IntRange(min=1, max=16),
              help="Language models: the fixed width of the beam_search signature "
                   "(`kerasllm generate --model ... --beams` must equal it).")
@click.option("--length-penalty", default=0.6, show_default=True, type=click.FloatRange(min=0.0),
              help="Translators: the default of the length_penalty input.")
@click.option("--format", "fmt", type=click.Choice(["tf-serving", "keras-hub"]), default="tf-serving",
              show_default=True, help="keras-hub: also write a keras-hub preset in <base-dir>/<name>/keras-hub/ "
                                      "(save_to_preset), which keras_hub.models.CausalLM.from_preset loads.")
@verbose_option
@quiet_option
@click.pass_context
def export(ctx, run_dir, checkpoint_dir, name, version, base_dir, beams, beam_search_width, length_penalty, fmt,
           quiet):
    """Write a run's best weights (or a pretrained checkpoint as it is) as a
    TF Serving SavedModel version: a language model (generate, beam_search,
    score, tokenize, detokenize), a translator (sources -> translations) or
    a question answerer.

    --beams is a beam width with default 1, as in every command; here it is
    a translator's default, since a translator's requests choose their
    width. A language model's beam_search signature has a width fixed at
    export: --beam-search-width.
    """
    if (run_dir is None) == (checkpoint_dir is None):
        raise UserError("give exactly one of --run (a run directory) or --checkpoint (a pretrained checkpoint)")
    if run_dir is not None:
        _check_run_dir(run_dir)
    else:
        _check_model_source(None, None, checkpoint_dir)
    width = _export_width(ctx, run_dir, checkpoint_dir, beams, beam_search_width)
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.export.runs import export_run

    with progress.silenced(quiet):
        click.echo(json.dumps(export_run(run_dir, name, base_dir, version, width, length_penalty, checkpoint_dir,
                                         keras_hub_preset=fmt == "keras-hub")))


def _export_width(ctx, run_dir: str | None, checkpoint_dir: str | None, beams: int, beam_search_width: int) -> int:
    """The one width `export_run` takes, as the run's task reads the two
    options (`Task.export_width`: a translator's default --beams, a language
    model's --beam-search-width); an option given for a task it does not
    apply to is a mistake, answered before TensorFlow loads."""
    from kerasllm import pretrained, tasks

    given = {name for name in ("beams", "beam_search_width")
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    try:
        if run_dir is None:  # a checkpoint's family's task (a handle is read once fetched)
            local = not pretrained.is_handle(checkpoint_dir)
            task = tasks.get(pretrained.inspect(checkpoint_dir, "--checkpoint").family.kind) if local else None
            if task is None:
                return beam_search_width
        else:
            task = tasks.for_run(run_dir)
    except UserError:
        return beam_search_width  # loading the run then says what is wrong with it
    return task.export_width(given, beams, beam_search_width)


@cli.command(epilog="""\b
Examples:
  kerasllm evaluate --run runs/shakespeare-char
  kerasllm evaluate --run runs/spa-eng --beams 4
  kerasllm evaluate --run runs/squad-qa
""")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A run directory from `kerasllm train`.")
@click.option("--split", default=None, metavar="NAME",
              help="The split to score, one the run's kind has: validation or train (the training split) for "
                   "language models and masked-LM pretraining (default validation); test, validation or train "
                   "for translation (default test); dev or validation for question answering (default dev).")
@click.option("--beams", default=1, show_default=True, type=click.IntRange(min=1, max=16),
              help="Translation: beam search width (1 = greedy).")
@click.option("--length-penalty", default=0.6, show_default=True, type=click.FloatRange(min=0.0),
              help="Translation: beam search length penalty (GNMT alpha).")
@data_dir_option
@verbose_option
@quiet_option
@click.pass_context
def evaluate(ctx, run_dir, split, beams, length_penalty, data_dir, quiet):
    """Held-out metrics of a run's best weights, as JSON: loss, perplexity and
    token accuracy; for translation also BLEU and chrF (sacrebleu), with the
    hypotheses written to <run>/eval/; for question answering SQuAD's Exact
    Match and F1, with the predictions written to <run>/predictions-<split>.json."""
    from kerasllm.evaluation import evaluate_run, resolve_split

    _, split = resolve_split(run_dir, split)  # a wrong split is answered before TensorFlow loads
    _after_tf_import(ctx.obj["verbose"])
    with progress.silenced(quiet):
        click.echo(json.dumps(evaluate_run(run_dir, data_dir, split, beams, length_penalty)))


@cli.command(epilog="""\b
Examples:
  kerasllm translate --run runs/spa-eng "Where is the station?"
  kerasllm translate --model saved_models/spa-eng --input sentences.txt --beams 4 --length-penalty 1.0
  echo "I like tea." | kerasllm translate --model saved_models/spa-eng --input -
""")
@model_source
@click.argument("sentences", nargs=-1)
@input_option("More sentences, one per line", alias="--file")
@click.option("--beams", default=1, show_default=True, type=click.IntRange(min=1, max=16), help="Beam search width (1 = greedy).")
@click.option("--length-penalty", default=0.6, show_default=True, type=click.FloatRange(min=0.0),
              help="Beam search: rank by log-prob / ((5 + length) / 6) ** this (0 = raw log-prob, favours short).")
@click.option("--max-new-tokens", default=None, type=click.IntRange(min=1),
              help="Longest translation in tokens (a source is cut to one token more). "
                   "[default and most: model.seq_len - 1]")
@hidden_alias("--max-length", "--max-new-tokens", "max_new_tokens", convert=lambda n: n - 1, type=click.IntRange(min=2))
@verbose_option
@click.pass_context
def translate(ctx, model_dir, run_dir, checkpoint_dir, sentences, input_path, beams, length_penalty, max_new_tokens):
    """Translate SENTENCES (and --input lines), one translation per line, with
    a translator: an exported one or a translation run's best weights,
    exactly one of --run / --model."""
    _check_model_source(model_dir, run_dir, checkpoint_dir)
    sentences = _utf8_args(sentences, "SENTENCE") + (_read_lines(input_path, "--input") if input_path else [])
    if not sentences:
        raise UserError("nothing to translate: give sentences as arguments or with --input")
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm import tasks

    translator = tasks.open_client("translate", model=model_dir, run=run_dir, checkpoint=checkpoint_dir)
    # The translator's max_length counts the decoder's start token, so
    # max_length - 1 tokens are new.
    limit = translator.max_length
    if max_new_tokens is not None and max_new_tokens > limit - 1:
        raise UserError(f"--max-new-tokens {max_new_tokens}: this model translates at most {limit - 1} tokens "
                        f"(model.seq_len={limit} less the start token)")
    max_length = limit if max_new_tokens is None else max_new_tokens + 1
    for start in range(0, len(sentences), BATCH):
        for text in translator.translate(sentences[start : start + BATCH], beams, length_penalty, max_length):
            click.echo(text)


@cli.command(epilog="""\b
Examples:
  kerasllm qa --run runs/squad-qa "Who wrote Hamlet?" --context "Hamlet is a tragedy by William Shakespeare."
  kerasllm qa --run runs/squad-qa "When was it written?" "Who is its hero?" --input passage.txt
  kerasllm export --run runs/squad-qa --name squad && kerasllm qa --model saved_models/squad "Who?" --context "..."
""")
@model_source
@click.argument("questions", nargs=-1, required=True)
@click.option("--context", default=None, help="The passage the answers come from.")
@input_option("The passage, read from this file instead of --context", alias="--context-file")
@verbose_option
@click.pass_context
def qa(ctx, model_dir, run_dir, checkpoint_dir, questions, context, input_path):
    """Answer QUESTIONS from a passage with a question answerer: an exported
    one or a QA run's best weights, exactly one of --run / --model. Prints
    one JSON line each with the answer, its score and its character offsets
    [start, end) in the passage."""
    _check_model_source(model_dir, run_dir, checkpoint_dir)
    if (context is None) == (input_path is None):
        raise UserError("give the passage with --context TEXT or --input FILE (one of them)")
    questions = _utf8_args(questions, "QUESTION")
    if input_path is not None:
        context = _read_text(input_path, "--input")
    else:
        _utf8_args([context], "--context", numbered=False)
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm import tasks

    client = tasks.open_client("qa", model=model_dir, run=run_dir, checkpoint=checkpoint_dir)
    for result in client.answer(questions, [context] * len(questions)):
        click.echo(json.dumps(result, ensure_ascii=False))


def _read_text(path: str, what: str) -> str:
    data = _read_bytes(path, what)
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is not text (offsets count from after it)
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path}: not UTF-8 text (invalid byte at offset {e.start})") from None


@cli.command(epilog="\b\nExample:\n  kerasllm prepare --config configs/shakespeare-wordpiece.yaml --out data/shakespeare-wp")
@config_option
@set_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New directory for the shards and tokenizer.")
@click.option("--shard-mb", default=64.0, show_default=True, type=click.FloatRange(min=0.01), help="Size at which a shard file is closed.")
@data_dir_option
@verbose_option
@quiet_option
@click.pass_context
def prepare(ctx, config_path, overrides, out, shard_mb, data_dir, quiet):
    """Tokenize a corpus once into TFRecord shards; train with --set data.prepared=OUT."""
    from kerasllm import config as config_lib
    from kerasllm import tasks

    config = config_lib.load(config_path, list(overrides))
    tasks.for_config(config).check_prepare(config_path)
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.data.prepare import prepare as run_prepare

    with progress.silenced(quiet):
        click.echo(json.dumps(run_prepare(config, out, data_dir, shard_mb)))


@cli.group("data-service", epilog="""\b
Example (three machines; the trainer names only the dispatcher):
  kerasllm data-service dispatcher --port 5050                                  # on host0
  kerasllm data-service worker --dispatcher host0:5050 --port 5051 --host host1  # on host1, host2, ...
  kerasllm train --config configs/shakespeare-char.yaml --set train.data_service=grpc://host0:5050
""")
def data_service():
    """Run tf.data service servers that tokenize training text for `train`."""


def _serve_forever(what: str, server) -> None:
    click.echo(f"{what}; Ctrl-C stops it", err=True)
    try:
        server.join()
    except KeyboardInterrupt:
        pass


@data_service.command("dispatcher", epilog="""\b
Example (on host0; workers and trainers then name host0:5050):
  kerasllm data-service dispatcher --port 5050 --work-dir /var/tmp/kerasllm-dispatcher
""")
@click.option("--port", required=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Journal the dispatcher's state here, so a restarted dispatcher keeps its jobs.")
@verbose_option
@click.pass_context
def data_service_dispatcher(ctx, port, work_dir):
    """Start the dispatcher: it hands out the training text's files to the workers."""
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.data.service import start_dispatcher

    server = _start_server(lambda: start_dispatcher(port, work_dir), port)
    _serve_forever(f"tf.data service dispatcher at grpc://{_hostname()}:{port}", server)


@data_service.command("worker", epilog="""\b
Example (on host1, with a dispatcher on host0:5050):
  kerasllm data-service worker --dispatcher host0:5050 --port 5051 --host host1
""")
@click.option("--dispatcher", required=True, help="The dispatcher's host:port.")
@click.option("--port", required=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--host", default=None, help="Name or address trainers reach this machine by (default: its hostname).")
@verbose_option
@click.pass_context
def data_service_worker(ctx, dispatcher, port, host):
    """Start a worker: it reads and tokenizes the files the dispatcher gives it."""
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.data.service import check_reachable, start_worker

    check_reachable(f"grpc://{dispatcher.removeprefix('grpc://')}", what="--dispatcher")
    server = _start_server(lambda: start_worker(dispatcher, port, host or _hostname()), port)
    _serve_forever(f"tf.data service worker at {host or _hostname()}:{port}, dispatcher {dispatcher}", server)


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _start_server(start, port: int):
    import socket

    import tensorflow as tf

    # gRPC listens with SO_REUSEPORT and would share a busy port silently.
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError as e:
            raise UserError(f"--port {port}: cannot listen there ({e.strerror or e}); choose a free port") from None
    try:
        return start()
    except (tf.errors.OpError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--port {port}: the server did not start ({first})") from None


@cli.command("data-report", epilog="""\b
Examples:
  kerasllm data-report --config configs/tiny-char.yaml --no-subwords
  kerasllm data-report --config configs/spa-eng-transformer.yaml --set data.cleaning.pii=mask --json
""")
@config_option
@set_option
@data_dir_option
@click.option("--subwords/--no-subwords", default=True, show_default=True,
              help="Also learn wordpiece and sentencepiece tokenizers on a sample, for their tokens per character "
                   "(seconds to a minute).")
@click.option("--json", "json_only", is_flag=True, help="Print only the JSON line, not the table.")
@verbose_option
@quiet_option
@click.pass_context
def data_report(ctx, config_path, overrides, data_dir, subwords, json_only, quiet):
    """Describe a config's corpus: documents, duplicates, personal data, tokens per character, scripts, overlap."""
    from kerasllm import config as config_lib

    config = config_lib.load(config_path, list(overrides))
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.data.report import data_report as make_report
    from kerasllm.data.report import format_report

    with progress.silenced(quiet):
        report = make_report(config, data_dir, subwords=subwords)
    if not json_only:
        click.echo(format_report(report))
    click.echo(json.dumps(report, ensure_ascii=False))


@cli.command("audit-memorization", epilog="""\b
Examples:
  kerasllm audit-memorization --run runs/tang-poems
  kerasllm audit-memorization --run runs/shakespeare-char --prefixes 500 --prefix-tokens 32 --suffix-tokens 32
""")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="A language-model run directory from `kerasllm train`.")
@click.option("--prefixes", default=200, show_default=True, type=click.IntRange(min=1),
              help="Prefixes drawn from each split (all blocks if a split has fewer).")
@click.option("--prefix-tokens", default=None, type=click.IntRange(min=1),
              help="Tokens of each prefix. [default: 50, or half of a shorter model.seq_len]")
@click.option("--suffix-tokens", default=None, type=click.IntRange(min=1),
              help="Tokens that must follow exactly. [default: 50, or half of a shorter model.seq_len]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Which blocks are drawn.")
@data_dir_option
@verbose_option
@quiet_option
@click.pass_context
def audit_memorization(ctx, run_dir, prefixes, prefix_tokens, suffix_tokens, seed, data_dir, quiet):
    """The standard extraction test of memorized training text: the share of
    prefixes of training blocks whose greedy continuation reproduces the next
    tokens exactly, and the same share for validation blocks beside it. A table,
    then one JSON line."""
    from kerasllm.evaluation.memorization import audit_memorization as audit, check_request

    check_request(run_dir, prefix_tokens, suffix_tokens)  # answered before TensorFlow loads
    _after_tf_import(ctx.obj["verbose"])
    with progress.silenced(quiet):
        result = audit(run_dir, data_dir, prefixes, prefix_tokens, suffix_tokens, seed)
    click.echo(f"{'split':<12}{'prefixes':>10}{'extracted':>11}{'rate':>9}")
    for split in ("train", "validation"):
        rate = result[f"{split}_rate"]
        click.echo(f"{split:<12}{result[f'{split}_prefixes']:>10}{result[f'{split}_extracted']:>11}"
                   f"{'-' if rate is None else f'{rate:.1%}':>9}")
    click.echo(json.dumps(result))


EXPLAIN_FORMATS = ("png", "html", "json")


@cli.command(epilog="""\b
Examples:
  kerasllm explain --run runs/shakespeare-char "ROMEO: What say you?"
  kerasllm explain --run runs/shakespeare-char "ROMEO:" --layers all --heads 0,1 --out romeo.html
  kerasllm explain --run runs/spa-eng "Where is the station?" --out station.png
  kerasllm explain --run runs/squad-qa "Who wrote Hamlet?" --context "Hamlet is a tragedy by William Shakespeare."
  kerasllm explain --run runs/shakespeare-char "To be, or not to be" --format json --out -
""")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="A run directory from `kerasllm train`: a language model, a translator or a question answerer.")
@click.argument("text")
@click.option("--format", "fmt", type=click.Choice(EXPLAIN_FORMATS), default=None,
              help="png: a picture; html: one self-contained page; json: the numbers. "
                   "[default: --out's extension, else png]")
@click.option("--out", default=None, metavar="FILE",
              help="Where to write it ('-' = stdout). [default: <run directory's name>-explain.<format>]")
@click.option("--layers", default=None, metavar="LIST",
              help="Attention pictures of these layers, counted from 0: e.g. 0,2 or all. [default: the last layer]")
@click.option("--heads", default=None, metavar="LIST",
              help="One attention picture per head, counted from 0: e.g. 0,1 or all. [default: one picture, "
                   "the mean of the heads]")
@click.option("--context", default=None, help="Question answering: the passage (TEXT is the question).")
@input_option("Question answering: the passage, read from this file instead of --context")
@verbose_option
@click.pass_context
def explain(ctx, run_dir, text, fmt, out, layers, heads, context, input_path):
    """Show what a run's model does with TEXT, as a picture (PNG), a page
    (HTML) or the numbers (JSON). By the run's kind:

    \b
    - language model: the surprisal of each token of TEXT (-log p in nats:
      the per-token log-probabilities `kerasllm score` adds up, negated)
      and, for a GPT, the self-attention over TEXT's start (an LSTM has none);
    - translator: the cross-attention of its translation of TEXT over TEXT's
      tokens (rows: output tokens, columns: source tokens) and each output
      token's surprisal;
    - question answering: TEXT is the question and --context / --input the
      passage; the start and end probability of each passage token, with
      the answer marked.

    --layers and --heads choose the attention pictures of a GPT or a
    translator (its decoder layers).
    """
    from kerasllm import config as config_lib
    from kerasllm import tasks

    _check_run_dir(run_dir)
    config = config_lib.load(os.path.join(run_dir, "config.yaml"))
    task = tasks.for_config(config)
    explainer = task.explaining
    if explainer is None:
        raise UserError(f"--run {run_dir}: {task.refuse('explain', run_dir)}")
    fmt, out = _explain_output(fmt, out, run_dir)
    text = _utf8_args([text], "TEXT", numbered=False)[0]
    passage = _explain_passage(explainer, context, input_path)
    attention = {}
    if layers is not None or heads is not None:
        if explainer.no_attention:
            from kerasllm.errors import warn

            warn(f"--layers/--heads: {explainer.no_attention}")
        else:
            attention = {"layers": _indices(layers, "--layers", config.model.num_layers),
                         "heads": _indices(heads, "--heads", config.model.num_heads)}
    _after_tf_import(ctx.obj["verbose"])
    from kerasllm.files import atomic_write_bytes
    from kerasllm.inference import explain as explain_lib
    from kerasllm.loaded_run import load_run

    lm = load_run(run_dir)
    explanation = task.explain(lm, text, *passage, **attention)
    data = explain_lib.explanation_bytes(explanation, fmt, title=f"{run_dir}: {text}")
    for note in getattr(explanation, "notes", []):
        click.echo(f"note: {note}", err=True)
    if out == "-":
        click.get_binary_stream("stdout").write(data)
        return
    atomic_write_bytes(out, data)
    click.echo(f"wrote {out}")


def _explain_output(fmt: str | None, out: str | None, run_dir: str) -> tuple:
    """(format, file): the format given, else --out's extension, else png;
    the file given, else <run directory's name>-explain.<format>."""
    suffix = os.path.splitext(out)[1].lstrip(".").lower() if out and out != "-" else ""
    if fmt is not None and suffix in EXPLAIN_FORMATS and suffix != fmt:
        raise UserError(f"--out {out} with --format {fmt}: give a .{fmt} file, or leave --format out")
    fmt = fmt or (suffix if suffix in EXPLAIN_FORMATS else "png")
    name = os.path.basename(os.path.abspath(run_dir)) or "run"
    return fmt, out or f"{name}-explain.{fmt}"


def _explain_passage(explainer, context: str | None, input_path: str | None) -> list:
    """The passage argument of a question-answering explanation ([] for
    the other kinds, which take none)."""
    if not explainer.passage:
        if context is not None or input_path is not None:
            raise UserError("--context/--input: only a question-answering run reads a passage; "
                            "TEXT is what is explained")
        return []
    if (context is None) == (input_path is None):
        raise UserError("give the passage with --context TEXT or --input FILE (one of them); TEXT is the question")
    if input_path is not None:
        return [_read_text(input_path, "--input")]
    return _utf8_args([context], "--context", numbered=False)


def _indices(value: str | None, option: str, count: int) -> list | None:
    """Comma-separated indices below `count`, or `all`; None when not given."""
    if value is None:
        return None
    if value.strip() == "all":
        return list(range(count))
    try:
        chosen = [int(part) for part in value.split(",")]
    except ValueError:
        chosen = []
    if not chosen or any(not 0 <= i < count for i in chosen):
        raise UserError(f"{option} {value}: the model has {count} {option[2:]}, numbered 0 to {count - 1}; "
                        "give some of them, comma-separated, or all")
    return list(dict.fromkeys(chosen))


_USER_ERROR_IN_TF = re.compile(r"UserError: (.+)")


def main(argv=None) -> None:
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="kerasllm", standalone_mode=False)
    except UserError as e:
        # Raised while TensorFlow traces a function, the message comes back
        # wrapped in AutoGraph's "in user code:" report; keep its one line.
        found = _USER_ERROR_IN_TF.findall(str(e))
        click.echo(f"error: {found[-1].strip() if found else e}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except Exception as e:
        if verbose:
            raise
        from kerasllm.training.trainer import TrainingStopped

        if isinstance(e, TrainingStopped):
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        # A UserError raised inside a tf.data generator reaches us wrapped in
        # a TensorFlow error; unwrap it to its one line.
        match = _USER_ERROR_IN_TF.search(str(e))
        if match:
            click.echo(f"error: {match.group(1).strip()}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
