"""Personal data (`data.cleaning.pii`) and near-duplicate documents
(`data.cleaning.near_duplicates`): what is found and what must stay, in a
tf.data pipeline (graph mode) and eagerly, and that near-copies are removed
before the train/validation split."""

from __future__ import annotations

import dataclasses
import random

import pytest
import tensorflow as tf
from conftest import ROOT

from kerasllm import config as config_lib
from kerasllm.config import CleaningConfig, DataConfig
from kerasllm.data import pii
from kerasllm.data.cleaning import make_cleaner
from kerasllm.data.near_duplicates import NearDuplicates, near_copies
from kerasllm.data.pipelines import split
from kerasllm.data.sources import keyed_text_dataset, resolve_source, text_dataset
from kerasllm.errors import UserError

# Every kind, in shapes people write them. The numbers are the documentation
# examples of each kind (Visa/Mastercard/Amex test numbers, the IBAN
# registry's DE/GB examples, the 555 and Ofcom drama phone ranges,
# RFC 5737/3849 addresses).
FOUND = {
    "email": ["mail john.doe@example.com today", "write to Jane_X+tag@mail.co.uk."],
    "iban": ["IBAN DE89 3704 0044 0532 0130 00 please", "pay GB82WEST12345698765432 now"],
    "credit_card": ["card 4111 1111 1111 1111 ok", "amex 3782 822463 10005", "plain 5500005555555559."],
    "phone": ["call +1 (555) 123-4567", "or 555-987-6543", "ring +44 20 7946 0958", "tel 06 12 34 56 78",
              "(030) 1234 5678 office"],
    "ip": ["server 192.0.2.20 down", "host 2001:db8::1 up", "ip 10.0.0.1."],
}
# Look-alikes that must stay as they are, with why.
KEPT = [
    "released on 2024-01-15, see 15.01.2024 and 01.02.2024",  # dates: no phone shape, too few digits
    "version 1.2.3.4 and v1.2.3.4 and 1.2.3.4.5 and 2.14.0",  # versions: a word before, glued, 5 or 3 parts
    "10.0.0.256 is no address",  # a part above 255
    "it cost 1.000.000.000 pesos",  # thousands separators: parts with leading zeros
    "order ORD-4111111111111111 and INV-555-123-4567",  # order numbers glued to letters
    "order 2024-000123, PO 4500012345, ISBN 0-306-40615-2",  # order numbers in no phone shape
    "card 1234 5678 9012 3456 fails Luhn",  # 16 digits, Luhn check fails
    "IBAN DE89 3704 0044 0532 0130 01 fails mod 97",  # IBAN shape, check digits wrong
    "at 12:30:45, std::vector and a::b",  # times and C++ scopes are no IPv6
    "@handle and user@localhost",  # no domain with a top level
]


def luhn(number: str) -> bool:
    """An independent Luhn check (the definition, digit by digit)."""
    digits = [int(c) for c in number if c.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return bool(digits) and total % 10 == 0


def iban_ok(text: str) -> bool:
    """An independent ISO 13616 check: Python's big integers, mod 97."""
    s = text.replace(" ", "").upper()
    return 15 <= len(s) <= 34 and int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def test_each_kind_is_found_masked_and_counted():
    texts = [t for kind in pii.KINDS for t in FOUND[kind]]
    masked, counts = pii.find_pii(tf.constant(texts))
    row = 0
    for k, kind in enumerate(pii.KINDS):
        for text in FOUND[kind]:
            out = masked.numpy()[row].decode()
            assert counts.numpy()[row].tolist() == [int(j == k) for j in range(len(pii.KINDS))], (text, out)
            assert pii.PLACEHOLDERS[kind] in out and sum(c.isdigit() for c in out) <= 1, (text, out)
            row += 1
    assert pii.PLACEHOLDERS == {"email": "<EMAIL>", "iban": "<IBAN>", "credit_card": "<CREDIT_CARD>",
                                "phone": "<PHONE>", "ip": "<IP>"}
    masked, _ = pii.find_pii(tf.constant(["server 192.0.2.20:8080 down"]))
    assert masked.numpy()[0] == b"server <IP>:8080 down"  # the port is no part of the address


def test_look_alikes_stay():
    masked, counts = pii.find_pii(tf.constant(KEPT))
    assert [m.decode() for m in masked.numpy()] == KEPT
    assert counts.numpy().sum() == 0


def test_luhn_and_iban_checks_agree_with_the_definitions():
    rng = random.Random(0)
    numbers = ["".join(rng.choice("0123456789") for _ in range(rng.randint(13, 19))) for _ in range(300)]
    numbers += ["4111111111111111", "378282246310005", "5500005555555559"]
    assert pii.luhn_valid(tf.constant(numbers)).numpy().tolist() == [luhn(n) for n in numbers]
    ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
    ibans += [i[:5] + rng.choice("0123456789") + i[6:] for i in ibans for _ in range(10)]  # one digit changed
    assert pii.iban_valid(tf.constant(ibans)).numpy().tolist() == [iban_ok(i) for i in ibans]


def test_several_finds_in_one_text_and_any_shape():
    text = "a@b.io, 4111-1111-1111-1111, +33 6 12 34 56 78, 192.0.2.1 and a@b.io again"
    masked, counts = pii.find_pii(tf.constant([[text, "nothing"]]))
    assert masked.shape == (1, 2) and counts.shape == (1, 2, len(pii.KINDS))
    assert masked.numpy()[0, 0].decode() == "<EMAIL>, <CREDIT_CARD>, <PHONE>, <IP> and <EMAIL> again"
    assert counts.numpy()[0, 0].tolist() == [2, 0, 1, 1, 1] and counts.numpy()[0, 1].sum() == 0


def test_graph_mode_in_tf_data_equals_eager():
    texts = [t for kind in pii.KINDS for t in FOUND[kind]] + KEPT
    eager = pii.find_pii(tf.constant(texts))
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(4).map(pii.find_pii)
    graph = [(m, c) for m, c in ds.as_numpy_iterator()]
    assert [m for b in graph for m in b[0]] == list(eager[0].numpy())
    assert [c.tolist() for b in graph for c in b[1]] == eager[1].numpy().tolist()


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def read_pieces(source, cleaning):
    return [t.decode() for texts, _ in text_dataset(source, cleaning).as_numpy_iterator() for t in texts]


def test_mask_and_drop_in_the_pipeline(tmp_path):
    lines = ["Hello there.", "Mail BOB@Example.com now.", "Card 4111 1111 1111 1111.", "Version 1.2.3.4 is out."]
    source = resolve_source(DataConfig(source=write_lines(tmp_path / "c.txt", lines), document="line"))
    assert read_pieces(source, CleaningConfig(pii="mask", lowercase=True)) == [
        "hello there.", "mail <EMAIL> now.", "card <CREDIT_CARD>.", "version 1.2.3.4 is out."]
    assert read_pieces(source, CleaningConfig(pii="drop")) == ["Hello there.", "Version 1.2.3.4 is out."]
    assert read_pieces(source, CleaningConfig()) == lines
    # A document per file: drop removes the whole file holding personal data.
    (tmp_path / "d").mkdir()
    write_lines(tmp_path / "d" / "a.txt", ["clean text"])
    write_lines(tmp_path / "d" / "b.txt", ["first line", "then 10.0.0.1"])
    files = resolve_source(DataConfig(source=str(tmp_path / "d"), document="file"))
    assert read_pieces(files, CleaningConfig(pii="drop")) == ["clean text\n", ""]
    assert make_cleaner(CleaningConfig(pii="mask", lowercase=True))(tf.constant("Mail Bob@Example.com")) == b"mail <EMAIL>"


def test_config_validates_the_new_keys(tiny_config):
    path = tiny_config()
    assert config_lib.load(path, ["data.cleaning.pii=mask"]).data.cleaning.pii == "mask"
    with pytest.raises(UserError, match="data.cleaning.pii must be one of keep, mask, drop"):
        config_lib.load(path, ["data.cleaning.pii=hide"])
    with pytest.raises(UserError, match=r"data.cleaning.near_duplicates must be a Jaccard similarity in \(0, 1\]"):
        config_lib.load(path, ["data.cleaning.near_duplicates=1.5"])
    with pytest.raises(UserError, match="question answering reads SQuAD text as it is"):
        config_lib.load(ROOT / "configs" / "squad-qa.yaml", ["data.cleaning.pii=mask"])


# Planted near-copies: small edits of earlier documents, each > 0.9 similar
# by character 5-grams; the other documents are all different texts.
BASE = [
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.",
    "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with the ends of worms.",
    "All happy families are alike; each unhappy family is unhappy in its own way. Everything was in confusion.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want.",
]
EDITS = [lambda t: t.replace("wisdom", "wisdon"), lambda t: t.upper(), lambda t: t[:-1] + "!",
         lambda t: "  " + t.replace(" ", "  "), lambda t: t.replace("single", "singel")]


def planted_corpus(n_other: int = 60, seed: int = 3):
    """(lines, positions of the planted near-copies)."""
    rng = random.Random(seed)
    words = ["river", "stone", "quiet", "market", "yellow", "engine", "garden", "winter", "pocket", "silver",
             "ladder", "thunder", "basket", "candle", "forest", "marble", "window", "copper", "meadow", "violin"]
    lines = [" ".join(rng.choice(words) for _ in range(14)) for _ in range(n_other)] + BASE
    copies = [edit(BASE[i]) for i, edit in enumerate(EDITS)]
    places = []
    for copy in copies:  # anywhere after its original
        place = rng.randint(n_other + 5, len(lines))
        lines.insert(place, copy)
        places = [p + (p >= place) for p in places] + [place]
    return lines, sorted(places)


def test_near_copies_are_exactly_the_planted_ones():
    lines, places = planted_corpus()
    assert near_copies([[line] for line in lines], 0.8) == places
    finder = NearDuplicates(0.8)
    assert [finder.is_near_copy([line]) for line in lines].count(True) == len(places) == finder.removed
    # A document read in pieces is the same document.
    finder = NearDuplicates(0.8)
    first, rest = BASE[0].split(" it was the worst")
    assert not finder.is_near_copy([first, "it was the worst" + rest]) and finder.is_near_copy([BASE[0]])


def test_near_copies_leave_the_corpus_before_the_split(tmp_path):
    lines, places = planted_corpus()
    data = DataConfig(source=write_lines(tmp_path / "c.txt", lines), document="line", split_group=1,
                      val_fraction=0.5, cleaning=CleaningConfig(near_duplicates=0.8))
    source = resolve_source(data)
    assert read_pieces(source, data.cleaning) == [line for i, line in enumerate(lines) if i not in places]
    keyed = keyed_text_dataset(source, data.cleaning)
    sides = {which: [t.decode() for texts, _ in split(keyed, data, which).as_numpy_iterator() for t in texts]
             for which in ("train", "validation")}
    # Without the option the planted pairs straddle the split (this seed and
    # split put at least one pair on both sides); with it no validation
    # document has a near-copy in train.
    plain = dataclasses.replace(data, cleaning=CleaningConfig())
    keyed_plain = keyed_text_dataset(resolve_source(plain), plain.cleaning)
    plain_sides = {which: {t.decode() for texts, _ in split(keyed_plain, plain, which).as_numpy_iterator()
                           for t in texts} for which in ("train", "validation")}
    straddling = [i for i, base in enumerate(BASE) if {base, EDITS[i](base)} & plain_sides["train"]
                  and {base, EDITS[i](base)} & plain_sides["validation"]]
    assert straddling, "the fixture should put a near-copy on both sides without near_duplicates"
    for i, base in enumerate(BASE):
        copy = EDITS[i](base)
        assert copy not in sides["train"] + sides["validation"]
        assert base in sides["train"] + sides["validation"]
    finder = NearDuplicates(0.8)
    for text in sides["train"]:
        finder.is_near_copy([text])
    assert not any(finder.is_near_copy([text]) for text in sides["validation"] if text not in sides["train"])


def test_translation_pairs_are_documents(tmp_path):
    from kerasllm.data.paired_text import pair_dataset

    rows = ["Good morning, my dear friend, I hope you slept well.\tBuenos días, querido amigo, espero que durmieras bien.",
            "Write to ana@example.org today.\tEscribe a ana@example.org hoy.",
            "The train leaves at nine tonight.\tEl tren sale a las nueve esta noche.",
            "Good morning, my dear friend, I hope you slept well!\tBuenos días, querido amigo, espero que durmieras bien.",
            "Call me at 555-123-4567.\tLlámame al 555-123-4567."]
    path = write_lines(tmp_path / "pairs.tsv", rows)

    def pairs(**cleaning):
        data = DataConfig(source=path, cleaning=CleaningConfig(**cleaning))
        return [(s.decode(), t.decode()) for ss, ts in pair_dataset(resolve_source(data), data).as_numpy_iterator()
                for s, t in zip(ss, ts)]

    everything = [tuple(r.split("\t")) for r in rows]
    assert pairs() == everything
    assert pairs(pii="drop") == [everything[i] for i in (0, 2, 3)]
    assert pairs(pii="mask")[1] == ("Write to <EMAIL> today.", "Escribe a <EMAIL> hoy.")
    assert pairs(near_duplicates=0.8) == [everything[i] for i in (0, 1, 2, 4)]


def test_prepare_removes_the_near_copies_before_the_split(tiny_config, tmp_path):
    from kerasllm.data.prepare import prepare

    lines, places = planted_corpus()
    source = write_lines(tmp_path / "c.txt", lines)
    tokens = {}
    for threshold in (0.0, 0.8):
        config = config_lib.load(tiny_config({"data.source": source, "data.document": "line",
                                              "data.cleaning": {"near_duplicates": threshold}}))
        tokens[threshold] = sum(prepare(config, tmp_path / f"out-{threshold}")["tokens"].values())
    # A character token per character and an end-of-text token per document.
    assert tokens[0.0] - tokens[0.8] == sum(len(lines[i]) + 1 for i in places)


def test_shards_prepared_before_the_new_keys_still_match(tiny_config, tmp_path):
    import json

    from kerasllm.data import shards

    config = config_lib.load(tiny_config())
    meta = {"tokenizer": dataclasses.asdict(config.tokenizer), "data": shards.data_identity(config)}
    for key in ("pii", "near_duplicates"):  # as kerasllm wrote meta.json before these keys
        del meta["data"]["cleaning"][key]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    shards.check(tmp_path, config)
    with pytest.raises(UserError, match="was prepared with data settings"):
        shards.check(tmp_path, config_lib.load(tiny_config(), ["data.cleaning.pii=mask"]))
