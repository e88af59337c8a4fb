"""SQuAD v1.1 reader: questions, their contexts and their gold answers.

A file with the wrong layout is a `UserError` that names the file and the
place in it (`data[3].paragraphs[0].qas[2]: missing key 'question'`), since
nothing sensible can be read from it. Bad items inside a good layout are
dropped and counted by reason instead: an answer whose `answer_start` does not
point at its text (a model trained on it would learn the wrong span), an empty
answer, question or context, a question left with no valid answer, and a
repeated question id (ids key the predictions file). A file read for scoring
(`for_scoring=True`; `qa_data.qa_examples` reads dev so) keeps every
non-blank answer whatever its offset, as the official v1.1 evaluation script
does: there the answers are only gold texts.

Example:
    dev = load_split("dev")
    print(dev.summary())  # 10,570 questions from 2,067 paragraphs (nothing skipped)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kerasllm.data import registry
from kerasllm.errors import UserError

DATASET = "squad-v1.1"

# Skip reasons, the keys of `SquadData.skipped`. The two answer reasons count
# answers, and only those of questions not dropped for a question reason; the
# others count questions.
WRONG_OFFSET = "answer not at its offset"
EMPTY_ANSWER = "empty answer"
NO_VALID_ANSWER = "question with no valid answer"
EMPTY_QUESTION = "empty question"
EMPTY_CONTEXT = "question with an empty context"
DUPLICATE_ID = "repeated question id"


@dataclass
class SquadExample:
    """One question; `answer_starts[i]` is the character offset of `answers[i]`
    in `context` (checked, except in a file read for scoring)."""

    id: str
    title: str
    context: str
    question: str
    answers: list
    answer_starts: list


@dataclass
class SquadData:
    """The kept questions of a file, and how many items were dropped, by reason."""

    examples: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # reason -> count
    paragraphs: int = 0  # paragraphs read, kept questions or not

    def summary(self) -> str:
        counts = f"{len(self.examples):,} questions from {self.paragraphs:,} paragraphs"
        if not self.skipped:
            return f"{counts} (nothing skipped)"
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in self.skipped.items())
        return f"{counts} ({sum(self.skipped.values()):,} skipped: {reasons})"

    def gold_answers(self) -> dict:
        """`{id: [answer, ...]}`, the gold side of `squad_metric.squad_scores`."""
        return {example.id: list(example.answers) for example in self.examples}


class _Reader:
    """Walks one parsed file, checking types and counting what it drops."""

    def __init__(self, path: Path, for_scoring: bool = False):
        self.path = path
        self.for_scoring = for_scoring
        self.data = SquadData()
        self.skipped = Counter()
        self.seen_ids = set()

    def fail(self, where: str, problem: str) -> UserError:
        return UserError(f"{self.path}: {where or 'top level'}: {problem}")

    def require(self, node: dict, key: str, kind: type, where: str):
        """`node[key]`, which must exist and be a `kind`; `where` is the node's place ("" at the top)."""
        if key not in node:
            raise self.fail(where, f"missing key '{key}'")
        return self.check_type(node[key], kind, f"{where}.{key}" if where else key)

    def check_type(self, value, kind: type, where: str):
        # bool is an int to Python, but never a valid offset.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(where, f"expected {_TYPE_NAMES[kind]}, got {_json_type(value)}")
        if kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:  # JSON's \ud800 escapes decode to lone surrogates
                raise self.fail(where, f"not valid Unicode: a lone surrogate \\u{ord(value[e.start]):04x} at "
                                f"character {e.start} (a \\uD800-\\uDFFF escape without its pair)") from None
        return value

    def read(self, document) -> SquadData:
        if not isinstance(document, dict):
            raise self.fail("", f"expected an object with key 'data', got {_json_type(document)}")
        articles = self.require(document, "data", list, "")
        for a, article in enumerate(articles):
            self.read_article(self.check_type(article, dict, f"data[{a}]"), f"data[{a}]")
        self.data.skipped = dict(self.skipped)
        return self.data

    def read_article(self, article: dict, where: str) -> None:
        title = self.check_type(article.get("title", ""), str, f"{where}.title")
        paragraphs = self.require(article, "paragraphs", list, where)
        for p, paragraph in enumerate(paragraphs):
            at = f"{where}.paragraphs[{p}]"
            self.read_paragraph(title, self.check_type(paragraph, dict, at), at)

    def read_paragraph(self, title: str, paragraph: dict, where: str) -> None:
        context = self.require(paragraph, "context", str, where)
        questions = self.require(paragraph, "qas", list, where)
        self.data.paragraphs += 1
        for q, qa in enumerate(questions):
            at = f"{where}.qas[{q}]"
            example = self.read_question(title, context, self.check_type(qa, dict, at), at)
            if example is not None:
                self.data.examples.append(example)

    def read_question(self, title: str, context: str, qa: dict, where: str) -> Optional[SquadExample]:
        qid = self.require(qa, "id", str, where)
        question = self.require(qa, "question", str, where)
        answers = self.read_answers(qa, where)
        reason = self.question_skip_reason(qid, question, context)
        if reason is None:
            answers = self.valid_answers(context, answers)
            reason = None if answers else NO_VALID_ANSWER
        if reason:
            self.skipped[reason] += 1
            return None
        self.seen_ids.add(qid)
        return SquadExample(id=qid, title=title, context=context, question=question,
                            answers=[text for text, _ in answers], answer_starts=[start for _, start in answers])

    def read_answers(self, qa: dict, where: str) -> list:
        """`[(text, start), ...]` of a question, type-checked."""
        answers = []
        for i, answer in enumerate(self.require(qa, "answers", list, where)):
            at = f"{where}.answers[{i}]"
            answer = self.check_type(answer, dict, at)
            answers.append((self.require(answer, "text", str, at), self.require(answer, "answer_start", int, at)))
        return answers

    def valid_answers(self, context: str, answers: list) -> list:
        """The answers that are not blank and sit at their offset (for
        scoring: that are not blank); the others are counted."""
        kept = []
        for text, start in answers:
            if not text.strip():
                self.skipped[EMPTY_ANSWER] += 1
            elif not self.for_scoring and not _is_at(context, text, start):
                self.skipped[WRONG_OFFSET] += 1
            else:
                kept.append((text, start))
        return kept

    def question_skip_reason(self, qid: str, question: str, context: str) -> Optional[str]:
        """Why a question is dropped before its answers are looked at, if it is."""
        if not context.strip():
            return EMPTY_CONTEXT
        if not question.strip():
            return EMPTY_QUESTION
        if qid in self.seen_ids:
            return DUPLICATE_ID
        return None


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _is_at(context: str, text: str, start: int) -> bool:
    """Whether `text` is found in `context` at character offset `start`."""
    return 0 <= start and context[start : start + len(text)] == text


def _load_json(path: Path):
    """The parsed file; an unreadable, non-UTF-8 or non-JSON file is a UserError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the JSON
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None


def read_squad(path, for_scoring: bool = False) -> SquadData:
    """Reads a SQuAD v1.1 JSON file (`{"data": [{"title", "paragraphs": [...]}]}`);
    `for_scoring` keeps answers whose `answer_start` is wrong (gold texts only)."""
    path = Path(path)
    return _Reader(path, for_scoring).read(_load_json(path))


def load_split(split: str, data_dir: Optional[str] = None) -> SquadData:
    """The `train` or `dev` split of SQuAD v1.1 from the data directory."""
    return read_squad(registry.resolve(DATASET, split, None if data_dir is None else str(data_dir)))
