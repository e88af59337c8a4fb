"""SQuAD v1.1: the JSON reader (checks and skip counts) and the official metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kerasllm.data.squad import load_split, read_squad
from kerasllm.errors import UserError
from kerasllm.evaluation.squad_metric import exact_match, f1, normalize_answer, squad_scores, write_predictions

# --- metric -----------------------------------------------------------------


def test_normalize_answer():
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("an apple") == "apple"
    assert normalize_answer("A cat and THE dog.") == "cat and dog"
    # Articles go only as whole words.
    assert normalize_answer("theater") == "theater"
    assert normalize_answer("Athens and an anthem") == "athens and anthem"
    # Punctuation goes before articles are looked for, and is dropped, not spaced.
    assert normalize_answer("Mr. Smith's") == "mr smiths"
    assert normalize_answer("the-end") == "theend"
    # Only ASCII punctuation (string.punctuation) is removed, as in the official script.
    assert normalize_answer("\u201cquoted\u201d") == "\u201cquoted\u201d"
    assert normalize_answer(" \n\t ") == ""


def test_exact_match_and_f1_by_hand():
    assert exact_match("The Denver Broncos!", ["denver broncos"]) == 1.0
    assert exact_match("Denver", ["denver broncos"]) == 0.0
    # "big cat" vs "big cat sat": 2 shared, precision 2/2, recall 2/3, F1 = 2*1*(2/3)/(1+2/3) = 0.8
    assert exact_match("the big cat", ["big cat sat"]) == 0.0
    assert f1("the big cat", ["big cat sat"]) == pytest.approx(0.8)
    # Repeated tokens count min(times in prediction, times in gold): cat 1 + dog 1 = 2 of 3 each way.
    assert f1("cat cat dog", ["cat dog dog"]) == pytest.approx(2 / 3)
    assert f1("Denver Broncos", ["the denver broncos."]) == 1.0
    assert f1("red", ["blue"]) == 0.0
    assert f1("black and white", ["white and black"]) == 1.0  # bag of tokens: order does not matter


def test_best_match_over_gold_answers():
    golds = ["Denver Broncos", "Denver Broncos of the NFL"]
    # "denver" vs 2 tokens: P 1, R 1/2 -> 2/3; vs 4 tokens (denver broncos of nfl): R 1/4 -> 0.4.
    assert f1("Denver", golds) == pytest.approx(2 / 3)
    assert f1("Denver", list(reversed(golds))) == pytest.approx(2 / 3)
    assert exact_match("denver broncos of the nfl", golds) == 1.0
    assert exact_match("Broncos", ["Broncos", "Broncos"]) == 1.0  # duplicates are harmless
    assert f1("broncos", "Denver Broncos") == pytest.approx(2 / 3)  # a lone string is one answer
    with pytest.raises(ValueError):
        f1("x", [])


def test_empty_prediction_scores_zero():
    assert exact_match("", ["cat"]) == 0.0
    assert f1("", ["cat"]) == 0.0
    assert f1("cat", [""]) == 0.0
    # v1.1 quirk, kept: two answers that normalise to nothing match exactly but share no token.
    assert exact_match("", ["The"]) == 1.0
    assert f1("", ["The"]) == 0.0


def test_squad_scores_counts_missing_as_zero():
    gold = {"a": ["Denver Broncos"], "b": ["big cat sat"], "c": ["Paris"]}
    predictions = {"a": "the Denver Broncos", "b": "the big cat", "z": "not asked"}
    scores = squad_scores(predictions, gold)
    assert scores["count"] == 3 and scores["missing"] == 1
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert squad_scores({}, gold) == {"exact_match": 0.0, "f1": 0.0, "count": 3, "missing": 3}
    with pytest.raises(ValueError):
        squad_scores({"a": "x"}, {})


def test_write_predictions_is_official_json(tmp_path):
    path = tmp_path / "out" / "predictions.json"
    predictions = {"56be4db0acb8001400a502ec": "Denver Broncos", "q2": "Zürich 東京"}
    write_predictions(path, predictions)
    assert json.loads(path.read_text(encoding="utf-8")) == predictions
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictions.json"]  # no temporary left
    with pytest.raises(TypeError, match="q3"):
        write_predictions(tmp_path / "bad.json", {"q3": ["a list"]})
    assert not (tmp_path / "bad.json").exists()


# --- reader -----------------------------------------------------------------

CONTEXT = "Denver Broncos beat the Carolina Panthers."


def write_squad(tmp_path: Path, articles, name: str = "squad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"data": articles, "version": "1.1"}, ensure_ascii=False), encoding="utf-8")
    return path


def qa(qid: str, question: str, *answers) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}


def test_reads_a_good_file(tmp_path):
    path = write_squad(tmp_path, [
        {"title": "Super_Bowl", "paragraphs": [
            {"context": CONTEXT, "qas": [
                qa("q1", "Who won?", ("Denver Broncos", 0), ("Denver Broncos", 0), ("Broncos", 7)),
                qa("q2", "Who lost?", ("Carolina Panthers", 24)),
            ]},
            {"context": "Second paragraph.", "qas": []},
        ]},
        {"paragraphs": [{"context": "Untitled text here.", "qas": [qa("q3", "What?", ("text", 9))]}]},
    ])
    data = read_squad(path)
    assert [e.id for e in data.examples] == ["q1", "q2", "q3"]
    q1, q2, q3 = data.examples
    assert (q1.title, q1.context, q1.question) == ("Super_Bowl", CONTEXT, "Who won?")
    assert q1.answers == ["Denver Broncos", "Denver Broncos", "Broncos"]  # all gold answers, in order
    assert q1.answer_starts == [0, 0, 7]
    assert (q2.answers, q2.answer_starts) == (["Carolina Panthers"], [24])
    assert (q3.title, q3.answers, q3.answer_starts) == ("", ["text"], [9])
    assert data.skipped == {} and data.paragraphs == 3
    assert data.summary() == "3 questions from 3 paragraphs (nothing skipped)"
    assert data.gold_answers() == {"q1": q1.answers, "q2": ["Carolina Panthers"], "q3": ["text"]}
    assert read_squad(str(path)).examples == data.examples  # a str path works too


def test_bad_items_are_skipped_and_counted(tmp_path):
    path = write_squad(tmp_path, [{"title": "T", "paragraphs": [
        {"context": CONTEXT, "qas": [
            qa("keep", "Who lost?", ("Panthers", 0), ("Carolina Panthers", 24), ("Panthers", 33)),
            qa("no-answer-left", "Who won?", ("Broncos", 0), ("Denver", 99)),
            qa("no-answers", "Why?"),
            qa("blank-question", "  ", ("Denver", 0)),
            qa("empty-answer", "What?", ("", 0), ("Denver", 0)),
            qa("keep", "Again?", ("Denver", 0)),
        ]},
        {"context": " \n", "qas": [qa("no-context", "Where?", ("x", 0))]},
    ]}])
    data = read_squad(path)
    assert [e.id for e in data.examples] == ["keep", "empty-answer"]
    assert data.examples[0].answers == ["Carolina Panthers", "Panthers"]
    assert data.examples[0].answer_starts == [24, 33]
    assert data.examples[1].answers == ["Denver"]
    assert data.skipped == {
        "answer not at its offset": 3,
        "question with no valid answer": 2,
        "empty question": 1,
        "empty answer": 1,
        "repeated question id": 1,
        "question with an empty context": 1,
    }
    assert data.paragraphs == 2
    assert data.summary() == (
        "2 questions from 2 paragraphs (9 skipped: 3 answer not at its offset, 2 question with no valid answer, "
        "1 empty question, 1 empty answer, 1 repeated question id, 1 question with an empty context)"
    )


def test_offsets_are_character_offsets(tmp_path):
    context = "Zürich 東京 and Zürich again."
    assert len("Zürich 東京".encode()) != len("Zürich 東京")
    path = write_squad(tmp_path, [{"title": "Städte", "paragraphs": [{"context": context, "qas": [
        qa("chars", "Which city?", ("東京", 7), ("Zürich", 14)),
        qa("bytes", "Which city, in bytes?", ("東京", 8)),  # the UTF-8 byte offset is wrong
    ]}]}])
    data = read_squad(path)
    assert [e.id for e in data.examples] == ["chars"]
    example = data.examples[0]
    assert example.answer_starts == [7, 14]
    for text, start in zip(example.answers, example.answer_starts):
        assert example.context[start : start + len(text)] == text
    assert data.skipped == {"answer not at its offset": 1, "question with no valid answer": 1}


def test_a_file_read_for_scoring_keeps_answers_at_wrong_offsets(tmp_path):
    """The official v1.1 script scores against every answer text, offsets
    unread: dev keeps what training would drop (only blank answers go)."""
    context = "Zürich 東京 and Zürich again."
    path = write_squad(tmp_path, [{"title": "Städte", "paragraphs": [{"context": context, "qas": [
        qa("chars", "Which city?", ("東京", 7), ("Zürich", 14)),
        qa("bytes", "Which city, in bytes?", ("東京", 8), ("  ", 0)),
    ]}]}])
    training = read_squad(path)
    scoring = read_squad(path, for_scoring=True)
    assert [e.id for e in training.examples] == ["chars"]
    assert [e.id for e in scoring.examples] == ["chars", "bytes"]
    assert scoring.examples[1].answers == ["東京"]
    assert scoring.gold_answers() == {"chars": ["東京", "Zürich"], "bytes": ["東京"]}
    assert scoring.skipped == {"empty answer": 1}


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    document = {"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": [qa("q", "Who?", ("Denver", 0))]}]}]}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode())
    assert [e.id for e in read_squad(path).examples] == ["q"]


def user_error(path) -> str:
    """The message of the UserError that reading `path` raises; it must be one line naming the file."""
    with pytest.raises(UserError) as caught:
        read_squad(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_schema_errors_name_the_file_and_the_place(tmp_path):
    good = {"context": CONTEXT, "qas": [qa("q", "Who?", ("Denver", 0))]}
    missing_question = {"context": CONTEXT, "qas": [{"id": "q9", "answers": []}]}
    path = write_squad(tmp_path, [{"title": "T", "paragraphs": [good, missing_question]}])
    assert user_error(path) == f"{path}: data[0].paragraphs[1].qas[0]: missing key 'question'"

    cases = {
        "data[1]: missing key 'paragraphs'": [{"title": "T", "paragraphs": [good]}, {"title": "U"}],
        "data[0].paragraphs[0]: missing key 'context'": [{"paragraphs": [{"qas": []}]}],
        "data[0].paragraphs[0]: missing key 'qas'": [{"paragraphs": [{"context": CONTEXT}]}],
        "data[0].paragraphs[0].qas[0]: missing key 'id'": [{"paragraphs": [{"context": CONTEXT, "qas": [
            {"question": "Who?", "answers": []}]}]}],
        "data[0].paragraphs[0].qas[0]: missing key 'answers'": [{"paragraphs": [{"context": CONTEXT, "qas": [
            {"id": "q", "question": "Who?"}]}]}],
        "data[0].paragraphs[0].qas[0].answers[0]: missing key 'answer_start'": [{"paragraphs": [
            {"context": CONTEXT, "qas": [{"id": "q", "question": "Who?", "answers": [{"text": "Denver"}]}]}]}],
        "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected an integer, got a string": [
            {"paragraphs": [{"context": CONTEXT, "qas": [qa("q", "Who?", ("Denver", "0"))]}]}],
        "data[0].paragraphs[0].qas[0].answers[0].answer_start: expected an integer, got a boolean": [
            {"paragraphs": [{"context": CONTEXT, "qas": [qa("q", "Who?", ("Denver", False))]}]}],
        "data[0].paragraphs[0].qas[0].id: expected a string, got an integer": [
            {"paragraphs": [{"context": CONTEXT, "qas": [{"id": 7, "question": "Who?", "answers": []}]}]}],
        "data[0].paragraphs[0].context: expected a string, got null": [{"paragraphs": [{"context": None, "qas": []}]}],
        "data[0].paragraphs: expected a list, got an object": [{"paragraphs": {"context": CONTEXT}}],
        "data[0].title: expected a string, got a number": [{"title": 1.5, "paragraphs": []}],
        "data[0].paragraphs[0].qas[0]: expected an object, got a string": [
            {"paragraphs": [{"context": CONTEXT, "qas": ["Who?"]}]}],
    }
    for where, articles in cases.items():
        path = write_squad(tmp_path, articles)
        assert user_error(path) == f"{path}: {where}"


def test_a_lone_surrogate_escape_is_a_schema_error(tmp_path):
    # JSON may spell half a UTF-16 pair ("\ud800"); Python reads it as a
    # string that no UTF-8 tensor can hold.
    path = tmp_path / "surrogate.json"
    path.write_text('{"data": [{"title": "T", "paragraphs": [{"context": "Denver \\ud800 won.", "qas": []}]}]}')
    assert user_error(path) == (f"{path}: data[0].paragraphs[0].context: not valid Unicode: a lone surrogate "
                                "\\ud800 at character 7 (a \\uD800-\\uDFFF escape without its pair)")


def test_top_level_errors(tmp_path):
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"version": "1.1"}))
    assert user_error(path) == f"{path}: top level: missing key 'data'"
    path.write_text(json.dumps({"data": {"title": "T"}}))
    assert user_error(path) == f"{path}: data: expected a list, got an object"
    path.write_text(json.dumps([{"title": "T"}]))
    assert user_error(path) == f"{path}: top level: expected an object with key 'data', got a list"


def test_unreadable_files_are_user_errors(tmp_path):
    assert user_error(tmp_path / "absent.json") == f"{tmp_path / 'absent.json'}: no such file"
    assert "cannot read" in user_error(tmp_path)  # a directory
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "T",\n')
    assert user_error(path).startswith(f"{path}:3:")
    assert "not valid JSON" in user_error(path)
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": [{"title": "Zürich", "paragraphs": []}]}'.encode("latin-1"))
    assert user_error(path) == f"{path}: not UTF-8 text (invalid byte at offset 22)"


# --- the real files (../shared/data, or $KERASLLM_DATA_DIR) -----------------


def shared_split(split: str):
    """The split read through the registry from the tests' data directory
    (conftest: ../shared/data, or downloaded into the library's default)."""
    return load_split(split)


def assert_answers_at_their_offsets(data) -> None:
    for example in data.examples:
        assert example.answers and len(example.answers) == len(example.answer_starts)
        for text, start in zip(example.answers, example.answer_starts):
            assert example.context[start : start + len(text)] == text, example.id


def test_real_dev_file():
    dev = shared_split("dev")
    # The official SQuAD v1.1 dev statistics; this copy has no bad item.
    assert (len(dev.examples), dev.paragraphs, dev.skipped) == (10_570, 2_067, {})
    assert sum(len(e.answers) for e in dev.examples) == 34_726
    assert len({e.id for e in dev.examples}) == 10_570
    first = dev.examples[0]
    assert first.id == "56be4db0acb8001400a502ec" and first.title == "Super_Bowl_50"
    assert first.answers == ["Denver Broncos"] * 3 and first.answer_starts == [177] * 3
    assert_answers_at_their_offsets(dev)
    assert dev.summary() == "10,570 questions from 2,067 paragraphs (nothing skipped)"

    gold = dev.gold_answers()
    perfect = squad_scores({e.id: e.answers[0] for e in dev.examples}, gold)
    assert perfect == {"exact_match": 100.0, "f1": 100.0, "count": 10_570, "missing": 0}
    assert squad_scores({}, gold)["missing"] == 10_570


def test_real_train_file():
    train = shared_split("train")
    assert (len(train.examples), train.paragraphs, train.skipped) == (87_599, 18_896, {})
    assert len({e.id for e in train.examples}) == 87_599
    first = train.examples[0]
    assert (first.answers, first.answer_starts) == (["Saint Bernadette Soubirous"], [515])
    assert_answers_at_their_offsets(train)
