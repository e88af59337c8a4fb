"""Run-directory checkpoints: atomic, never replaced in place, locked."""

import json
import os
import stat

import keras
import numpy as np
import pytest

from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.run_dir import RunDir, TrainingState
from kerasllm.training.checkpoint import RunState
from kerasllm.training.trainer import _lock


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    return model


def test_saving_the_same_step_twice_keeps_both_complete(tmp_path):
    run = RunDir(tmp_path)
    model = _model()
    first = run.save_checkpoint(model, TrainingState(step=20))
    second = run.save_checkpoint(model, TrainingState(step=20, epoch=1))
    assert first != second and first.is_dir() and second.is_dir()
    assert run.latest() == second
    assert json.loads((second / "state.json").read_text())["epoch"] == 1


def test_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    model = _model()
    run.save_checkpoint(model, TrainingState(step=10))
    run.save_checkpoint(model, TrainingState(step=20))
    run.latest_pointer.write_text("step-000000099")  # points at nothing
    (tmp_path / "checkpoints" / ".tmp-1-step-000000030").mkdir()  # an unfinished save
    assert run.latest().name == "step-000000020"
    assert run.load_state().step == 20
    # only the newest `keep` checkpoints stay
    run.save_checkpoint(model, TrainingState(step=30))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-000000020", "step-000000030"]


def test_atomic_write_text_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_run_directory_is_locked_while_training(tmp_path):
    run = RunDir(tmp_path)
    held = _lock(run)
    with pytest.raises(UserError, match="being trained by another kerasllm process"):
        _lock(run)
    held.close()
    _lock(run).close()


def test_early_stopping_counts_validations_under_eval_every_steps(tmp_path):
    """With a validation every 10 batches of a 100-batch epoch, patience 2
    stops after two whole periods without a better loss (a period cut short
    does not count), and the run's epoch count stays that of the data."""
    run_state = RunState(RunDir(tmp_path), TrainingState(), save_every=10**9, max_batches=1000, per_epoch=100,
                         patience=2, period=10, keep=1)
    run_state.set_model(_model())
    run_state.model.stop_training = False

    def period(batches: int, val_loss: float) -> None:
        run_state.on_epoch_begin(0)
        for batch in range(batches):
            run_state.on_train_batch_end(batch, {"loss": 1.0})
        run_state.on_epoch_end(0, {"val_loss": val_loss})

    period(10, 2.0)
    period(10, 2.5)
    period(4, 2.5)  # cut short (a time limit): validated, not counted
    assert not run_state.model.stop_training and run_state.state.epochs_without_improvement == 1
    period(6, 2.1)
    assert run_state.model.stop_training and run_state.state.step == 30
    assert run_state.state.stop_reason == "early stopping: validation loss has not improved for 2 validations"
    assert run_state.state.best_step == 10 and run_state.state.epoch == 0
    # keep=1: only the newest checkpoint stays.
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-000000030"]


def test_the_checkpoint_where_a_run_stops_records_the_validation_and_the_stop(tmp_path):
    """`training_callbacks`' order: the validation's bookkeeping and the
    stop (early stopping, then `finished`) come before the save that records them."""
    run = RunDir(tmp_path)
    run_state = RunState(run, TrainingState(), save_every=10**9, max_batches=1000, per_epoch=100,
                         patience=1, period=10)
    run_state.set_model(_model())
    run_state.model.stop_training = False
    for val_loss in (2.0, 2.5):
        run_state.on_epoch_begin(0)
        for batch in range(10):
            run_state.on_train_batch_end(batch, {"loss": 1.0})
        run_state.on_epoch_end(0, {"val_loss": val_loss})
    assert run_state.model.stop_training
    saved = run.load_state()
    assert (saved.step, saved.finished, saved.best_step, saved.best_val_loss) == (20, True, 10, 2.0)
    assert saved.stop_reason == "early stopping: validation loss has not improved for 1 validations"
    assert run.best_weights.is_file()


def test_a_nan_loss_on_a_save_step_saves_nothing(tmp_path):
    """The NaN guard runs before checkpointing: the step whose loss is NaN
    is not saved, nor is the end of its epoch."""
    run = RunDir(tmp_path)
    run_state = RunState(run, TrainingState(), save_every=5, max_batches=1000, per_epoch=100, period=10)
    run_state.set_model(_model())
    run_state.model.stop_training = False
    run_state.on_epoch_begin(0)
    for batch in range(4):
        run_state.on_train_batch_end(batch, {"loss": 1.0})
    run_state.on_train_batch_end(4, {"loss": float("nan")})  # step 5: a save step
    run_state.on_epoch_end(0, {"val_loss": 1.0})
    assert run_state.diverged and run_state.model.stop_training
    assert run_state.state.stop_reason == "loss became nan at step 5" and not run_state.state.finished
    assert run.latest() is None and not run.best_weights.exists()
