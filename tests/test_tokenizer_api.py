"""The tokenizers' public API (`tokenize`, `detokenize`, `prepare`): present on
every kind, the same ids eagerly, inside a `tf.function` and inside tf.data,
and the only way other modules reach a tokenizer's ids.

Each kind gets a tiny hand-written vocabulary (no training): keras-hub
tokenizers take a different Python path in eager mode than in a graph, and
WordPiece/SentencePiece are where results could differ.
"""

import re
from pathlib import Path

import pytest
import tensorflow as tf

from kerasllm.data.tokenizers import (
    ByteTokenizer,
    CharTokenizer,
    CodepointTokenizer,
    SentencePieceTokenizer,
    WordPieceTokenizer,
)

TEXTS = ["the cat sat", "un chat", "", "THE CATS"]


def _sentencepiece_proto() -> bytes:
    """A unigram model written piece by piece: pad 0, unk 1, bos 2, eos 3."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    kind = pb.ModelProto.SentencePiece.Type
    for piece, type_ in [("<pad>", kind.CONTROL), ("<unk>", kind.UNKNOWN), ("<s>", kind.CONTROL), ("</s>", kind.CONTROL)]:
        model.pieces.add(piece=piece, score=0.0, type=type_)
    for rank, piece in enumerate(["\u2581the", "\u2581cat", "\u2581", "s", "a", "t", "h", "e", "c", "u", "n"]):
        model.pieces.add(piece=piece, score=-float(rank), type=kind.NORMAL)
    model.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    model.trainer_spec.pad_id, model.trainer_spec.unk_id = 0, 1
    model.trainer_spec.bos_id, model.trainer_spec.eos_id = 2, 3
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    return model.SerializeToString()


def _tokenizer(kind):
    if kind == "char":
        return CharTokenizer(sorted(set("the cat sat un chat")), lowercase=True)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "codepoint":
        return CodepointTokenizer(256, lowercase=True)
    if kind == "wordpiece":
        pieces = ["the", "cat", "sat", "un", "ch", "##at", "##s", "c", "##h"]
        return WordPieceTokenizer(WordPieceTokenizer.RESERVED + pieces, lowercase=True)
    return SentencePieceTokenizer(_sentencepiece_proto())


KINDS = ["char", "byte", "codepoint", "wordpiece", "sentencepiece"]


@pytest.mark.parametrize("kind", KINDS)
def test_public_api_gives_the_same_ids_eagerly_and_in_graphs(kind):
    tok = _tokenizer(kind)
    texts = tf.constant(TEXTS)
    eager = tok.tokenize(TEXTS)
    assert isinstance(eager, tf.RaggedTensor) and eager.dtype == tf.int32
    ids = eager.to_list()
    assert ids[2] == [] and all(ids[i] for i in (0, 1, 3))
    assert max(max(row) for row in ids if row) < tok.vocabulary_size
    # Inside a tf.function and inside a tf.data map (the pipelines' and the
    # exports' use) the ops are traced into the caller's graph.
    assert tf.function(lambda t: tok.tokenize(t))(texts).to_list() == ids
    in_data = tf.data.Dataset.from_tensors(texts).map(lambda t: tok.tokenize(t).to_tensor(-1))
    assert in_data.get_single_element().numpy().tolist() == eager.to_tensor(-1).numpy().tolist()
    # Detokenizing: ragged or dense padded ids, eagerly or traced, one result;
    # padding and end-of-text ids drop out. A fresh tokenizer per graph:
    # keras-hub's ByteTokenizer keeps the byte table it makes in the first
    # graph that detokenizes, and a second graph cannot use it.
    text = tok.detokenize(eager)
    assert text.dtype == tf.string and text.shape == [len(TEXTS)]
    padded = tf.concat([eager.to_tensor(tok.pad_id), tf.fill([len(TEXTS), 1], tok.eot_id)], axis=1)
    assert _tokenizer(kind).detokenize(padded).numpy().tolist() == text.numpy().tolist()
    again = _tokenizer(kind)
    traced = tf.function(lambda i: again.detokenize(i))(padded)
    assert traced.numpy().tolist() == text.numpy().tolist()
    assert tok.prepare(texts).numpy().tolist() == (
        [t.lower().encode() for t in TEXTS] if tok.lowercase else texts.numpy().tolist())


def test_known_ids_of_the_tiny_vocabularies():
    """The hand-written vocabularies give the ids one works out by hand, so
    the comparison above compares real tokenizations."""
    assert _tokenizer("wordpiece").tokenize(["The cats chat"]).to_list() == [[6, 7, 12, 10, 11]]
    assert _tokenizer("sentencepiece").tokenize(["the cats"]).to_list() == [[4, 5, 7]]
    assert _tokenizer("byte").tokenize(["Hi"]).to_list() == [[72, 105]]
    assert _tokenizer("char").detokenize([[0, 1, 2]]).numpy().tolist() == ["\ufffd".encode()]


def test_no_module_reaches_into_a_tokenizer():
    """Other modules use the public methods; the underscore ones are the
    subclasses' implementation behind them."""
    root = Path(__file__).resolve().parents[1]
    private = re.compile(r"\.(_tokenize|_detokenize|_prepare)\(")
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("kerasllm", "cli", "bench")
        for path in (root / folder).rglob("*.py")
        if path.name != "tokenizers.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []
