"""What the encoder tasks feed the trainer: masked-LM blocks fill the whole
window and are masked the same way on every validation pass; SQuAD training
questions arrive in a seeded mixed order, not article by article."""

from __future__ import annotations

import keras
import numpy as np
import yaml

from kerasllm import config as config_lib
from kerasllm.training.checkpoint import RunDir
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
    keras.utils.set_random_seed(config.train.seed)  # as the trainer does before it builds the task
    task = MaskedLMTask(config, RunDir(tmp_path / "run"))
    inputs, mask_ids, weights = next(iter(task.train_batches(0)))
    ids = inputs["token_ids"].numpy()
    assert ids.shape == (4, SEQ_LEN)
    assert (ids[:, 0] == task.cls_id).all() and (ids[:, -1] == task.sep_id).all()
    assert not np.isin(ids[:, 1:-1], [task.cls_id, task.sep_id, task.tokenizer.pad_id]).any()
    assert (inputs["mask_positions"].numpy() < SEQ_LEN).all() and weights.numpy().sum() > 0

    def validation_masks():
        return np.concatenate([x["mask_positions"].numpy() for x, _, _ in task.validation_batches()])

    first = validation_masks()
    assert len(first) > 0 and (first == validation_masks()).all()  # comparable validation losses


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
