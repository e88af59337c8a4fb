"""A run directory's layout and the training state its checkpoints carry.

    runs/<name>/
      config.yaml          the resolved config of the run
      tokenizer/           the trained tokenizer (a pretrained run: the checkpoint's)
      architecture.json    a pretrained run: its keras-hub backbone's config
      data.json            block counts and steps per epoch (computed once)
      checkpoints/
        latest             name of the newest complete checkpoint directory
        step-000200/       weights.weights.h5 (model + optimizer), state.json
        best.weights.h5    the weights with the lowest validation loss
        clock.json         training seconds spent (time-limited runs)
      logs/                TensorBoard event files

Every write goes to a temporary name first and is renamed into place: a
checkpoint directory is complete before `latest` points at it, so `kill -9`
at any moment leaves the previous checkpoint usable.

Why here, at the bottom of the package: data (tokenizer copies), training,
evaluation, export and inference all read or write run directories. This
module imports neither TensorFlow nor Keras (it is handed built models to
save or load), so the cheap paths of the CLI can use it, and it imports
nothing of kerasllm above `files`, so every layer can import it without a
cycle. Loading a trained run, which needs the models and tokenizers, is
`kerasllm.loaded_run`'s.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from kerasllm.files import atomic_write_text


@dataclass
class TrainingState:
    """What a checkpoint records besides the weights (its `state.json`).

    Example:
        RunDir("runs/tiny").load_state().step  # batches trained so far
    """

    step: int = 0  # batches done (optimizer steps x grad_accum_steps)
    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_step: int = -1
    epochs_without_improvement: int = 0  # validations, under train.eval_every_steps
    finished: bool = False
    stop_reason: str = ""
    # Seconds of training up to this save, over every sitting: a resumed run
    # gets what is left of train.time_limit_minutes, not the whole again.
    train_seconds: float = 0.0

    @classmethod
    def from_json(cls, text: str) -> "TrainingState":
        values = json.loads(text)
        values["best_val_loss"] = float(values.get("best_val_loss", math.inf))
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


class RunDir:
    """Paths of one run directory, and its checkpoints.

    Args:
        root: the run directory (it need not exist yet).

    Example:
        run = RunDir("runs/tiny")
        run.latest()  # runs/tiny/checkpoints/step-000000040, or None
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.tokenizer = self.root / "tokenizer"
        self.data = self.root / "data.json"
        self.architecture = self.root / "architecture.json"
        self.checkpoints = self.root / "checkpoints"
        self.latest_pointer = self.checkpoints / "latest"
        self.best_weights = self.checkpoints / "best.weights.h5"
        self.clock = self.checkpoints / "clock.json"
        self.logs = self.root / "logs"

    def latest(self) -> Path | None:
        """The checkpoint `latest` names; if that is unreadable, the newest
        complete one (a checkpoint directory is complete once renamed)."""
        if self.latest_pointer.is_file():
            path = self.checkpoints / self.latest_pointer.read_text().strip()
            if (path / "state.json").is_file():
                return path
        complete = sorted(p for p in self.checkpoints.glob("step-*") if (p / "state.json").is_file())
        return complete[-1] if complete else None

    def load_state(self) -> TrainingState:
        latest = self.latest()
        if latest is None:
            return TrainingState()
        return TrainingState.from_json((latest / "state.json").read_text())

    def spent_seconds(self) -> float:
        """Training seconds the run's clock last recorded (0 if none): it runs
        ahead of the checkpoints, so a crash does not give back the time since
        the last save."""
        try:
            return float(json.loads(self.clock.read_text())["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def record_spent_seconds(self, seconds: float) -> None:
        atomic_write_text(self.clock, json.dumps({"train_seconds": seconds}))

    def inference_weights(self) -> Path | None:
        """Best weights if validation ran, else the newest checkpoint's."""
        if self.best_weights.is_file():
            return self.best_weights
        latest = self.latest()
        return latest / "weights.weights.h5" if latest else None

    def load_inference_weights(self, model) -> None:
        """Loads `inference_weights()` into a built `model`. A checkpoint's
        file also holds optimizer state, which inference has no use for, so
        Keras' warning that it skipped it is silenced."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(self.inference_weights()))

    def save_checkpoint(self, model, state: TrainingState, keep: int = 2) -> Path:
        """Saves `model`'s weights (with its optimizer's) and `state` as a new
        complete checkpoint, points `latest` at it, and keeps the newest
        `keep` checkpoints."""
        name = f"step-{state.step:09d}"
        final = self.checkpoints / name
        if final.exists():  # never replace a complete checkpoint in place
            name = f"step-{state.step:09d}.{len(list(self.checkpoints.glob(name + '*')))}"
            final = self.checkpoints / name
        tmp = self.checkpoints / f".tmp-{os.getpid()}-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_weights(str(tmp / "weights.weights.h5"))
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, final)
        atomic_write_text(self.latest_pointer, name)
        old = sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir() and p.name != name)
        for path in old[: max(len(old) - (keep - 1), 0)]:
            shutil.rmtree(path, ignore_errors=True)
        return final
