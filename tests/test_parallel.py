"""Parallel corpora for translation: reading, malformed lines, leakage-free
splits, tokenizers from the training split, length-bucketed batches."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kerasllm.config import CleaningConfig, DataConfig, TokenizerConfig
from kerasllm.data.pair_batches import pair_batches, padding_fraction, train_pair_tokenizers
from kerasllm.data.paired_text import SPLITS, pair_dataset, scan_pairs, split_of, split_pairs
from kerasllm.data.sources import resolve_source
from kerasllm.errors import UserError


def pairs_of(ds):
    return [(s.decode(), t.decode()) for sources, targets in ds for s, t in zip(sources.numpy(), targets.numpy())]


def test_malformed_lines_are_counted_and_skipped_or_fatal_when_strict(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(
        b"Hello.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n"
        b"Only one column\n"
        b"Empty target.\t   \n"
        b"Bad \xff bytes\tMalo\n"
        b"\n"
        b"Good  night.\tBuenas noches.\n"
    )
    config = DataConfig(source=str(path), cleaning=CleaningConfig(lowercase=True))
    source = resolve_source(config)
    report = scan_pairs(source, config)
    assert (report.pairs, report.skipped) == (2, 3)
    assert report.first_skipped == f"{path}:2: 1 columns, need 2"
    assert report.reasons == {"1 columns, need 2": 1, "an empty side": 1, "not valid UTF-8": 1}
    assert pairs_of(pair_dataset(source, config)) == [("hello.", "hola."), ("good  night.", "buenas noches.")]
    strict = DataConfig(source=str(path), strict=True)
    with pytest.raises(UserError, match=f"{path}:2: 1 columns, need 2 .*data.strict"):
        scan_pairs(source, strict)
    (tmp_path / "empty.tsv").write_text("just one column\n")
    with pytest.raises(UserError, match="no sentence pairs"):
        scan_pairs(resolve_source(DataConfig(source=str(tmp_path / "empty.tsv"))), DataConfig(source="x"))


def test_jsonl_translation_records_and_csv_headers(tmp_path):
    records = [{"translation": {"en": "Hi.", "es": "Hola."}}, {"translation": {"en": "Bye."}}, {"translation": {"en": "Yes.", "es": "Sí."}}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n")
    config = DataConfig(source=str(tmp_path / "p.jsonl"), source_field="translation.en", target_field="translation.es")
    source = resolve_source(config)
    report = scan_pairs(source, config)
    assert (report.pairs, report.skipped) == (2, 2)
    assert pairs_of(pair_dataset(source, config)) == [("Hi.", "Hola."), ("Yes.", "Sí.")]
    (tmp_path / "p.csv").write_text('id,es,en\n1,"Hola, amigo.","Hello, friend."\n')
    config = DataConfig(source=str(tmp_path / "p.csv"), source_field="en", target_field="es")
    assert pairs_of(pair_dataset(resolve_source(config), config)) == [("Hello, friend.", "Hola, amigo.")]
    with pytest.raises(UserError, match="no column 'fr'.*data.target_field"):
        scan_pairs(resolve_source(config), DataConfig(source=config.source, source_field="en", target_field="fr"))


def test_split_has_no_source_sentence_in_two_splits():
    config = DataConfig(source="spa-eng", val_fraction=0.1, test_fraction=0.1)
    pairs = pair_dataset(resolve_source(config), config)
    split_by_source, counts = {}, np.zeros(3, int)
    for index, name in enumerate(SPLITS):
        for s, _ in pairs_of(split_pairs(pairs, config, name)):
            assert split_by_source.setdefault(s, index) == index, f"{s!r} is in two splits"
            counts[index] += 1
    total = counts.sum()
    assert total == 118_964  # every pair lands in exactly one split
    assert len(split_by_source) < total  # the corpus repeats sources, and they stayed together
    assert abs(counts[1] / total - 0.1) < 0.015 and abs(counts[2] / total - 0.1) < 0.015
    sample = tf.constant(list(split_by_source)[:2000])
    again = split_of(sample, config).numpy()
    assert (again == [split_by_source[s.decode()] for s in sample.numpy()]).all()  # stable
    reseeded = split_of(sample, DataConfig(val_fraction=0.1, test_fraction=0.1, split_seed=7)).numpy()
    assert (reseeded != again).mean() > 0.1


def test_tokenizers_learn_from_the_training_split_only(tmp_path):
    config = DataConfig(source=str(tmp_path / "p.tsv"), val_fraction=0.2, test_fraction=0.2)
    sources = [f"sentence number {i}" for i in range(300)]
    held_out = split_of(tf.constant(sources), config).numpy() != 0
    # Ω occurs only in the targets of held-out pairs (the split hashes the source).
    lines = [f"{s}\tfrase {i}{' Ω' if out else ''}" for i, (s, out) in enumerate(zip(sources, held_out))]
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n")
    pairs = pair_dataset(resolve_source(config), config)
    train = split_pairs(pairs, config, "train")
    shared, same = train_pair_tokenizers(TokenizerConfig(kind="char"), train)
    assert held_out.sum() > 50 and shared is same and "Ω" not in shared.chars
    assert {"s", "f"} <= set(shared.chars)
    src, tgt = train_pair_tokenizers(TokenizerConfig(kind="char", shared=False), train)
    assert "u" in src.chars and "u" not in tgt.chars and "f" in tgt.chars  # "number" vs "frase"
    assert "Ω" not in tgt.chars


def test_bucketed_batches_have_little_padding_and_the_decoder_layout():
    config = DataConfig(source="spa-eng", val_fraction=0.1)
    pairs = pair_dataset(resolve_source(config), config)
    train = split_pairs(pairs, config, "train")
    tok, _ = train_pair_tokenizers(TokenizerConfig(kind="char", sample_mb=1), train)
    batches = pair_batches(train, tok, tok, max_length=48, batch_size=64, training=True, shuffle_buffer=5000)
    bucketed = padding_fraction(batches, 100)
    # The same pairs batched 64 at a time in arrival order, padded to the longest.
    lengths = []
    for sources, targets in train.take(8):
        lengths += [(len(s), len(t) + 1) for s, t in zip(tok.tokenize(sources).to_list(), tok.tokenize(targets).to_list())
                    if len(s) <= 48 and len(t) + 1 <= 48]
    padded = real = 0
    for start in range(0, len(lengths) - 63, 64):
        group = np.array(lengths[start : start + 64])
        padded += 64 * group.max(axis=0).sum()
        real += group.sum()
    plain = 1 - real / padded
    assert bucketed < 0.15 and bucketed < plain / 2, (bucketed, plain)
    inputs, labels, weights = next(iter(batches))
    dec, mask = inputs["decoder_token_ids"].numpy(), inputs["decoder_padding_mask"].numpy()
    assert (dec[:, 0] == tok.eot_id).all()  # the decoder starts from end-of-text
    n = mask.sum(axis=1)
    for row in range(len(dec)):
        assert labels.numpy()[row, n[row] - 1] == tok.eot_id  # and learns to end with it
        assert (labels.numpy()[row, : n[row] - 1] == dec[row, 1 : n[row]]).all()  # shifted by one
    assert (weights.numpy() == mask).all() and inputs["encoder_token_ids"].shape[1] <= 48
