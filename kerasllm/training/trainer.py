"""`kerasllm train`: everything built under the strategy, then `model.fit`.

`train` checks the run directory and chooses the strategy; `_train` then
runs the phases of a sitting in order: open and lock the run directory
(`_open_run`), plan the batches (`_plan`: the task's data, training the
tokenizer on the first run and counting batches), build the model and
optimizer under the strategy, restoring the newest checkpoint if there is
one (`_build_or_restore`), fit (`_fit`), finish (`_finish`). The task
(`tasks.py`: language model or translation) supplies data, model, loss and
samples; the bookkeeping (steps, checkpoints, best weights, limits, NaN) is
`checkpoint.py`'s callbacks; everything else is shared.

Several workers (`multi_worker`): every worker runs this same function. The
chief (worker 0) owns the run directory; the others read it (to resume) but
write their checkpoints, logs and tokenizer copy to a temporary directory
that is removed at the end, and all workers check at start-up that they
train the same config with the same tokenizer.

Each Keras epoch of `fit` is one stretch between validations (`Plan`): an
epoch of data, or `train.eval_every_steps` steps of the endless stream.
Resuming mid-way: Keras starts every `fit` at an epoch boundary, so the
trainer finishes an interrupted stretch with a shorter `fit` call (the
remaining batches) and then runs the rest. The training stream is
deterministic and is resumed by skipping the batches already seen, so no
example is repeated or lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf
import yaml

from kerasllm import config as config_lib
from kerasllm import task_registry
from kerasllm.compat import apply_distribution_fixes, in_multi_worker_mode
from kerasllm.config import RunConfig
from kerasllm.errors import UserError
from kerasllm.models import finetune
from kerasllm.files import atomic_write_text
from kerasllm.training import callbacks as cb
from kerasllm.training import precision
from kerasllm.run_dir import RunDir
from kerasllm.training.checkpoint import RunState
from kerasllm.training.explain_callback import explain_callbacks
from kerasllm.training.optim import make_optimizer, schedule_of
from kerasllm.training.strategy import is_chief, make_strategy


class TrainingStopped(RuntimeError):
    """Training could not go on; the last checkpoint is kept (the CLI prints
    the message as one line and exits with 1)."""


class TrainingDiverged(TrainingStopped):
    """The loss became NaN/inf; the last good checkpoint is kept."""


class WorkerLost(TrainingStopped):
    """multi_worker: another worker stopped answering mid-run."""


# What a collective reports when a peer died or stopped answering.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError)


def _worker_lost(error: tf.errors.OpError, strategy, run: RunDir) -> WorkerLost:
    """One line from a failed collective: which peer, what happened, what to do."""
    text = error.message or str(error)
    cause = re.search(r"aborted by: (.+)", text)
    detail = (cause.group(1) if cause else text.strip().splitlines()[0]).strip()
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    who = "another worker"
    task = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", text)
    address = re.search(r"ipv[46]:([^\s,;]+:\d+)", text)
    if task and int(task.group(2)) < len(cluster.get(task.group(1), [])):
        who = f"{task.group(1)} {task.group(2)} at {cluster[task.group(1)][int(task.group(2))]}"
    elif address:
        who = next((f"{job} {i} at {a}" for job, members in cluster.items() for i, a in enumerate(members)
                    if a == address.group(1)), f"the worker at {address.group(1)}")
    return WorkerLost(
        f"training stopped: lost {who} ({detail}); the last checkpoint is kept in {run.checkpoints} — "
        "start every worker again with the same command to resume"
    )


@dataclass
class TrainResult:
    run_dir: str
    steps: int  # optimizer steps done in total
    best_val_loss: float
    stop_reason: str
    samples: list = field(default_factory=list)
    num_parameters: int = 0


def _check_run_dir(run: RunDir, config: RunConfig) -> None:
    if run.config.is_file():
        old = yaml.safe_load(run.config.read_text(encoding="utf-8")) or {}
        diffs = config_lib.diff_identity(old, config)
        if diffs:
            raise UserError(
                f"{run.root} belongs to a different config ({'; '.join(diffs[:3])}); "
                "use --run-dir for a new run, or restore those settings to resume it"
            )
    elif run.root.exists() and any(run.root.iterdir()):
        raise UserError(f"{run.root} exists and is not a kerasllm run directory; choose another --run-dir")


def _lock(run: RunDir):
    """Holds an exclusive lock on the run directory for this process's life;
    a second `train` on the same directory is refused instead of mixing
    checkpoints."""
    import fcntl

    handle = open(run.root / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{run.root} is being trained by another kerasllm process; wait for it or use --run-dir") from None
    return handle


WORKER_DIR_PREFIX = "kerasllm-worker-"


def _remove_stale_worker_dirs() -> None:
    """Removes the temporary directories of non-chief workers that were
    killed (a live worker holds the lock in its directory)."""
    import fcntl

    for path in Path(tempfile.gettempdir()).glob(WORKER_DIR_PREFIX + "*"):
        try:
            with open(path / ".lock") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use, or a worker starting up that has not locked it yet
        shutil.rmtree(path, ignore_errors=True)


def _check_workers_agree(strategy, own: RunDir) -> None:
    """Every worker must train the same config with the same tokenizer:
    a fingerprint of both is compared across workers before training."""
    digest = hashlib.sha256(own.config.read_bytes())
    for path in sorted(p for d in ("tokenizer", "tokenizer-target") for p in (own.root / d).glob("**/*") if p.is_file()):
        digest.update(path.name.encode() + path.read_bytes())
    value = tf.constant([float(int(digest.hexdigest()[:6], 16))])  # 24 bits: exact in float32
    everyone = strategy.gather(strategy.run(lambda: tf.identity(value)), axis=0).numpy()
    if (everyone != everyone[0]).any():
        raise UserError("the workers do not have the same config and tokenizer (their fingerprints differ); "
                        "start every worker with the same config file and --set options")


@dataclass(frozen=True)
class Plan:
    """A run's length in batches (a batch is 1/accum of an optimizer step).

    Each `period` of batches, between two validations, is one Keras epoch
    of `fit` over the endless training stream: an epoch of data, or
    `train.eval_every_steps` steps.
    """

    per_epoch: int  # one epoch: a pass over the training data, or train.steps_per_epoch
    total: int  # the whole run
    period: int  # between validations
    accum: int

    @property
    def epochs(self) -> int:
        return math.ceil(self.total / self.per_epoch)

    @property
    def periods(self) -> int:
        return math.ceil(self.total / self.period)

    @property
    def by_epoch(self) -> bool:
        return self.period == self.per_epoch

    def header(self, period: int) -> str:
        """The progress bar's title for Keras epoch `period` (0-based)."""
        if self.by_epoch:
            return f"Epoch {period + 1}/{self.periods}"
        first, last = period * self.period // self.accum + 1, min((period + 1) * self.period, self.total) // self.accum
        return f"Steps {first}-{last} of {self.total // self.accum}"

    def label(self, period: int, step: int) -> str:
        """How a validation line starts: `Epoch 3/10` or `Step 300/2400`."""
        return f"Epoch {period + 1}/{self.periods}" if self.by_epoch else f"Step {step // self.accum}/{self.total // self.accum}"


def _plan_batches(t, available: int) -> Plan:
    """The run's plan from the batches one pass over the training data
    gives; a batch is 1/grad_accum_steps of a step."""
    accum = t.grad_accum_steps
    # An automatic epoch is rounded down to whole executions and whole
    # accumulated steps (the few batches left over are simply next epoch's).
    unit = math.lcm(accum, t.steps_per_execution)
    if available < unit:
        unit = accum
    per_epoch = t.steps_per_epoch * accum if t.steps_per_epoch else available // unit * unit
    if per_epoch == 0:
        raise UserError(f"one pass over the training data is {available} batches, fewer than "
                        f"train.grad_accum_steps={accum}; lower it or train.batch_size")
    total = t.epochs * per_epoch
    if t.max_steps:
        total = min(total, t.max_steps * accum)
    return Plan(per_epoch, total, t.eval_every_steps * accum or per_epoch, accum)


def _steps_per_execution(t, plan: Plan, start: int) -> int:
    """`train.steps_per_execution`, reduced so that every validation,
    checkpoint and the run's end fall on an execution boundary (Keras runs
    whole executions and would otherwise overshoot them)."""
    n = t.steps_per_execution
    for boundary in (plan.period, plan.total, t.save_every_steps * t.grad_accum_steps, start):
        if boundary:
            n = math.gcd(n, boundary)
    return n


def compile_for_training(model, config: RunConfig, total_steps: int, steps_per_execution: int, task) -> None:
    """Compiles `model` as `train` configures it (under the strategy's scope);
    `total_steps` (optimizer steps) sizes the schedule."""
    t = config.train
    accuracy = getattr(task, "metrics", lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")])()
    # Batches with sample weights (label padding, unmasked positions) weight
    # the accuracy too.
    weighted = task.weighted_metrics
    model.compile(
        optimizer=make_optimizer(t, total_steps),
        loss=task.loss(),
        metrics=None if weighted else accuracy,
        weighted_metrics=accuracy if weighted else None,
        jit_compile=t.jit_compile,
        steps_per_execution=steps_per_execution,
    )
    model(task.example_input())


def build_training_model(config: RunConfig, vocabulary_size: int, total_steps: int, steps_per_execution: int = 1):
    """A language model compiled for training (bench/train_throughput.py)."""
    t = config.train
    dtype = precision.dtype_policy(t.precision, t.strategy)
    model = task_registry.for_model(config.model).build(config.model, vocabulary_size, dtype)
    model.compile(
        optimizer=make_optimizer(config.train, total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.train.jit_compile,
        steps_per_execution=steps_per_execution,
    )
    model(np.zeros((1, config.model.seq_len), "int32"))
    return model


def train(
    config: RunConfig,
    run_dir: Optional[str] = None,
    data_dir: Optional[str] = None,
    verbose: int = 1,
    print_fn: Callable[[str], None] = print,
) -> TrainResult:
    t = config.train
    run = RunDir(run_dir or Path("runs") / config.name)
    _check_run_dir(run, config)
    if t.strategy == "multi_worker" and t.time_limit_minutes:
        raise UserError("train.time_limit_minutes: not with multi_worker (each worker's clock would stop it at "
                        "another step); use train.max_steps")
    strategy = make_strategy(t)
    if t.strategy != "auto":
        apply_distribution_fixes()
    keras.utils.set_random_seed(t.seed)
    if is_chief(strategy):
        return _train(config, run, run, strategy, data_dir, verbose, print_fn)
    _remove_stale_worker_dirs()
    own = RunDir(tempfile.mkdtemp(prefix=WORKER_DIR_PREFIX))
    try:
        if run.latest() is not None:  # resuming: use the chief's tokenizer and counts
            for path in (run.config, run.data):
                shutil.copy2(path, own.root / path.name)
            shutil.copytree(run.root / "tokenizer", own.root / "tokenizer")
            if (run.root / "tokenizer-target").is_dir():
                shutil.copytree(run.root / "tokenizer-target", own.root / "tokenizer-target")
        return _train(config, run, own, strategy, data_dir, verbose, print_fn)
    finally:
        shutil.rmtree(own.root, ignore_errors=True)


def _precision_note(t, chosen: str) -> str:
    """The precision a run trains in, and why when `auto` chose it."""
    if t.precision != "auto":
        return chosen
    why = "native bfloat16 on this machine" if chosen == "mixed_bfloat16" else "no native bfloat16 on this machine"
    return f"{chosen} (precision auto: {why})"


@contextlib.contextmanager
def _removed_on_error(root: Path):
    """A new run directory goes away again if its setup fails: a mistake
    leaves no half-made run behind (the next try would take it as its own)."""
    try:
        yield
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def diverged_message(reason: Optional[str], run: RunDir, chief: bool) -> str:
    """What a run that went NaN/inf says about its checkpoints. Only the chief
    saves them; another worker may not see the chief's files, so it does not
    claim there are none."""
    if not chief:
        kept = f"checkpoints are the chief worker's to keep (in {run.checkpoints} on its machine; see its message)"
    elif run.latest() is not None:
        kept = f"the last good checkpoint is kept in {run.checkpoints}"
    else:
        kept = "it had saved no checkpoint yet, so the next run starts over"
    return (f"training stopped: {reason or 'weights became NaN/inf'}; {kept} — lower "
            "train.learning_rate or raise train.warmup_steps, then run again")


@dataclass(frozen=True)
class _Sitting:
    """What every phase of one `train` call (a sitting) reads."""

    config: RunConfig
    run: RunDir  # the run directory checkpoints are resumed from
    own: RunDir  # where this worker writes: `run`, except on non-chief workers
    strategy: tf.distribute.Strategy
    data_dir: Optional[str]
    verbose: int
    print_fn: Callable[[str], None]

    @property
    def chief(self) -> bool:
        return self.own is self.run

    @property
    def multi_worker(self) -> bool:
        return in_multi_worker_mode(self.strategy)


def _train(config, run: RunDir, own: RunDir, strategy, data_dir, verbose, print_fn) -> TrainResult:
    """Training proper, in its phases: open and lock the run directory, plan
    the batches, build the model (restoring the newest checkpoint), fit,
    finish. `run` is the run directory checkpoints are resumed from; `own`
    is where this worker writes (the same, except on non-chief workers)."""
    s = _Sitting(config, run, own, strategy, data_dir, verbose, print_fn)
    # A run directory this call creates goes away again if its setup fails.
    created = not run.root.exists()
    discard_on_error = (lambda: _removed_on_error(run.root)) if created and s.chief else contextlib.nullcontext
    with discard_on_error():
        lock = _open_run(config, own, write_config_first=created or not s.chief)  # held until training ends
        task, plan = _plan(s)
    state = run.load_state()
    with discard_on_error():  # e.g. a model that cannot be built or initialised
        model, chosen = _build_or_restore(s, task, plan, state)
    sample = task.sampler(model) if s.chief else (lambda: [])
    complete = _already_complete(config.train, state, plan, run, print_fn)
    if complete:
        return TrainResult(str(run.root), state.step // plan.accum, state.best_val_loss, complete, sample(),
                           model.count_params())
    run_state, samples = _fit(s, task, plan, model, state, chosen, sample)
    return _finish(s, model, run_state, lambda: samples.last or sample())


def _open_run(config, own: RunDir, write_config_first: bool):
    """Phase 1: creates and locks this worker's run directory; returns the
    lock (held while it is referenced)."""
    own.root.mkdir(parents=True, exist_ok=True)
    lock = _lock(own)
    # A new run writes its config first, so a run killed while it prepares
    # its data is still recognised as this run next time; an existing run
    # keeps its config until the new values are known to work.
    if write_config_first:
        atomic_write_text(own.config, config.to_yaml())
    return lock


def _plan(s: _Sitting):
    """Phase 2: opens the task's data (training the tokenizer and counting
    batches on a first run) and plans the run's batches; then the config is
    known to work and is written, and the workers check that they agree."""
    task = task_registry.for_model(s.config.model).open_training(s.config, s.own, s.data_dir)
    plan = _plan_batches(s.config.train, task.batches_per_pass)
    atomic_write_text(s.own.config, s.config.to_yaml())
    if s.multi_worker:
        _check_workers_agree(s.strategy, s.own)
    return task, plan


def _build_or_restore(s: _Sitting, task, plan: Plan, state):
    """Phase 3: the compiled model under the strategy, with the saved
    step's weights and optimizer state, or `train.init_from`'s weights on a
    new run, and its LoRA adapters or frozen weights (`finetune.apply`);
    says what it built and how much of it trains. Returns the model and
    its precision."""
    t = s.config.train
    steps_per_execution = _choose_steps_per_execution(t, plan, state.step, s.strategy, s.print_fn)
    chosen = precision.resolve(t.precision, t.strategy)  # float32 or mixed_bfloat16
    with s.strategy.scope():
        model = task.build_model(precision.dtype_policy(chosen))
        compile_for_training(model, s.config, plan.total // plan.accum, steps_per_execution, task)
        if t.init_from and not state.step:
            task.initialise(model, s.print_fn)
        # LoRA and frozen weights: on the weights the run starts from, before
        # the optimizer is built for what trains and a checkpoint (which holds
        # the adapters) is loaded.
        finetune.apply(model, t)
        if state.step:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(str(s.run.latest() / "weights.weights.h5"))
    trained = finetune.describe(model)  # "" when every weight trains
    s.print_fn(f"Model: {s.config.model.kind}, {model.count_params():,} parameters"
               f"{f' ({trained})' if trained else ''}; {task.describe()}; "
               f"{s.strategy.num_replicas_in_sync} replica(s); {_precision_note(t, chosen)}")
    sharding = task.input_sharding(s.strategy)
    if sharding != "none":
        s.print_fn("Input: each worker reads its own shard files (FILE sharding)" if sharding == "file" else
                   "Input: each worker keeps its share of every global batch (DATA sharding)")
    return model, chosen


def _fit(s: _Sitting, task, plan: Plan, model, state, chosen: str, sample):
    """Phase 4: fits from the saved step to the end of the run, with the
    bookkeeping (`RunState`) and display callbacks; returns both the
    `RunState` and the text samples callback."""
    t = s.config.train
    state.finished, state.stop_reason = False, ""
    if state.step:
        s.print_fn(f"Resuming {s.run.root} at step {state.step // plan.accum} "
                   f"(epoch {state.step // plan.per_epoch + 1}/{plan.epochs})")
    else:
        cb.write_hparams(str(s.own.logs), s.config.name, cb.run_hparams(s.config, chosen))
        if s.chief:
            cb.write_data_report(s.config, s.own, s.data_dir, s.print_fn)
    writer = tf.summary.create_file_writer(str(s.own.logs / "train"))
    run_state = RunState(
        s.own, state, save_every=t.save_every_steps * plan.accum, max_batches=plan.total, per_epoch=plan.per_epoch,
        patience=t.early_stopping_patience, time_limit_s=t.time_limit_minutes * 60,
        schedule=schedule_of(model.optimizer), period=plan.period, keep=t.keep_checkpoints,
    )
    samples = cb.TextSamples(writer, run_state, sample)
    callbacks, fit_verbose = _callbacks(s.config, task, plan, s.own, writer, run_state, samples, s.verbose, s.print_fn)
    try:
        _fit_run(model, task, plan, run_state, s.strategy, _validation_batches(task, t), callbacks, fit_verbose)
    except _PEER_ERRORS as e:
        if not s.multi_worker:
            raise
        raise _worker_lost(e, s.strategy, s.run) from None
    finally:
        writer.close()
    return run_state, samples


def _finish(s: _Sitting, model, run_state: RunState, samples: Callable[[], list]) -> TrainResult:
    """Phase 5: the result of the run (with `samples()`, the last text
    samples), or `TrainingDiverged` (before sampling from NaN weights);
    each worker of several prints a digest of its weights (they must be
    equal)."""
    state = run_state.state
    if run_state.diverged:
        raise TrainingDiverged(diverged_message(state.stop_reason, s.run, s.chief))
    accum = s.config.train.grad_accum_steps
    reason = state.stop_reason or f"reached {state.step // accum} steps"
    if s.multi_worker:
        resolver = s.strategy.cluster_resolver
        s.print_fn(f"{resolver.task_type} {resolver.task_id}: weights sha256 {weights_digest(model)[:16]}")
    return TrainResult(str(s.run.root), state.step // accum, state.best_val_loss, reason, samples(), model.count_params())


def _choose_steps_per_execution(t, plan: Plan, start: int, strategy, print_fn) -> int:
    """Steps per execution for this sitting, saying why when it is not
    `train.steps_per_execution`."""
    steps_per_execution = _steps_per_execution(t, plan, start)
    if steps_per_execution > 1 and in_multi_worker_mode(strategy):
        # Keras' multi-step loop fails under MultiWorkerMirroredStrategy
        # ("You must feed a value for placeholder tensor" in its has_next).
        print_fn(f"Running 1 step per execution instead of {t.steps_per_execution}: Keras' multi-step loop "
                 "does not work with multi_worker")
        return 1
    if steps_per_execution != t.steps_per_execution:
        print_fn(
            f"Running {steps_per_execution} step(s) per execution instead of {t.steps_per_execution}, "
            "so that validations, checkpoints and the last step fall on execution boundaries"
        )
    return steps_per_execution


def _already_complete(t, state, plan: Plan, run: RunDir, print_fn) -> str:
    """Why a run has nothing left to train (printed with what to raise to go
    on), or "" when it has."""
    stopped_early = (
        state.stop_reason.startswith("early stopping")
        and t.early_stopping_patience
        and state.epochs_without_improvement >= t.early_stopping_patience
    )
    timed_out = bool(t.time_limit_minutes) and state.train_seconds >= t.time_limit_minutes * 60
    if not (state.step >= plan.total or stopped_early or timed_out):
        return ""
    reason = state.stop_reason or f"reached {state.step // plan.accum} steps"
    more = ["train.epochs or train.max_steps"] if state.step >= plan.total else []
    more += ["train.early_stopping_patience (0 turns early stopping off)"] if stopped_early else []
    more += [f"train.time_limit_minutes ({state.train_seconds / 60:.1f} minutes used; 0 = no limit)"] if timed_out else []
    print_fn(f"{run.root}: training already complete ({reason}); raise {', and '.join(more)}, to continue")
    return reason


def _validation_batches(task, t):
    val = task.validation_batches()
    if t.validation_steps:
        # Keras keeps one validation iterator for the whole fit and, given
        # validation_steps, goes on where the last validation stopped, so
        # every epoch would score other batches. A dataset of just those
        # batches is read whole, the same ones each time.
        val = val.take(t.validation_steps)
    if task.random_validation_examples:
        val = val.cache()  # drawn once (e.g. masked-LM masks): every validation scores the same examples
    return val


def _callbacks(config, task, plan: Plan, own: RunDir, writer, run_state, samples, verbose, print_fn):
    """The callbacks of `fit`, and the `verbose` to give it.

    On a terminal (`verbose` and stdout a TTY) Keras' progress bar; in a
    log file or pipe, where its redrawn line would leave carriage returns
    and colour codes, one plain line per `train.log_every_steps`; neither
    with `verbose=0` (`--quiet`). The validation lines print in every case.
    """
    bar = bool(verbose) and getattr(sys.stdout, "isatty", lambda: False)()
    step_lines = print_fn if verbose and not bar else None
    perplexity = "perplexity" in task.epoch_metrics
    # Under eval_every_steps the epoch_* scalars are keyed by the step that
    # step/* and the samples use (batches, as in RunState), not by period.
    by_step = (lambda epoch: epoch) if plan.by_epoch else (lambda epoch: run_state.state.step)
    # Order matters: the progress bar closes its line before the epoch
    # summary prints, and the summary adds perplexities before TensorBoard
    # writes the epoch's scalars.
    callbacks = [run_state] + ([cb.Progress(plan.header)] if bar else []) + [
        cb.EpochSummary(lambda epoch: plan.label(epoch, run_state.state.step), task.epoch_metrics, print_fn),
        cb.StepScalars(writer, run_state, task.tokens_per_batch, config.train.log_every_steps * plan.accum,
                       perplexity=perplexity, print_fn=step_lines, total=plan.total, accum=plan.accum),
        samples,
        *explain_callbacks(config, task, writer, run_state),  # pictures of one validation example
        cb.EpochScalars(str(own.logs), by_step),
    ]
    return callbacks, 1 if bar else 0


def _fit_run(model, task, plan: Plan, run_state, strategy, val, callbacks, verbose) -> None:
    """Fits from the saved step to the end of the run: first what is left of
    an interrupted period (a shorter `fit`), then the remaining periods."""
    state = run_state.state

    def fit(first_epoch: int, last_epoch: int, steps: int) -> None:
        data = task.train_batches(state.step, strategy)
        # keras-hub's PipelineModel.fit re-wraps a dataset it does not know
        # with Dataset.from_tensor_slices, which fails for a tf.distribute
        # DistributedDataset (FILE sharding); our models carry no
        # preprocessor, so PipelineModel.fit would only pass through to
        # Keras' own fit, which is called directly then.
        run_fit = keras.Model.fit if isinstance(data, tf.distribute.DistributedDataset) else type(model).fit
        with warnings.catch_warnings():
            # Validation sets have no known length (packing, windows), so
            # Keras learns it when the first validation ends and then warns
            # that the input "ran out of data; interrupting training".
            # Training data repeats forever and cannot run out.
            warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
            # keras-hub's BertBackbone always builds a [CLS] pooler that
            # neither the masked-LM nor the span head reads.
            warnings.filterwarnings("ignore", category=UserWarning, message=(
                r"Gradients do not exist for variables \['pooled_dense/kernel', 'pooled_dense/bias'\]"))
            run_fit(
                model, data, validation_data=val,
                initial_epoch=first_epoch, epochs=last_epoch, steps_per_epoch=steps,
                callbacks=callbacks, verbose=verbose,
            )

    period, done_in_period = divmod(state.step, plan.period)
    if done_in_period:  # finish the interrupted period first
        fit(period, period + 1, min(plan.period, plan.total - period * plan.period) - done_in_period)
        period += 1
    if not run_state.diverged and not state.finished and state.step < plan.total:
        fit(period, plan.periods, plan.period)


def weights_digest(model) -> str:
    """sha256 of every weight's bytes: equal on workers that stayed in sync."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
