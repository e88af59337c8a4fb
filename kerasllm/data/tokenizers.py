"""Tokenizers with one interface: train on a text dataset, save, load, and
tokenize inside tf.data (graph mode).

Kinds:
- `char`: a learned character vocabulary (most frequent characters of the
  training split), looked up with a TF hash table. Compact for any script,
  CJK included.
- `codepoint`, `byte`: keras-hub's UnicodeCodepointTokenizer / ByteTokenizer
  (no vocabulary to learn; lowercasing is off unless configured).
- `wordpiece`: keras-hub WordPieceTokenizer, vocabulary from
  `keras_hub.tokenizers.compute_word_piece_vocabulary`.
- `sentencepiece`: keras-hub SentencePieceTokenizer, model from
  `keras_hub.tokenizers.compute_sentence_piece_proto`.

Every kind reserves a padding id and an end-of-text id (`pad_id`, `eot_id`).

Example:
    tok = train_tokenizer(TokenizerConfig(kind="char"), texts)
    tok.save("runs/x/tokenizer"); tok = load_tokenizer("runs/x/tokenizer")
    ids = tok.tokenize(tf.constant(["To be"]))   # RaggedTensor of int32
    tok.detokenize(ids)                          # [b"To be"]
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import tensorflow as tf

from kerasllm.config import TokenizerConfig
from kerasllm.errors import UserError

META_FILE = "tokenizer.json"


def lowercased(texts: tf.Tensor) -> tf.Tensor:
    """What `lowercase: true` means for every tokenizer, in training and in use:
    Unicode lowercasing of UTF-8 text (no case folding: "ß" stays "ß").

    Args:
        texts: string tensor of any shape.

    Example:
        lowercased(tf.constant(["Straße ÀB"])).numpy()[0].decode()  # "straße àb"
    """
    return tf.strings.lower(texts, encoding="utf-8")


class Tokenizer:
    """Common interface: strings <-> int32 ids, in eager code and in graphs.

    Subclasses keep their state in `save`d files and implement `_tokenize`
    and `_detokenize` with graph ops; other modules call the public
    `tokenize`, `detokenize` and `prepare`. Every kind has a padding id
    (`pad_id`) and an end-of-text id (`eot_id`) below `vocabulary_size`.

    Args:
        lowercase: lowercase text (`lowercased`) before splitting it.

    Example:
        tok = load_tokenizer("runs/smoke/tokenizer")
        ids = tok.tokenize(["ROMEO:"])
        tok.detokenize(ids)  # [b"ROMEO:"]
    """

    kind = ""
    pad_id = 0
    eot_id = 1
    unk_id = None  # the id of characters outside the vocabulary (None: every character has ids)

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def __init_subclass__(cls, **kwargs):
        # `_tokenize` and `_detokenize` run inside tf.data maps and exported
        # functions, where AutoGraph would rewrite them and the keras-hub and
        # TF Text code they call (seconds per process). None of it branches
        # on tensor values, so they are traced as written.
        super().__init_subclass__(**kwargs)
        for name in ("_tokenize", "_detokenize"):
            if name in cls.__dict__:
                setattr(cls, name, tf.autograph.experimental.do_not_convert(cls.__dict__[name]))

    @property
    def vocabulary_size(self) -> int:
        """Number of ids (the model's embedding rows): every id is below it."""
        raise NotImplementedError

    @property
    def fill_id(self) -> int:
        """The id that pads rows of ids a caller may hand back to
        `detokenize`, where it drops out: `pad_id`, but the end-of-text id
        for a pretrained family whose pad id is an ordinary token."""
        return self.pad_id

    @property
    def start_id(self) -> int:
        """The id a prompt or a scored text starts with, which is how the
        model saw documents start: the end-of-text id, unless a pretrained
        family has a start token of its own."""
        return self.eot_id

    def prepare(self, texts: tf.Tensor) -> tf.Tensor:
        """The text as this tokenizer reads it: lowercased when `lowercase`
        is set, unchanged otherwise. Graph ops, usable inside tf.data.

        Code that needs offsets into the text the ids came from (question
        answering's `tokenize_with_offsets`) applies the same step.

        Args:
            texts: string tensor of any shape.

        Returns:
            A string tensor of the same shape.

        Example:
            tok = CharTokenizer(list("abc"), lowercase=True)
            tok.prepare(tf.constant(["ABC"]))  # [b"abc"]
        """
        return lowercased(texts) if self.lowercase else texts

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent branches: traced as written
    def tokenize(self, texts) -> tf.RaggedTensor:
        """Token ids of `texts`, the same ids in eager code and in graphs.

        Call it from Python (lists of strings work) or inside a graph: a
        tf.data map, a `tf.function`, an exported SavedModel signature (its
        ops are traced into the caller's graph, and the tokenizer's tables
        must then be tracked: see `trackables`). Called eagerly it runs as a
        graph too, because keras-hub tokenizers take a different Python path
        in eager mode, where results can differ from the graph's.

        Args:
            texts: string[batch] (tensor, list or array).

        Returns:
            RaggedTensor int32[batch, None], no end-of-text or padding ids.

        Example:
            tok = CharTokenizer(list(" Tabeo"))
            tok.tokenize(["To be"])                        # <tf.RaggedTensor [[4, 8, 3, 6, 7]]>
            ds = tf.data.Dataset.from_tensors(tf.constant(["To be"]))
            ds.map(lambda t: tok.tokenize(t).to_tensor())  # the same ids, padded
        """
        texts = tf.convert_to_tensor(texts, tf.string)
        if not tf.executing_eagerly():
            return self._tokenize(texts)
        if not hasattr(self, "_tokenize_graph"):
            self._tokenize_graph = tf.function(self._tokenize, reduce_retracing=True)
        return self._tokenize_graph(texts)

    @tf.autograph.experimental.do_not_convert
    def detokenize(self, ids) -> tf.Tensor:
        """Text of token ids; padding and end-of-text ids drop out. Like
        `tokenize`, it works eagerly and inside graphs, with the same result.

        Args:
            ids: int[batch, None], dense (tensor, nested list) or ragged.

        Returns:
            string[batch] tensor.

        Example:
            tok = CharTokenizer(list(" Tabeo"))
            tok.detokenize([[4, 8, 3, 6, 7, 0]])  # [b"To be"] (0 is padding)
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        if not tf.executing_eagerly():
            return self._detokenize(ids)
        if not hasattr(self, "_detokenize_graph"):
            self._detokenize_graph = tf.function(self._detokenize, reduce_retracing=True)
        return self._detokenize_graph(ids)

    # Subclasses implement these two with graph ops; `tokenize` and
    # `detokenize` are the public entry points (other modules call those).
    def _tokenize(self, texts):
        raise NotImplementedError

    def _detokenize(self, ids):
        raise NotImplementedError

    def unknown_characters(self, texts: list[str]) -> list[str]:
        """The distinct characters of `texts` this tokenizer reads as unknown
        (in order of first appearance); [] for a kind without an unknown id.

        Args:
            texts: Python strings.

        Example:
            CharTokenizer(list("abc")).unknown_characters(["abxy", "x"])  # ['x', 'y']
        """
        if self.unk_id is None:
            return []
        return unknown_characters(texts, lambda chars: self.tokenize(chars).to_list(), self.unk_id)

    def special_id(self, token: str) -> int:
        """Id of a BERT-style special token (`[CLS]`, `[SEP]`, `[MASK]`).

        Only WordPiece vocabularies have them; other kinds raise a `UserError`.

        Args:
            token: the token's text.

        Example:
            tok.special_id("[CLS]")  # 3 in a vocabulary learned by this version
        """
        raise UserError(f"question answering needs `tokenizer.kind: wordpiece` (this tokenizer is {self.kind!r})")

    def _meta(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}

    def save(self, directory: str | Path) -> None:
        """Writes `tokenizer.json` (and a vocabulary or model file where the
        kind has one) to `directory`, creating it; `load_tokenizer` reads it.

        Args:
            directory: a directory path.

        Example:
            tok.save("runs/x/tokenizer")
            load_tokenizer("runs/x/tokenizer").tokenize(["hi"])  # the same ids as tok's
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_assets(directory)
        (directory / META_FILE).write_text(json.dumps(self._meta(), indent=2, ensure_ascii=False))

    def _save_assets(self, directory: Path) -> None:
        pass

    def trackables(self) -> list:
        """TF resources (tables, tokenizer models) an exported graph must carry.

        Example:
            module.tokenizer_resources = tok.trackables()  # on a tf.Module, before saving
        """
        return []

    def _drop_special(self, ids):
        """Ragged ids without pad/eot, from dense or ragged input."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        keep = tf.logical_and(tf.not_equal(ids, self.pad_id), tf.not_equal(ids, self.eot_id))
        return tf.ragged.boolean_mask(ids, keep)


class CharTokenizer(Tokenizer):
    """Learned character vocabulary: ids 0 pad, 1 end-of-text, 2 unknown,
    then one id per character in `chars`' order. Unknown characters
    detokenize to U+FFFD.

    Args:
        chars: the vocabulary's characters (`train` sorts them).
        lowercase: lowercase text before looking it up.

    Example:
        tok = CharTokenizer(list(" Tabeo"))
        tok.tokenize(["To be!"])  # [[4, 8, 3, 6, 7, 2]]: "!" is unknown (2)
    """

    kind = "char"
    SPECIALS = ("<pad>", "<eot>", "<unk>")
    unk_id = 2

    def __init__(self, chars: list, lowercase: bool = False):
        super().__init__(lowercase)
        self.chars = list(chars)
        keys = tf.constant(self.chars if self.chars else [""], tf.string)
        values = tf.range(len(self.SPECIALS), len(self.SPECIALS) + max(len(self.chars), 1), dtype=tf.int32)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=self.unk_id
        )
        # Specials detokenize to nothing, unknown to U+FFFD.
        self._id_to_char = tf.constant(["", "", "\ufffd"] + self.chars, tf.string)

    @property
    def vocabulary_size(self) -> int:
        return len(self.SPECIALS) + len(self.chars)

    def trackables(self):
        return [self._table]

    def _tokenize(self, texts):
        chars = tf.strings.unicode_split(self.prepare(texts), "UTF-8", errors="replace")
        return tf.ragged.map_flat_values(self._table.lookup, chars)

    def _detokenize(self, ids):
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        chars = tf.ragged.map_flat_values(lambda v: tf.gather(self._id_to_char, tf.cast(v, tf.int32)), ids)
        return tf.strings.reduce_join(chars, axis=-1)

    def _meta(self):
        return {**super()._meta(), "chars": self.chars}

    @classmethod
    def train(cls, texts: tf.data.Dataset, config: TokenizerConfig) -> "CharTokenizer":
        """The most frequent characters of `texts` (all of them when
        `config.vocab_size` is 0), read until `config.sample_mb` is seen.

        Args:
            texts: a dataset of string[n] batches.
            config: the `TokenizerConfig` (`vocab_size`, `lowercase`, `sample_mb`).

        Example:
            CharTokenizer.train(tf.data.Dataset.from_tensor_slices(["abca"]).batch(1),
                                TokenizerConfig(kind="char")).chars  # ['a', 'b', 'c']
        """
        counts = collections.Counter()
        budget = int(config.sample_mb * 1e6)
        seen = 0
        for batch in texts:
            block = b"".join(batch.numpy())
            text = block.decode("utf-8", errors="replace")
            counts.update(text.lower() if config.lowercase else text)
            seen += len(block)
            if seen >= budget:
                break
        ranked = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        if config.vocab_size:
            room = config.vocab_size - len(cls.SPECIALS)
            if room < 1:
                raise UserError(f"tokenizer.vocab_size must exceed {len(cls.SPECIALS)} for a char tokenizer")
            ranked = ranked[:room]
        return cls(sorted(ranked), lowercase=config.lowercase)


class _KerasHubTokenizer(Tokenizer):
    """Shared plumbing for keras-hub tokenizers that emit ragged int ids."""

    def __init__(self, layer, lowercase: bool = False):
        super().__init__(lowercase)
        self.layer = layer

    def _tokenize(self, texts):
        ids = self.layer.tokenize(self.prepare(texts))
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        return tf.cast(ids, tf.int32)

    def trackables(self):
        return [self.layer]


class ByteTokenizer(_KerasHubTokenizer):
    """UTF-8 bytes 0..255 (byte 0 doubles as padding), end-of-text 256,
    through keras-hub's `ByteTokenizer`. Nothing to learn.

    Args:
        lowercase: lowercase text before splitting it into bytes.

    Example:
        ByteTokenizer().tokenize(["Hé"])  # [[72, 195, 169]]
    """

    kind = "byte"
    pad_id = 0
    eot_id = 256

    def __init__(self, lowercase: bool = False):
        import keras_hub

        super().__init__(keras_hub.tokenizers.ByteTokenizer(lowercase=False), lowercase)
        # keras-hub's `detokenize` makes its byte table on first use and keeps
        # it: a constant of whichever graph that was, which the next graph (a
        # second tf.data map, an eager call after a traced one) cannot use.
        # This table is made eagerly, so every graph can capture it;
        # tests/test_languages.py checks that keras-hub still needs it.
        self._byte_strings = tf.constant([bytes([b]) for b in range(256)])

    @property
    def vocabulary_size(self) -> int:
        return 257

    def _tokenize(self, texts):
        # keras-hub's ByteTokenizer fails on a batch in which every string is
        # empty (it squeezes a zero-size axis); a non-empty last row avoids
        # that and is dropped again. tests/test_data.py checks it is needed.
        ids = super()._tokenize(tf.concat([texts, tf.constant(["."])], axis=0))
        return ids[:-1]

    def _detokenize(self, ids):
        # What keras-hub's `detokenize` does, with the table made in `__init__`:
        # invalid UTF-8 (a character cut in the middle) becomes U+FFFD.
        pieces = tf.ragged.map_flat_values(lambda v: tf.gather(self._byte_strings, v), self._drop_special(ids))
        text = tf.strings.reduce_join(pieces, axis=-1)
        return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


class CodepointTokenizer(_KerasHubTokenizer):
    """Unicode code points below `vocab_size`; end-of-text is `vocab_size`,
    through keras-hub's `UnicodeCodepointTokenizer`. Nothing to learn.

    Args:
        vocab_size: code points kept (0: all of Unicode, 0x110000); higher
            ones map to keras-hub's replacement id.
        lowercase: lowercase text before splitting it.

    Example:
        tok = CodepointTokenizer(256)
        tok.tokenize(["Hé"]), tok.eot_id  # [[72, 233]], 256
    """

    kind = "codepoint"
    pad_id = 0

    def __init__(self, vocab_size: int, lowercase: bool = False):
        import keras_hub

        self.code_points = vocab_size or 0x110000
        self.eot_id = self.code_points
        super().__init__(
            keras_hub.tokenizers.UnicodeCodepointTokenizer(lowercase=False, vocabulary_size=self.code_points),
            lowercase,
        )

    @property
    def vocabulary_size(self) -> int:
        return self.code_points + 1

    def _detokenize(self, ids):
        return self.layer.detokenize(self._drop_special(ids))

    def _meta(self):
        return {**super()._meta(), "vocab_size": self.code_points}


class WordPieceTokenizer(_KerasHubTokenizer):
    """keras-hub WordPiece; `[PAD]` 0, `[UNK]` 1, `[EOT]` 2, then `[CLS]`,
    `[SEP]`, `[MASK]` for encoders (appended, so older vocabularies still load).

    Args:
        vocabulary: the pieces, in id order (`RESERVED` first, as `train`
            writes them; "##" marks a piece that continues a word).
        lowercase: lowercase text before splitting it.

    Example:
        tok = WordPieceTokenizer(WordPieceTokenizer.RESERVED + ["the", "cat", "##s"])
        tok.tokenize(["the cats dog"])  # [[6, 7, 8, 1]]: "dog" is [UNK] (1)
    """

    kind = "wordpiece"
    RESERVED = ["[PAD]", "[UNK]", "[EOT]", "[CLS]", "[SEP]", "[MASK]"]
    VOCAB_FILE = "vocab.txt"

    def __init__(self, vocabulary: list, lowercase: bool = False):
        import keras_hub

        self.vocabulary = list(vocabulary)
        self.pad_id = self.vocabulary.index("[PAD]")
        self.eot_id = self.vocabulary.index("[EOT]")
        super().__init__(
            keras_hub.tokenizers.WordPieceTokenizer(vocabulary=self.vocabulary, oov_token="[UNK]", lowercase=False),
            lowercase,
        )

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def special_id(self, token: str) -> int:
        """Id of `[CLS]`, `[SEP]` or `[MASK]`; a `UserError` asks to retrain a
        vocabulary that predates them. See `Tokenizer.special_id`."""
        if token not in self.vocabulary:
            raise UserError(
                f"tokenizer: the vocabulary has no {token}; question answering needs "
                "a wordpiece tokenizer trained by this version (retrain it)"
            )
        return self.vocabulary.index(token)

    def _detokenize(self, ids):
        return self.layer.detokenize(self._drop_special(ids))

    def _save_assets(self, directory):
        (directory / self.VOCAB_FILE).write_text("\n".join(self.vocabulary) + "\n", encoding="utf-8")

    @classmethod
    def train(cls, texts: tf.data.Dataset, config: TokenizerConfig) -> "WordPieceTokenizer":
        """A vocabulary of about `config.vocab_size` pieces learned by keras-hub's
        `compute_word_piece_vocabulary`.

        Args:
            texts: a dataset of string[n] batches.
            config: the `TokenizerConfig` (`vocab_size`, `lowercase`).

        Example:
            tok = WordPieceTokenizer.train(texts, TokenizerConfig(kind="wordpiece", vocab_size=200))
        """
        import keras_hub

        # Lowercase the way tokenizing will: keras-hub's `lowercase=True`
        # case-folds (ß -> ss, ½ -> 1⁄2), and words written with such
        # characters would then tokenize to [UNK].
        vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(
            texts.map(lowercased) if config.lowercase else texts,
            vocabulary_size=config.vocab_size,
            lowercase=False,
            reserved_tokens=cls.RESERVED,
        )
        return cls(vocab, lowercase=config.lowercase)


class SentencePieceTokenizer(_KerasHubTokenizer):
    """keras-hub SentencePiece (unigram); pad 0, unk 1, bos 2, eos 3 = end-of-text.

    Args:
        proto: a serialized SentencePiece model (what `train` learns; saved
            as `spm.model`).
        lowercase: lowercase text before splitting it.

    Example:
        tok = SentencePieceTokenizer(Path("runs/x/tokenizer/spm.model").read_bytes())
        tok.detokenize(tok.tokenize(["To be"]))  # [b"To be"] if it knows every character (NFKC-normalised)
    """

    kind = "sentencepiece"
    pad_id = 0
    eot_id = 3
    MODEL_FILE = "spm.model"

    def __init__(self, proto: bytes, lowercase: bool = False):
        import keras_hub

        self.proto = proto
        super().__init__(keras_hub.tokenizers.SentencePieceTokenizer(proto=proto), lowercase)

    @property
    def vocabulary_size(self) -> int:
        return int(self.layer.vocabulary_size())

    def _detokenize(self, ids):
        return self.layer.detokenize(self._drop_special(ids))

    def _save_assets(self, directory):
        (directory / self.MODEL_FILE).write_bytes(self.proto)

    @classmethod
    def train(cls, texts: tf.data.Dataset, config: TokenizerConfig) -> "SentencePieceTokenizer":
        """A unigram model of exactly `config.vocab_size` pieces, learned by
        the `sentencepiece` trainer with the settings keras-hub's
        `compute_sentence_piece_proto` uses (the same special ids), plus
        `config.character_coverage`, `byte_fallback` and `normalize`, which
        that helper does not pass on.

        Args:
            texts: a dataset of string[n] batches.
            config: the `TokenizerConfig` (`vocab_size`, `lowercase`,
                `character_coverage`, `byte_fallback`, `normalize`).

        Example:
            tok = SentencePieceTokenizer.train(texts, TokenizerConfig(kind="sentencepiece", vocab_size=200))
            tok = SentencePieceTokenizer.train(poems, TokenizerConfig(kind="sentencepiece", vocab_size=8000,
                                                                       normalize="none", byte_fallback=True))
        """
        import io

        import sentencepiece as spm

        from kerasllm.quiet import stderr_silenced

        if config.normalize == "none":
            # No rule and no whitespace collapsing: the pieces spell the text
            # exactly. Lowercasing, if asked for, happens here as `prepare`
            # does it when tokenizing (the NFKC rule's _cf variant case-folds).
            rule, extra = "identity", dict(remove_extra_whitespaces=False)
            texts = texts.map(lowercased) if config.lowercase else texts
        else:
            rule, extra = ("nmt_nfkc_cf" if config.lowercase else "nmt_nfkc"), {}
        model = io.BytesIO()
        try:
            with stderr_silenced():
                spm.SentencePieceTrainer.train(
                    sentence_iterator=texts.unbatch().as_numpy_iterator(), model_writer=model,
                    vocab_size=config.vocab_size, model_type="unigram", normalization_rule_name=rule,
                    character_coverage=config.character_coverage, byte_fallback=config.byte_fallback,
                    pad_id=0, unk_id=1, bos_id=2, eos_id=3, **extra)
        except RuntimeError as e:  # sentencepiece reports an impossible size this way
            reason = str(e).splitlines()[-1].split("] ")[-1]
            reason = reason.replace("with --character_coverage option", "(tokenizer.character_coverage)")
            raise UserError(f"tokenizer.vocab_size={config.vocab_size}: {reason}") from None
        return cls(model.getvalue(), lowercase=config.lowercase)


class PretrainedTokenizer(Tokenizer):
    """A pretrained checkpoint's own tokenizer (`tokenizer.kind: pretrained`):
    keras-hub's layer for the family (GPT-2 and Llama 3 byte-level BPE, ...),
    loaded by keras-hub from the checkpoint's files, in tf.data and in exports.

    Ids are the checkpoint's. The end-of-text id is the family's end token.
    Padding is keras-hub's pad id (0 for GPT-2 and Llama 3), an ordinary
    token of the vocabulary: it must differ from the end-of-text id, which
    keras-hub's samplers stop at wherever it stands after a prompt, so
    `detokenize` drops end-of-text and start ids but keeps id 0 (callers
    cut padding off by length or mask, as every kerasllm path does).
    Prompts and scored texts start with the family's start token
    (`start_id`: GPT-2's end-of-text, Llama 3's begin-of-text), as its
    pretraining did.

    Args:
        layer: a keras-hub `Tokenizer` (e.g. `keras_hub.tokenizers.GPT2Tokenizer`).

    Example:
        tok = PretrainedTokenizer.from_checkpoint("checkpoints/gpt2")
        tok.tokenize(["Hello world"])  # GPT-2's ids, [[15496, 995]] for the real GPT-2
    """

    kind = "pretrained"
    CONFIG_FILE = "keras_hub_tokenizer.json"
    ASSETS_DIR = "keras_hub_assets"

    def __init__(self, layer):
        super().__init__(lowercase=False)
        self.layer = layer
        self.eot_id = int(layer.end_token_id)
        pad = getattr(layer, "pad_token_id", None)
        pad = 0 if pad is None else int(pad)
        self.pad_id = pad if pad != self.eot_id else int(self.eot_id == 0)  # any id but end-of-text
        start = getattr(layer, "start_token_id", None)
        self._start_id = self.eot_id if start is None else int(start)

    @property
    def start_id(self) -> int:
        return self._start_id

    @property
    def fill_id(self) -> int:
        return self.eot_id

    @classmethod
    def from_checkpoint(cls, path: str) -> "PretrainedTokenizer":
        """The tokenizer of a Hugging Face directory or keras-hub preset,
        read by keras-hub's converters."""
        import keras_hub

        try:
            return cls(keras_hub.tokenizers.Tokenizer.from_preset(str(path)))
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"train.init_from: cannot read the tokenizer of {path}: {e}") from None

    @property
    def vocabulary_size(self) -> int:
        return int(self.layer.vocabulary_size())

    def special_id(self, token: str) -> int:
        """Id of `[CLS]`, `[SEP]` or `[MASK]` in a BERT-family checkpoint's
        WordPiece vocabulary (question answering frames windows with them);
        a `UserError` for a vocabulary without it. See `Tokenizer.special_id`.

        Example:
            PretrainedTokenizer.from_checkpoint("checkpoints/bert").special_id("[CLS]")  # 101 in bert-base-uncased
        """
        from keras_hub.tokenizers import WordPieceTokenizer

        if isinstance(self.layer, WordPieceTokenizer):
            try:
                return int(self.layer.token_to_id(token))
            except ValueError:  # keras-hub's answer for a token outside the vocabulary
                pass
        raise UserError(f"tokenizer: the checkpoint's tokenizer ({type(self.layer).__name__}) has no {token} token; "
                        "question answering starts from a BERT-family checkpoint (WordPiece)")

    def _tokenize(self, texts):
        ids = self.layer.tokenize(texts)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        return tf.cast(ids, tf.int32)

    def _detokenize(self, ids):
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        ids = tf.cast(ids, tf.int32)
        keep = tf.logical_and(tf.not_equal(ids, self.eot_id), tf.not_equal(ids, self.start_id))
        text = self.layer.detokenize(tf.ragged.boolean_mask(ids, keep))
        # Byte-level BPE pieces are bytes: ids cut inside a character (a
        # sampled continuation, a window) leave invalid UTF-8, which becomes
        # U+FFFD here so that every string out of kerasllm is valid text.
        return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")

    def trackables(self):
        return [self.layer]

    def _meta(self):
        return {**super()._meta(), "vocabulary_size": self.vocabulary_size}

    def _save_assets(self, directory):
        # keras-hub's own serialization of the layer (its config and
        # vocabulary files), without the model config that a keras-hub
        # preset directory would also need.
        import keras

        (directory / self.CONFIG_FILE).write_text(json.dumps(keras.saving.serialize_keras_object(self.layer)))
        assets = directory / self.ASSETS_DIR
        assets.mkdir(exist_ok=True)
        self.layer.save_assets(str(assets))

    @classmethod
    def load(cls, directory: Path) -> "PretrainedTokenizer":
        import keras
        import keras_hub  # noqa: F401  (registers the keras-hub classes the config names)

        layer = keras.saving.deserialize_keras_object(json.loads((directory / cls.CONFIG_FILE).read_text()))
        layer.load_assets(str(directory / cls.ASSETS_DIR))
        return cls(layer)


def unknown_characters(texts: list[str], tokenize, unk_id: int) -> list[str]:
    """The distinct characters of `texts` (in order of first appearance)
    whose ids include `unk_id`.

    Each character is tokenized on its own, so this works from a tokenize
    function alone (an exported model's `tokenize` signature, say) and
    applies the tokenizer's own lowercasing and splitting.

    Args:
        texts: strings to check.
        tokenize: list of strings -> one list of ids per string.
        unk_id: the unknown id.

    Example:
        unknown_characters(["日本語 ROMEO"], lambda t: tok.tokenize(t).to_list(), tok.unk_id)  # ['日', '本', '語']
    """
    distinct = list(dict.fromkeys("".join(texts)))
    if not distinct:
        return []
    return [c for c, ids in zip(distinct, tokenize(distinct)) if unk_id in list(ids)]


def unknown_characters_message(chars: list[str], most: int = 20) -> str:
    """One warning line naming characters a model reads as unknown.

    Args:
        chars: the characters (`unknown_characters`' result).
        most: name at most this many, then count the rest.

    Example:
        unknown_characters_message(["日", "本"])
        # "2 characters not in the model's vocabulary, read as unknown (<unk>): '日' '本'"
    """
    named = " ".join(repr(c) for c in chars[:most]) + (f" and {len(chars) - most} more" if len(chars) > most else "")
    return (f"{len(chars)} character{'s' if len(chars) != 1 else ''} not in the model's vocabulary, read as "
            f"unknown (<unk>): {named}")


@tf.autograph.experimental.do_not_convert  # its maps are plain TF ops: no AutoGraph rewrite
def _sample(batches: tf.data.Dataset, config: TokenizerConfig) -> tf.data.Dataset:
    """Batches of non-empty lines, stopping once `sample_mb` is gathered.

    Works on whole batches: per-string tf.data steps would dominate the time
    spent learning a vocabulary from tens of megabytes of short lines.
    """
    budget = int(config.sample_mb * 1e6)
    sizes = batches.map(lambda t: tf.reduce_sum(tf.cast(tf.strings.length(t), tf.int64)))
    before = sizes.scan(tf.constant(0, tf.int64), lambda acc, n: (acc + n, acc))
    kept = tf.data.Dataset.zip((batches, before)).take_while(lambda t, b: b < budget).map(lambda t, _: t)
    return kept.map(lambda t: tf.boolean_mask(t, tf.strings.length(tf.strings.strip(t)) > 0))


def train_tokenizer(config: TokenizerConfig, texts: tf.data.Dataset, label: str = "") -> Tokenizer:
    """Learns a tokenizer from a dataset of string batches (string[n] each;
    the training split). `label` names it in the progress line ("source").

    `byte` and `codepoint` learn nothing; the others read non-empty lines
    until `config.sample_mb` megabytes are seen.

    Args:
        config: the `TokenizerConfig` (`kind`, `vocab_size`, `lowercase`,
            `sample_mb`).
        texts: a dataset of string[n] batches.
        label: a word for the progress line ("source", "target"), or "".

    Returns:
        A `Tokenizer` of `config.kind`; a `UserError` names an impossible
        `vocab_size` or an empty text.

    Example:
        texts = tf.data.Dataset.from_tensor_slices(["To be, or not to be"] * 50).batch(16)
        tok = train_tokenizer(TokenizerConfig(kind="char"), texts)
        tok.vocabulary_size  # 3 specials + 9 distinct characters = 12
    """
    if config.kind == "byte":
        return ByteTokenizer(lowercase=config.lowercase)
    if config.kind == "codepoint":
        return CodepointTokenizer(config.vocab_size, lowercase=config.lowercase)
    from kerasllm import progress

    with progress.learning_tokenizer(config, label) as counted:
        return _learn(config, counted(_sample(texts, config)))


def _learn(config: TokenizerConfig, sample: tf.data.Dataset) -> Tokenizer:
    if config.kind == "char":
        tok = CharTokenizer.train(sample, config)
        if not tok.chars:
            raise UserError("the training text is empty: no characters to build a vocabulary from")
        return tok
    if config.kind == "wordpiece":
        tok = WordPieceTokenizer.train(sample, config)
        # The WordPiece learner searches for a count threshold and lands
        # within a few percent of the size asked for; far below it, the corpus
        # simply has too few distinct pieces.
        if tok.vocabulary_size < 0.9 * config.vocab_size:
            raise UserError(
                f"tokenizer.vocab_size={config.vocab_size} is larger than this corpus allows "
                f"(WordPiece found only {tok.vocabulary_size} pieces); lower it"
            )
        return tok
    if config.kind == "sentencepiece":
        return SentencePieceTokenizer.train(sample, config)
    raise UserError(f"tokenizer.kind: unknown kind {config.kind!r}")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer that `Tokenizer.save` wrote to `directory`.

    Args:
        directory: a directory holding `tokenizer.json` (a run's `tokenizer/`).

    Returns:
        A `Tokenizer`; a `UserError` when `tokenizer.json` is missing or
        names an unknown kind.

    Example:
        tok = load_tokenizer("runs/smoke/tokenizer")
    """
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise UserError(f"no tokenizer in {directory} (missing {META_FILE})")
    meta = json.loads(meta_path.read_text())
    kind, lowercase = meta["kind"], meta.get("lowercase", False)
    if kind == "char":
        return CharTokenizer(meta["chars"], lowercase)
    if kind == "byte":
        return ByteTokenizer(lowercase)
    if kind == "codepoint":
        return CodepointTokenizer(meta["vocab_size"], lowercase)
    if kind == "wordpiece":
        vocab = (directory / WordPieceTokenizer.VOCAB_FILE).read_text(encoding="utf-8").splitlines()
        return WordPieceTokenizer(vocab, lowercase)
    if kind == "sentencepiece":
        return SentencePieceTokenizer((directory / SentencePieceTokenizer.MODEL_FILE).read_bytes(), lowercase)
    if kind == "pretrained":
        return PretrainedTokenizer.load(directory)
    raise UserError(f"{meta_path}: unknown tokenizer kind {kind!r}")
