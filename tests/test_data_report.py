"""`kerasllm data-report` and a run's data_report.json: the numbers of a
tiny corpus checked against values computed here, independently, from
the text."""

from __future__ import annotations

import json
import time

import pytest
from conftest import ROOT, run_cli

from kerasllm import config as config_lib
from kerasllm.data.pipelines import split
from kerasllm.data.sources import keyed_text_dataset, resolve_source

BASE = "The quick brown fox jumps over the lazy dog near the river bank on a sunny day."
FILLER = ["Rain fell on the old harbour all night.", "She keeps bees behind the chapel.",
          "Nobody had tuned that piano in years.", "Our train stopped twice before Lyon.",
          "Bread rises faster in a warm kitchen.", "The committee postponed its vote again.",
          "Wolves were seen near the northern pass.", "He painted the fence a pale green.",
          "Copper wire conducts heat and electricity.", "A lantern swung above the ferry deck.",
          "They argued about chess until midnight.", "Snow closed the mountain road by noon."]
LINES = [
    BASE,
    "Mail alice@example.com for the tickets.",  # one e-mail address
    "Call +44 20 7946 0958 or 555-123-4567 after noon.",  # two phone numbers
    "Version 1.2.3.4 shipped on 2024-01-15.",  # look-alikes: no personal data
    *FILLER[:6],
    BASE.replace("sunny", "sunnny"),  # a near-copy of the first line
    "Привет, как дела?",  # 13 Cyrillic letters
    "東京は大きい都市です",  # 5 CJK ideographs, 5 hiragana
    BASE,  # an exact copy
    *FILLER[6:],
]


def corpus_config(tiny_config, tmp_path, **cleaning):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return tiny_config({"data.source": str(path), "data.document": "line", "data.split_group": 1,
                        "data.val_fraction": 0.3, "data.cleaning": cleaning})


def report_of(cli, config, *args):
    result = cli("data-report", "--config", config, "--quiet", *args)
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    if "--json" in args:
        assert len(lines) == 1
    else:  # the table, then the JSON line
        assert lines[0].startswith("Data report: tiny-char (gpt)") and len(lines) > 8
    return json.loads(lines[-1])


def test_report_numbers_match_the_text(cli, tiny_config, tmp_path):
    config = corpus_config(tiny_config, tmp_path, dedupe=True, near_duplicates=0.8, pii="mask")
    report = report_of(cli, config, "--no-subwords")
    kept_lines = [line for i, line in enumerate(LINES) if i not in (10, 13)]  # the near and the exact copy
    assert report["document"] == "line"
    assert report["documents"] == {"read": len(LINES), "kept": len(LINES) - 2}
    assert report["removed"] == {"exact_duplicates": 1, "near_duplicates": 1, "pii": 0}
    assert report["pii"] == {"action": "mask", "email": 1, "iban": 0, "credit_card": 0, "phone": 2, "ip": 0}
    masked = [line.replace("alice@example.com", "<EMAIL>").replace("+44 20 7946 0958", "<PHONE>")
              .replace("555-123-4567", "<PHONE>") for line in kept_lines]
    assert report["characters"]["kept"] == sum(len(line) for line in masked)
    assert sum(report["pieces"].values()) == len(masked) and report["exact_duplicates_left"] == 0
    # Script shares of the letters, counted here by hand.
    latin = sum(c.isascii() and c.isalpha() for line in masked for c in line)
    total = latin + 13 + 5 + 5
    assert report["scripts"] == pytest.approx({"Latin": latin / total, "Cyrillic": 13 / total, "CJK": 5 / total,
                                               "Hiragana": 5 / total}, abs=1e-4)
    assert report["longest_documents"][0] == {"characters": len(BASE), "start": BASE[:60]}
    # The split as training makes it: tokens per character and overlap follow from it.
    cfg = config_lib.load(config)
    keyed = keyed_text_dataset(resolve_source(cfg.data), cfg.data.cleaning)
    sides = {which: [t.decode() for texts, _ in split(keyed, cfg.data, which).as_numpy_iterator() for t in texts]
             for which in ("train", "validation")}
    assert sorted(sides["train"] + sides["validation"]) == sorted(masked)
    assert report["pieces"] == {which: len(texts) for which, texts in sides.items()}
    validation = "".join(sides["validation"])
    assert report["tokens_per_character"] == pytest.approx(
        {"char": 1.0, "byte": len(validation.encode()) / len(validation), "codepoint": 1.0}, abs=1e-4)
    assert report["overlap"]["validation_pieces_in_train"] == 0.0  # every kept line is distinct
    grams = {which: {tuple(t.lower().split()[i:i + 5]) for t in texts for i in range(len(t.split()) - 4)}
             for which, texts in sides.items()}
    expected = len(grams["validation"] & grams["train"]) / max(len(grams["validation"]), 1)
    assert report["overlap"]["validation_5grams_in_train"] == pytest.approx(expected, abs=1e-4)


def test_drop_counts_documents_with_personal_data(cli, tiny_config, tmp_path):
    report = report_of(cli, corpus_config(tiny_config, tmp_path, pii="drop"), "--no-subwords", "--json")
    assert report["removed"] == {"exact_duplicates": 0, "near_duplicates": 0, "pii": 2}
    assert report["documents"] == {"read": len(LINES), "kept": len(LINES) - 2}
    assert report["exact_duplicates_left"] == 1  # dedupe is off: the copy of BASE stays
    assert report["pii"]["email"] == 1 and report["pii"]["phone"] == 2


def test_json_only_and_translation_pairs(cli, tiny_config, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    rows = [f"Sentence number {i} in English.\tFrase número {i} en español." for i in range(40)]
    pairs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tiny_config({"data.source": str(pairs), "model.kind": "seq2seq", "data.test_fraction": 0.1})
    result = cli("data-report", "--config", config, "--quiet", "--json", "--no-subwords")
    assert result.code == 0, result.err
    assert len(result.out.strip().splitlines()) == 1
    report = json.loads(result.out)
    assert report["document"] == "pair" and report["documents"] == {"read": 40, "kept": 40}
    assert set(report["pieces"]) == {"train", "validation", "test"} and sum(report["pieces"].values()) == 40
    assert report["characters"]["kept"] == sum(len(r) for r in rows)  # both sides and the tab between


def test_mistakes_are_one_line_and_exit_2(tmp_path):
    start = time.monotonic()
    result = run_cli("data-report", "--config", str(tmp_path / "missing.yaml"), timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "config file not found" in result.stderr and time.monotonic() - start < 20


def test_question_answering_is_refused_in_one_line(cli):
    result = cli("data-report", "--config", ROOT / "configs" / "squad-qa.yaml")
    assert result.code == 2 and result.err.count("\n") == 1 and "question-answering runs read their data as it is" in result.err


@pytest.mark.slow
def test_a_run_saves_the_report_and_tensorboard_text(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = trained
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["name"] == "tiny-char" and report["documents"] == {"read": 1, "kept": 1}  # one file
    assert report["tokens_per_character"]["char"] == 1.0 and report["configured_tokenizer"] == "char"
    events = EventAccumulator(str(run_dir / "logs"), size_guidance={"tensors": 0}).Reload()
    text = events.Tensors("data_report")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("```\nData report: tiny-char (gpt)") and "tokens/character" in text
