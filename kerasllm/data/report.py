"""What a run's corpus is: `kerasllm data-report` and a run's `data_report.json`.

The report reads the corpus as training does (the same cleaning, removal
of duplicates and personal data, and train/validation split) and says:

- documents (read, and kept after cleaning) and characters; a document
  is a line, a record or a file (`data.document`), and for translation a
  sentence pair; per split, the pieces and characters: a piece is what
  the split assigns (a line or record; a pair), so a document that is a
  file has pieces on both sides;
- what cleaning removed: exact duplicates (`dedupe`), near duplicates
  (`near_duplicates`), documents with personal data (`pii: drop`), and the
  exact duplicates left in the kept text;
- personal data found, per kind (`kerasllm.data.pii.KINDS`), whatever
  `pii` does with it;
- tokens per character of each tokenizer kind: `char`, `byte` and
  `codepoint` (nothing to learn), `wordpiece` and `sentencepiece` learned
  on the first 256K characters of the training split (with `subwords`,
  a vocabulary of 1000); the configured kind as the run learns it (its
  settings, `tokenizer.sample_mb` of the training split), or the run's own
  tokenizer in a run; all measured on the first 256K characters of the
  validation split;
- the script mix: each script's share of the letters (Unicode category
  L*), the script read off the first word of the character's Unicode name
  (LATIN, CYRILLIC, ARABIC, CJK, HIRAGANA ...): Python's `unicodedata` has
  no script property, and the names carry it for the letters of every
  major script, which a hand-kept range table would not;
- the longest documents (characters and their start);
- overlap between train and validation: the share of validation pieces
  (the units the split assigns: lines or records, or pairs) whose exact
  text also occurs in the training split, and the share of the validation
  split's distinct word 5-grams (lowercased) that also occur in the
  training split. Five words, because translation sentences are often
  shorter than the 8 to 13 words of contamination checks on long text.

Memory: the training split's piece and 5-gram hashes are held for the
pass (about 100 bytes per distinct 5-gram).

Example:
    report = data_report(config_lib.load("configs/tiny-char.yaml"), subwords=False)
    print(format_report(report))
    print(json.dumps(report))
"""

from __future__ import annotations

import dataclasses
import heapq
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from kerasllm import task_registry
from kerasllm.config import RunConfig, TokenizerConfig
from kerasllm.data import document_filter, pipelines
from kerasllm.data.pii import KINDS, find_pii
from kerasllm.data.preprocessors import LanguageModelPreprocessor
from kerasllm.errors import UserError

SAMPLE_CHARS = 262_144  # characters learned from, and measured on, per split
SUBWORD_VOCAB = 1000  # for subword kinds other than the configured one
NGRAM = 5
LONGEST = 5
PREVIEW = 60
TOKENIZER_KINDS = ("char", "byte", "codepoint", "wordpiece", "sentencepiece")


@dataclass
class Corpus:
    """A kind's corpus as the report reads it: `final()` yields numpy batches
    `(texts, ends, split)` (split index into `splits`) of the text as
    training reads it; `raw()` yields `(texts, ends, file)` of the text
    before personal data and duplicates are handled (for counting them)."""

    unit: str  # what a document is
    splits: tuple
    final: Callable[[], Iterator]
    raw: Callable[[], Iterator]
    removal: Callable[[], Optional[document_filter.Removal]]
    train_texts: Callable[[], tf.data.Dataset]  # string batches, as the tokenizer learns from them
    whole_files: bool = False


def _numpy(ds: tf.data.Dataset) -> Callable[[], Iterator]:
    return lambda: ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def language_model_corpus(config: RunConfig, data_dir: Optional[str] = None) -> Corpus:
    """The text of a language-model or masked-LM config (`kerasllm.data.sources`).

    Args:
        config: the `RunConfig`.
        data_dir: where registered datasets are.

    Example:
        corpus = language_model_corpus(config_lib.load("configs/tiny-char.yaml"))
        corpus.unit  # "file"
    """
    from kerasllm.data.sources import keyed_text_dataset, removal_key, resolve_source

    d = config.data
    source = resolve_source(d, data_dir)
    whole_files = source.format == "text" and source.document == "file"
    unit = "file" if whole_files else ("line" if source.format == "text" else "record")
    raw_cleaning = dataclasses.replace(d.cleaning, pii="keep", lowercase=False, dedupe=False, near_duplicates=0.0)
    raw = keyed_text_dataset(source, raw_cleaning).map(lambda key, batch: (*batch, key[0]))
    final = pipelines.with_validation_flags(keyed_text_dataset(source, d.cleaning), d)
    final = final.map(lambda texts, ends, val: (texts, ends, tf.cast(val, tf.int32)))
    train = lambda: pipelines.split(keyed_text_dataset(source, d.cleaning), d, "train").map(lambda t, e: t)  # noqa: E731
    return Corpus(unit, pipelines.SPLITS, _numpy(final), _numpy(raw),
                  lambda: document_filter.remembered(removal_key(source, d.cleaning)), train, whole_files)


def translation_corpus(config: RunConfig, data_dir: Optional[str] = None) -> Corpus:
    """The sentence pairs of a translation config; a pair is one document,
    its text `source<TAB>target` (`kerasllm.data.paired_text`).

    Args:
        config: the `RunConfig`.
        data_dir: where registered datasets are.

    Example:
        corpus = translation_corpus(config_lib.load("configs/spa-eng-transformer.yaml"))
        corpus.splits  # ("train", "validation", "test")
    """
    from kerasllm.data.paired_text import SPLITS, pair_dataset, removal_key, scan_pairs, split_of, split_pairs
    from kerasllm.data.sources import resolve_source

    d = config.data
    source = resolve_source(d, data_dir)
    scan_pairs(source, d)  # an empty or (with data.strict) malformed corpus fails here, in one line
    raw_data = dataclasses.replace(d, cleaning=dataclasses.replace(d.cleaning, pii="keep", lowercase=False,
                                                                   near_duplicates=0.0))

    def final(s, t):
        texts = tf.strings.join([s, t], "\t")
        return texts, tf.ones_like(texts, tf.bool), tf.cast(split_of(s, d), tf.int32)

    def raw(s, t):
        texts = tf.strings.join([s, t], "\t")
        return texts, tf.ones_like(texts, tf.bool), tf.constant(0, tf.int64)

    return Corpus("pair", SPLITS, _numpy(pair_dataset(source, d).map(final)),
                  _numpy(pair_dataset(source, raw_data).map(raw)),
                  lambda: document_filter.remembered(removal_key(source, d)),
                  lambda: split_pairs(pair_dataset(source, d), d, "train").map(lambda s, t: tf.concat([s, t], 0)))


@lru_cache(maxsize=None)
def script_of(char: str) -> Optional[str]:
    """The script of a letter from its Unicode name's first word, or None
    for anything that is not a letter.

    Example:
        [script_of(c) for c in "aЖ中ア1"]  # ["Latin", "Cyrillic", "CJK", "Katakana", None]
    """
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    word = name.split(" ")[0] if name else "UNKNOWN"
    return "CJK" if word == "CJK" else word.title()


@dataclass
class _Tally:
    """What the pass over the final text adds up."""

    splits: tuple
    pieces: Counter = field(default_factory=Counter)
    characters: Counter = field(default_factory=Counter)
    documents: int = 0
    document_characters: int = 0
    letters: Counter = field(default_factory=Counter)
    longest: list = field(default_factory=list)  # heap of (characters, -index, start)
    seen: set = field(default_factory=set)
    duplicates_left: int = 0
    piece_hashes: dict = field(default_factory=dict)  # split -> set (train) or list (others)
    ngrams: dict = field(default_factory=dict)  # split -> set
    samples: dict = field(default_factory=dict)  # split -> list of texts (SAMPLE_CHARS each)
    sample_sizes: Counter = field(default_factory=Counter)

    def add_piece(self, text: str, split: str) -> None:
        self.pieces[split] += 1
        self.characters[split] += len(text)
        if text.strip():
            self.piece_hashes.setdefault(split, set()).add(hash(text))
            words = text.lower().split()
            grams = self.ngrams.setdefault(split, set())
            grams.update(hash(tuple(words[i:i + NGRAM])) for i in range(len(words) - NGRAM + 1))
        if self.sample_sizes[split] < SAMPLE_CHARS and text.strip():
            piece = text[: SAMPLE_CHARS - self.sample_sizes[split]]
            self.samples.setdefault(split, []).append(piece)
            self.sample_sizes[split] += len(piece)

    def add_document(self, pieces: list) -> None:
        text = "".join(pieces)
        self.documents += 1
        self.document_characters += len(text)
        self.letters.update(Counter(text))
        key = hash(text)
        self.duplicates_left += key in self.seen
        self.seen.add(key)
        entry = (len(text), -self.documents, text[:PREVIEW])
        if len(self.longest) < LONGEST:
            heapq.heappush(self.longest, entry)
        else:
            heapq.heappushpop(self.longest, entry)


def _tally(corpus: Corpus) -> _Tally:
    tally, pieces = _Tally(corpus.splits), []
    for texts, ends, splits in corpus.final():
        for raw, end, split in zip(texts, ends, splits):
            text = raw.decode("utf-8")
            tally.add_piece(text, corpus.splits[split])
            pieces.append(text)
            if end:
                tally.add_document(pieces)
                pieces = []
    if pieces:
        tally.add_document(pieces)
    return tally


def _raw_counts(corpus: Corpus) -> dict:
    """Documents before personal data and duplicates are handled, personal
    data per kind, and the documents holding any."""
    found, documents, with_pii, files_with_pii = np.zeros(len(KINDS), np.int64), 0, 0, set()
    for texts, ends, file in corpus.raw():  # a batch holds pieces of one file
        counts = _count_pii(texts).numpy()
        found += counts.sum(axis=0)
        documents += int(ends.sum())
        if corpus.whole_files and counts.any():
            files_with_pii.add(int(file))
        with_pii += int((counts.sum(axis=1) > 0).sum())
    return {"documents": documents, "pii": dict(zip(KINDS, found.tolist())),
            "with_pii": len(files_with_pii) if corpus.whole_files else with_pii}


_count_pii = tf.function(lambda texts: find_pii(texts)[1], reduce_retracing=True)


def _scripts(letters: Counter) -> dict:
    by_script = Counter()
    for char, n in letters.items():
        script = script_of(char)
        if script:
            by_script[script] += n
    total = sum(by_script.values()) or 1
    return {script: round(n / total, 4) for script, n in by_script.most_common()}


def _overlap(tally: _Tally) -> dict:
    train, val = tally.splits[0], tally.splits[1]
    pieces = tally.piece_hashes.get(val, set())
    grams = tally.ngrams.get(val, set())
    return {
        "validation_pieces_in_train": round(len(pieces & tally.piece_hashes.get(train, set())) / max(len(pieces), 1), 4),
        f"validation_{NGRAM}grams_in_train": round(len(grams & tally.ngrams.get(train, set())) / max(len(grams), 1), 4),
    }


def _tokens_per_character(config: RunConfig, corpus: Corpus, tally: _Tally, tokenizer, subwords: bool,
                          notes: list) -> dict:
    """Tokens per character of each tokenizer kind on the validation sample
    (the training sample where validation is empty); see the module doc."""
    from kerasllm.data.tokenizers import train_tokenizer

    learn = tally.samples.get(tally.splits[0], [])
    measure = tally.samples.get(tally.splits[1]) or learn
    characters = sum(len(t) for t in measure)
    if not learn or not characters:
        return {}
    configured = config.tokenizer
    kinds = [k for k in TOKENIZER_KINDS if subwords or k in ("char", "byte", "codepoint", configured.kind)]
    out = {}
    for kind in kinds:
        try:
            if kind == configured.kind:  # as the run learns it (or the run's own)
                tok = tokenizer or train_tokenizer(configured, corpus.train_texts())
            else:
                vocab = SUBWORD_VOCAB if kind in ("wordpiece", "sentencepiece") else 0
                tok = train_tokenizer(TokenizerConfig(kind=kind, vocab_size=vocab, sample_mb=4 * SAMPLE_CHARS / 1e6),
                                      tf.data.Dataset.from_tensor_slices(learn).batch(1024))
        except UserError as e:  # e.g. a vocabulary larger than the sample allows
            out[kind] = None
            notes.append(f"tokens per character, {kind}: {e}")
            continue
        batches = tf.data.Dataset.from_tensor_slices(measure).batch(1024)
        tokens = sum(int(LanguageModelPreprocessor(tok).num_tokens(b).numpy().sum()) for b in batches)
        out[kind] = round(tokens / characters, 4)
    return out


def data_report(config: RunConfig, data_dir: Optional[str] = None, tokenizer=None, subwords: bool = True) -> dict:
    """The report of `config`'s corpus (see the module doc), as a dict that
    `json.dumps` writes and `format_report` lays out.

    Args:
        config: a language-model, masked-LM or translation `RunConfig`.
        data_dir: where registered datasets are (`$KERASLLM_DATA_DIR`).
        tokenizer: the run's own tokenizer, measured for the configured kind
            instead of one learned on the sample (one for all of the text:
            not a translation run's source-only tokenizer).
        subwords: also learn `wordpiece` and `sentencepiece` tokenizers on
            the sample (seconds to a minute) when not configured.

    Returns:
        A dict of plain numbers, strings, lists and dicts.

    Example:
        report = data_report(config_lib.load("configs/tiny-char.yaml"), subwords=False)
        report["documents"]["kept"]  # 1: Tiny Shakespeare is one file
    """
    task = task_registry.for_model(config.model)
    kind = task_registry.name(task)
    corpus = task.report_corpus(config, data_dir)  # the text as the task's runs read it
    if corpus is None:
        raise UserError(f"data-report: {task.description} runs read their data as it is (no cleaning, duplicates "
                        "or split to report); use a language-model, masked-LM or translation config")
    raw = _raw_counts(corpus)
    tally = _tally(corpus)
    removal = corpus.removal()
    cleaning = config.data.cleaning
    near = removal.near_copies if removal else 0
    with_pii = raw["with_pii"] if cleaning.pii == "drop" else 0
    notes = []
    return {
        "name": config.name, "kind": kind, "source": config.data.source, "document": corpus.unit,
        "documents": {"read": raw["documents"], "kept": tally.documents},
        "pieces": {split: tally.pieces[split] for split in corpus.splits},
        "characters": {"kept": tally.document_characters, **{split: tally.characters[split] for split in corpus.splits}},
        "removed": {"exact_duplicates": raw["documents"] - tally.documents - near - with_pii,
                    "near_duplicates": near, "pii": with_pii},
        "exact_duplicates_left": tally.duplicates_left,
        "pii": {"action": cleaning.pii, **raw["pii"]},
        "tokens_per_character": _tokens_per_character(config, corpus, tally, tokenizer, subwords, notes),
        "configured_tokenizer": config.tokenizer.kind,
        "scripts": _scripts(tally.letters),
        "longest_documents": [{"characters": n, "start": start} for n, _, start in sorted(tally.longest, reverse=True)],
        "overlap": _overlap(tally),
        "notes": notes,
    }


def format_report(report: dict) -> str:
    """The report as a readable table (the JSON has the same numbers).

    Example:
        print(format_report(data_report(config)))
    """
    def pairs(values: dict, fmt="{:,}") -> str:
        return ", ".join(f"{k} {'-' if v is None else fmt.format(v)}" for k, v in values.items()) or "-"

    d, c, p = report["documents"], report["characters"], report["pieces"]
    rows = [
        ("documents", f"{d['read']:,} read, {d['kept']:,} kept (a document is a {report['document']})"),
        ("characters", f"{c['kept']:,}"),
        ("split", "; ".join(f"{s}: {p[s]:,} pieces, {c[s]:,} characters" for s in p)),
        ("removed", pairs(report["removed"])),
        ("duplicates left", f"{report['exact_duplicates_left']:,} exact copies of earlier documents"),
        ("personal data", f"{report['pii']['action']}: " + pairs({k: report["pii"][k] for k in KINDS})),
        ("tokens/character", pairs(report["tokens_per_character"], "{:.3f}")
         + f" (configured: {report['configured_tokenizer']})"),
        ("scripts", pairs(report["scripts"], "{:.1%}")),
        ("overlap", pairs(report["overlap"], "{:.1%}")),
    ]
    rows += [("longest" if i == 0 else "", f"{doc['characters']:,} characters: {doc['start']!r}")
             for i, doc in enumerate(report["longest_documents"])]
    rows += [("note", note) for note in report["notes"]]
    width = max(len(name) for name, _ in rows)
    title = f"Data report: {report['name']} ({report['kind']}), source {report['source']}"
    return "\n".join([title] + [f"  {name:<{width}}  {value}" for name, value in rows])
