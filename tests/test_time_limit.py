"""A time-limited run anneals by its deadline and keeps its budget across
sittings (RunState with a fake clock; no training)."""

from types import SimpleNamespace

import pytest

from kerasllm.config import TrainConfig
from kerasllm.training import checkpoint
from kerasllm.run_dir import RunDir, TrainingState
from kerasllm.training.checkpoint import RunState
from kerasllm.training.optim import make_schedule


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(checkpoint, "time", fake)
    return fake


def lr(schedule, step):
    return float(schedule(step))


def make(tmp_path, state, schedule, limit_s):
    run_state = RunState(RunDir(tmp_path), state, save_every=10**9, max_batches=10_000, per_epoch=10_000,
                         time_limit_s=limit_s, schedule=schedule)
    run_state.set_model(SimpleNamespace(stop_training=False))
    run_state.on_epoch_begin(0)
    return run_state


def train_config(**changes):
    return TrainConfig(**{"learning_rate": 1.0, "min_learning_rate": 0.1, "warmup_steps": 0, **changes})


def test_the_decay_ends_at_the_step_the_time_limit_stops(tmp_path, clock):
    schedule = make_schedule(train_config(), total_steps=10_000)
    state = TrainingState()
    run_state = make(tmp_path, state, schedule, limit_s=100)
    assert lr(schedule, 190) == pytest.approx(0.999, abs=1e-3)  # as planned: 10,000 steps
    clock.now += 10  # the first execution, tracing included
    run_state.on_train_batch_end(9)
    while not run_state.model.stop_training:  # then 2 batches a second
        clock.now += 0.5
        run_state.on_train_batch_end(state.step)
    assert state.step == 190 and state.stop_reason == "time limit reached at step 190"
    # The learning rate reached its floor when the clock stopped the run.
    assert lr(schedule, 189) == pytest.approx(0.1, abs=1e-3) and lr(schedule, 95) == pytest.approx(0.55, abs=1e-3)
    assert schedule.get_config()["decay_steps"] == 10_000


def test_warmup_is_kept_and_the_planned_end_is_never_passed(tmp_path, clock):
    schedule = make_schedule(train_config(warmup_steps=20), total_steps=100)
    run_state = make(tmp_path, TrainingState(), schedule, limit_s=3600)
    clock.now += 1
    run_state.on_train_batch_end(0)
    clock.now += 1
    run_state.on_train_batch_end(1)  # 1 batch a second: the hour would allow 3,600
    assert lr(schedule, 10) == pytest.approx(0.5) and lr(schedule, 20) == pytest.approx(1.0)
    assert lr(schedule, 60) == pytest.approx(0.55, abs=1e-3) and lr(schedule, 100) == pytest.approx(0.1)


def test_a_resumed_run_gets_what_is_left_of_its_time(tmp_path, clock):
    schedule = make_schedule(train_config(), total_steps=10_000)
    # 120 steps in the first 60 seconds: 2 a second, so 40 seconds more reach step 200.
    state = TrainingState(step=120, train_seconds=60.0)
    run_state = make(tmp_path, state, schedule, limit_s=100)
    assert lr(schedule, 200) == pytest.approx(0.1, abs=1e-3) and lr(schedule, 100) == pytest.approx(0.55, abs=1e-3)
    clock.now += 39.9
    run_state.on_train_batch_end(0)
    assert not run_state.model.stop_training
    clock.now += 0.2
    run_state.on_train_batch_end(1)
    assert run_state.model.stop_training and state.stop_reason == "time limit reached at step 122"


def test_without_a_time_limit_the_schedule_is_left_as_planned(tmp_path, clock):
    schedule = make_schedule(train_config(), total_steps=1000)
    run_state = make(tmp_path, TrainingState(), schedule, limit_s=0)
    for batch in range(5):
        clock.now += 100
        run_state.on_train_batch_end(batch)
    assert not run_state.model.stop_training and lr(schedule, 500) == pytest.approx(0.55, abs=1e-3)


def test_a_budget_shorter_than_twice_the_warmup_still_ends_annealed(tmp_path, clock):
    schedule = make_schedule(train_config(warmup_steps=100), total_steps=10_000)
    state = TrainingState()
    run_state = make(tmp_path, state, schedule, limit_s=55)
    clock.now += 10
    run_state.on_train_batch_end(9)
    while not run_state.model.stop_training:  # 2 batches a second: 100 batches in all
        clock.now += 0.5
        run_state.on_train_batch_end(state.step)
    assert state.step == 100
    # Warmup took half of the 100 batches (not its planned 100), the decay the rest.
    assert lr(schedule, 25) == pytest.approx(0.5) and lr(schedule, 50) == pytest.approx(1.0)
    assert lr(schedule, 99) == pytest.approx(0.1, abs=1e-3)
    assert schedule.get_config()["warmup_steps"] == 100


def test_a_limit_passed_during_validation_stops_before_the_next_epoch(tmp_path, clock):
    state = TrainingState()
    run_state = make(tmp_path, state, make_schedule(train_config(), total_steps=10_000), limit_s=100)
    run_state._save = lambda: None  # no model here to save
    clock.now += 10
    run_state.on_train_batch_end(39)
    clock.now += 30  # validation, inside the limit
    run_state.on_epoch_end(0, {})
    assert not run_state.model.stop_training and not state.finished
    run_state.on_epoch_begin(1)
    clock.now += 50
    run_state.on_train_batch_end(39)
    clock.now += 20  # validation ends 10 seconds past the limit
    run_state.on_epoch_end(1, {})
    assert run_state.model.stop_training and state.finished
    assert state.stop_reason == "time limit reached at step 80"


def test_a_crash_between_checkpoints_does_not_give_back_its_time(tmp_path, clock):
    # A sitting trains 50 seconds and dies before its first checkpoint.
    state = TrainingState()
    run_state = make(tmp_path, state, make_schedule(train_config(), total_steps=10_000), limit_s=100)
    for batch in range(100):
        clock.now += 0.5
        run_state.on_train_batch_end(batch)
    assert not run_state.model.stop_training
    # The same command again resumes from no checkpoint, but with the time
    # the run's clock recorded (every 30 s: at 30 of the 50) already spent.
    assert RunDir(tmp_path).spent_seconds() == pytest.approx(30.0, abs=0.5)
    clock.now += 5  # start-up
    state = TrainingState()
    run_state = make(tmp_path, state, make_schedule(train_config(), total_steps=10_000), limit_s=100)
    while not run_state.model.stop_training:
        clock.now += 0.5
        run_state.on_train_batch_end(state.step)
    assert state.step == 140  # 70 seconds, not the whole 100 again
