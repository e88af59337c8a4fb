"""Run-directory checkpoints: atomic, never replaced in place, locked."""

import json
import os
import stat

import keras
import numpy as np
import pytest

from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.training.checkpoint import RunDir, TrainingState
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
