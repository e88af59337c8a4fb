"""What the encoder tasks feed the trainer: masked-LM blocks fill the whole
window between [CLS] and [SEP]; SQuAD training
questions arrive in a seeded mixed order, not article by article."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml

from kerasllm import config as config_lib
from kerasllm.run_dir import RunDir
from kerasllm.training.encoder_tasks import MaskedLMTask, QuestionAnsweringTask
from test_qa import ENCODER, NAMES, _write_squad

SEQ_LEN = ENCODER["seq_len"]


def _load(tmp_path, head, data, train=None):
    path = tmp_path / f"{head}.yaml"
    path.write_text(yaml.safe_dump({
        "name": head, "data": data,
        "tokenizer": {"kind": "wordpiece", "vocab_size": 48, "lowercase": True},
        "model": {**ENCODER, "head": head},
        "train": {"batch_size": 4, **(train or {})},
    }))
    return config_lib.load(path)


def test_masked_lm_blocks_fill_the_window_between_cls_and_sep(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("".join(f"{n} likes {m} and {n}.\n" for n in NAMES for m in NAMES) * 3)
    config = _load(tmp_path, "masked_lm", {"source": str(text), "format": "text", "document": "line",
                                           "split_group": 4})
    task = MaskedLMTask(config, RunDir(tmp_path / "run"))
    inputs, mask_ids, weights = next(iter(task.train_batches(0)))
    ids = inputs["token_ids"].numpy()
    assert ids.shape == (4, SEQ_LEN)
    assert (ids[:, 0] == task.cls_id).all() and (ids[:, -1] == task.sep_id).all()
    # The text, as it was before masking (a masked position may hold a random
    # id, special ones included, as in BERT), fills the window.
    text = ids.copy()
    positions, weights_np = inputs["mask_positions"].numpy(), weights.numpy()
    for row in range(len(text)):
        chosen = weights_np[row] > 0
        text[row, positions[row][chosen]] = mask_ids.numpy()[row][chosen]
    assert not np.isin(text[:, 1:-1], [task.cls_id, task.sep_id, task.tokenizer.pad_id]).any()
    assert (inputs["mask_positions"].numpy() < SEQ_LEN).all() and weights.numpy().sum() > 0



def test_training_questions_mix_articles_in_a_seeded_order(tmp_path):
    squad = _write_squad(tmp_path / "toy.json", articles=40)
    config = _load(tmp_path, "span", {"source": str(squad)}, {"seed": 3})
    task = QuestionAnsweringTask(config, RunDir(tmp_path / "run"))
    order = [e.id for e in task.training_examples()]
    assert sorted(order) == sorted(e.id for e in task.train_data.examples)
    assert order == [e.id for e in task.training_examples()]  # the same every time: resume stays exact
    # The file holds 6 questions per article, article after article; the
    # first 12 training questions come from many articles.
    assert len({i.split("-")[0] for i in order[:12]}) >= 8


def test_length_batches_group_similar_windows_and_cut_only_padding():
    import tensorflow as tf

    from kerasllm.data.qa_data import length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 257, 640)
    mask = np.arange(256)[None] < lengths[:, None]
    ids = np.where(mask, rng.integers(6, 100, (640, 256)), 0).astype("int32")
    windows = tf.data.Dataset.from_tensor_slices(
        ({"token_ids": ids, "segment_ids": mask.astype("int32"), "padding_mask": mask},
         (np.minimum(lengths - 1, 3), lengths - 1)))
    seen = []
    for inputs, (starts, ends) in length_batches(windows, batch_size=8, seq_len=256):
        used = inputs["padding_mask"].numpy().sum(1)
        width = inputs["token_ids"].shape[1]
        assert inputs["token_ids"].shape[0] == 8 and width % 32 == 0
        assert width - 32 < used.max() <= width and used.min() > width - 64  # one bucket: similar lengths
        assert (ends.numpy() < used).all()  # labels stay inside the kept tokens
        seen += [tuple(row[:n]) for row, n in zip(inputs["token_ids"].numpy(), used)]
    whole = {tuple(row[:n]) for row, n in zip(ids, lengths)}
    assert set(seen) <= whole and len(set(seen)) == len(seen) >= 640 - 8 * 8  # at most a partial batch per bucket left


def test_question_answering_batches_are_cut_and_resume_exactly(tmp_path):
    squad = _write_squad(tmp_path / "toy.json", articles=40)
    config = _load(tmp_path, "span", {"source": str(squad)})
    task = QuestionAnsweringTask(config, RunDir(tmp_path / "run"))
    counts = task.counts
    assert 0 < counts["train_tokens"] < counts["train"] * SEQ_LEN
    assert task.tokens_per_batch == 4 * counts["train_tokens"] / counts["train"]

    def batches(skip, n):
        out = []
        for inputs, (starts, ends) in task.train_batches(skip).take(n):
            out.append((inputs["token_ids"].numpy(), starts.numpy(), ends.numpy()))
        return out

    stream = batches(0, 12)
    assert all(ids.shape[1] in (32, SEQ_LEN) for ids, _, _ in stream)
    resumed = batches(5, 7)
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(stream[5:], resumed))


@pytest.mark.slow
def test_every_validation_scores_the_same_batches_and_masks(tmp_path):
    """With train.validation_steps, each epoch's validation reads the same
    first batches (Keras would continue its validation iterator where the
    last epoch stopped) with the same masked positions (the masks are
    random). At a learning rate of ~0 the validation loss cannot move. The
    end of a validation set is not reported as running out of data."""
    from kerasllm.training.trainer import train

    text = tmp_path / "text.txt"
    text.write_text("".join(f"{n} likes {m} and {c}.\n" for n in NAMES for m in NAMES for c in NAMES[:4]))
    config = _load(tmp_path, "masked_lm", {"source": str(text), "format": "text", "document": "line",
                                           "split_group": 4, "val_fraction": 0.3},
                   {"learning_rate": 1e-12, "warmup_steps": 0, "epochs": 3, "steps_per_epoch": 2,
                    "validation_steps": 1, "num_samples": 0, "save_every_steps": 100})
    task = MaskedLMTask(config, RunDir(tmp_path / "probe"))
    assert task.counts["validation"] >= 3 * config.train.batch_size  # more than one validation batch to move on to
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(config, run_dir=str(tmp_path / "run"), verbose=0, print_fn=lines.append)
    # The end of each (finite) validation set is not "running out of data".
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    # Nor is the encoder's unused [CLS] pooler news.
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    losses = [float(line.split("Validation Loss: ")[1].split(",")[0]) for line in lines if "Validation Loss" in line]
    assert len(losses) == 3 and max(losses) - min(losses) < 1e-3, losses

    # `kerasllm evaluate` draws its own masks, the same ones on every call,
    # in this process and in fresh ones.
    from kerasllm.evaluation.language_model import evaluate_masked_lm

    here = [evaluate_masked_lm(str(tmp_path / "run")) for _ in range(2)]
    script = ("import json, sys; from kerasllm.evaluation.language_model import evaluate_masked_lm; "
              "print(json.dumps(evaluate_masked_lm(sys.argv[1])))")
    fresh = [json.loads(subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], check=True,
                                       capture_output=True, text=True).stdout.splitlines()[-1])]
    assert all(result == here[0] for result in here + fresh), here + fresh
    assert 0.0 < here[0]["masked_loss"] and here[0]["masked_accuracy"] < 1.0
