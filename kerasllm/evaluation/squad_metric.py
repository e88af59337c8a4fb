"""The SQuAD v1.1 metric: exact match and token F1, as the official script scores.

Answers are compared after normalisation (lowercase, no punctuation, no
articles, single spaces), so "The Broncos!" matches "broncos". A question
scores its best match over all gold answers, an unanswered question scores 0,
and the corpus scores are 100 times the mean over the gold questions.

Example:
    squad_scores({"q1": "Denver Broncos"}, {"q1": ["Denver Broncos", "The Broncos"]})
    # {"exact_match": 100.0, "f1": 100.0, "count": 1, "missing": 0}
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

from kerasllm.files import atomic_write_text

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _as_list(gold_answers) -> list:
    """The gold answers as a non-empty list; a lone string is one answer."""
    answers = [gold_answers] if isinstance(gold_answers, str) else list(gold_answers)
    if not answers:
        raise ValueError("a question needs at least one gold answer")
    return answers


def _token_f1(prediction: str, gold: str) -> float:
    """F1 of the normalised tokens, counting repeated tokens as often as both have them."""
    predicted = normalize_answer(prediction).split()
    expected = normalize_answer(gold).split()
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:  # also when either side is empty, as in the v1.1 script
        return 0.0
    precision = shared / len(predicted)
    recall = shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold_answers) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    predicted = normalize_answer(prediction)
    return max(float(predicted == normalize_answer(gold)) for gold in _as_list(gold_answers))


def f1(prediction: str, gold_answers) -> float:
    """The best token F1 (0..1) of the prediction against any gold answer."""
    return max(_token_f1(prediction, gold) for gold in _as_list(gold_answers))


def squad_scores(predictions: dict, gold: dict) -> dict:
    """Corpus EM and F1 (0..100) over the questions of `gold` ({id: [answer, ...]}).

    A gold question without a prediction scores 0 and is counted in
    `missing`; predictions for ids not in `gold` are ignored.
    """
    if not gold:
        raise ValueError("no gold questions to score")
    em_total = f1_total = 0.0
    missing = 0
    for qid, answers in gold.items():
        if qid not in predictions:
            missing += 1
            continue
        em_total += exact_match(predictions[qid], answers)
        f1_total += f1(predictions[qid], answers)
    count = len(gold)
    return {
        "exact_match": 100.0 * em_total / count,
        "f1": 100.0 * f1_total / count,
        "count": count,
        "missing": missing,
    }


def write_predictions(path, predictions: dict) -> None:
    """Writes `{id: answer}` as the official script reads it, atomically."""
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise TypeError(f"prediction for {qid!r} is {type(answer).__name__}, not a string")
    atomic_write_text(Path(path), json.dumps(predictions) + "\n")
