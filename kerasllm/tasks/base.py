"""The task contract: what a kind of run (language model, translator,
question answerer, ...) provides so that every command works with it.

A task is one object, registered once under (model.kind, model.head) in
`kerasllm.task_registry`. Config validation, `train`, `evaluate`, `export`
and the commands that use a model (`generate`, `score`, `translate`, `qa`)
look the run's task up there and call it; none of them branches on the
kind. `docs/extending.md` walks through writing one.

Two protocols:

- `Task`: the registry entry. Stateless facts (which config keys it reads,
  which splits it is scored on, what its export is called) and the
  entry points: validate a config, open the training data, load a trained
  model and make its preprocessor (the one path between its strings and
  ids), evaluate, export, open the CLI's client.
- `Training`: what `Task.open_training` returns for one run: its data
  pipelines, model builder, loss and metrics, and samples. The trainer
  (`kerasllm.training.trainer`) drives it the same way for every task.

Example:
    from kerasllm import task_registry

    task = task_registry.get("seq2seq")
    task.splits              # ("test", "validation", "train")
    task.serving_kind        # "translator"
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Protocol, runtime_checkable


class Explaining(NamedTuple):
    """How `kerasllm explain` reads its arguments for a task, known before
    TensorFlow loads.

    Example:
        Explaining(passage=True, no_attention="a question-answering explanation shows the start and end "
                   "probabilities, not attention")
    """

    no_attention: str = ""
    """Why --layers/--heads do not apply ("" when they do)."""

    passage: bool = False
    """Whether TEXT is a question whose passage comes from --context / --input."""


@runtime_checkable
class Training(Protocol):
    """One run's training data, model, loss and samples, as the trainer uses them.

    Optional members, which the trainer looks up with `getattr`:
    `metrics()` (default: token accuracy), `initialise(model, print_fn)`
    (called on a new run with `train.init_from`; a task that has none
    refuses `train.init_from` in its `validate`) and
    `validation_explainer()` (model -> the explanation of one fixed
    validation example, drawn in TensorBoard at each epoch; None: none).
    """

    batches_per_pass: int
    """Training batches in one pass over the data (what an epoch is, unless
    `train.steps_per_epoch` or `train.eval_every_steps` says otherwise)."""

    tokens_per_batch: float
    """Tokens one batch holds, for the tokens/s figure in step lines and TensorBoard."""

    epoch_metrics: tuple
    """The metrics each validation prints and TensorBoard shows, `loss`
    first; `perplexity` means exp(loss) and is computed, not compiled."""

    weighted_metrics: bool
    """Whether the batches carry sample weights (padding or unmasked
    positions weighted out) that the metrics must use."""

    random_validation_examples: bool
    """Whether validation batches are drawn at random (e.g. masks), so the
    trainer caches one draw and every validation scores the same examples."""

    def build_model(self, dtype: Optional[str]) -> Any:
        """An unbuilt Keras model under the dtype policy `dtype` (None: the global one)."""

    def example_input(self) -> Any:
        """One small input batch, to build the model before weights are loaded."""

    def loss(self) -> Any:
        """The Keras loss (or one loss per output) to compile with."""

    def describe(self) -> str:
        """One clause for the trainer's "Model: ..." line: vocabulary, data sizes."""

    def train_batches(self, skip: int, strategy=None) -> Any:
        """The endless training `tf.data.Dataset` of (inputs, targets[,
        weights]), resumed after `skip` batches (exact resume); under a
        multi-worker `strategy`, see `input_sharding`."""

    def validation_batches(self) -> Any:
        """The validation `tf.data.Dataset`, one finite pass."""

    def input_sharding(self, strategy) -> str:
        """How several workers share the training data: `file`, `data`, or
        `none` (one machine)."""

    def sampler(self, model) -> Callable[[], list]:
        """A function that returns a few sample outputs of `model` as text
        lines, printed after each validation (an empty list: none)."""


@runtime_checkable
class Task(Protocol):
    """A kind of run: one registry entry that every command asks.

    Attributes are facts the commands read before TensorFlow loads; methods
    import what they need when called, so registering a task is cheap.

    Optional member: `load_checkpoint(config)` -> (model, tokenizer,
    target_tokenizer) of a pretrained checkpoint used as it is
    (`config.train.init_from`; `--checkpoint DIR`), for the tasks of
    pretrained families (`kerasllm.tasks.pretrained_language_model`).
    """

    kind: str
    """`model.kind` of its runs."""

    head: Optional[str]
    """`model.head` of its runs, or None when the kind has no heads."""

    description: str
    """What its runs are, in a message: "language-model", "translation"."""

    config_keys: tuple
    """Config keys this task reads that not every task reads (e.g.
    `model.doc_stride`); a key listed by some task applies only to the
    tasks that list it. A run's config.yaml, its TensorBoard hparams and its
    identity hold only the keys that apply to it."""

    splits: tuple
    """The splits `kerasllm evaluate --split` takes, its default first."""

    serving_kind: Optional[str]
    """The `kind` in its exports' kerasllm.json ("language_model"), or None
    when its runs have nothing to serve."""

    commands: tuple
    """The CLI commands that use its models (`generate`, `score`,
    `translate`, `qa`), the main one first; `refuse` answers the others."""

    explaining: Optional[Explaining]
    """How `kerasllm explain` treats its runs, or None when it cannot
    explain them (`refuse("explain", ...)` says why)."""

    def explain(self, loaded, text: str, *passage: str, layers=None, heads=None) -> Any:
        """The explanation of `text` (a question, with `passage`, when
        `explaining.passage`) by a loaded run: a `kerasllm.inference.explain`
        dataclass that renders as PNG, HTML or JSON."""

    def validate(self, config, where: str) -> None:
        """Raises a `UserError` naming `where` and the key for a config
        value this task cannot run with (after the checks every run gets)."""

    def report_corpus(self, config, data_dir) -> Any:
        """The text its runs train on, as `kerasllm data-report` and a new
        run's data_report.json read it (a `kerasllm.data.report.Corpus`), or
        None when the task reads its data as it is (nothing cleaned,
        deduplicated or split to report)."""

    def open_training(self, config, run, data_dir) -> Training:
        """The `Training` of a run: opens its data (training and saving its
        tokenizer in `run.tokenizer` on a first run) and counts batches."""

    def load_model(self, config, run) -> tuple:
        """(model, tokenizer, target_tokenizer) of a trained run, the model
        built and ready for `run.load_inference_weights`; target_tokenizer
        is the tokenizer of outputs (the same object for one vocabulary)."""

    def preprocessor(self, config, tokenizer, target_tokenizer=None) -> Any:
        """The run's preprocessor: the one object that turns its text into
        the model's inputs and the model's outputs back into text, for
        training, generation or answering, scoring, evaluation and export
        (`kerasllm.data.preprocessors` has the built-in tasks'). Made from
        the tokenizer(s) `load_model` returns (or the `Training` opened)
        and `config` (lengths, mask rate); `load_run` gives it to the
        commands as `LoadedRun.preprocessor`. A task without tokenizers
        gets None for them and returns its own."""

    def evaluate(self, run_dir: str, data_dir, split: str, beams: int = 1, length_penalty: float = 0.6) -> dict:
        """The metrics of a run's best weights on `split` (one of `splits`)
        as a flat dict; decoding options a task does not use are ignored."""

    def export(self, loaded, run_dir: Optional[str], name, base_dir: str, version, beams: int,
               length_penalty: float) -> dict:
        """Writes a TF Serving version of a loaded run (`LoadedRun`) and
        returns the export's summary (its path and kerasllm.json);
        `run_dir` is None for a pretrained checkpoint exported as it is."""

    def export_width(self, given: set, beams: int, beam_search_width: int) -> int:
        """The beam width `export` gets from the CLI's `--beams` /
        `--beam-search-width` (`given`: the ones the user set); an option
        that means nothing for this task is a `UserError`."""

    def open_client(self, command: str, model: Optional[str] = None, run: Optional[str] = None, **options) -> Any:
        """The client `command` (one of `commands`) uses, on an exported
        model directory or a run directory (exactly one of them), or on a
        pretrained checkpoint (`checkpoint=` in `options`) for a task that
        has `load_checkpoint`."""

    def refuse(self, command: str, source: str) -> str:
        """Why `command` (not one of `commands`) cannot use this task's
        model at `source`, and which command can: one line, no prefix."""

    def check_prepare(self, where: str) -> None:
        """Raises a `UserError` if `kerasllm prepare` cannot write shards for this task."""
