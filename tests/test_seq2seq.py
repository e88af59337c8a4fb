"""The encoder-decoder translator: a tiny model learns a toy mapping through
the translation pipeline; cached decoding equals full recompute; padding is
masked; beam 1 equals greedy."""

import keras
import keras_hub
import numpy as np
import pytest

from kerasllm.config import DataConfig, TokenizerConfig
from kerasllm.data.pair_batches import pair_batches, train_pair_tokenizers
from kerasllm.data.paired_text import pair_dataset, split_pairs
from kerasllm.data.sources import resolve_source
from kerasllm.inference.translate import translate
from kerasllm.models.seq2seq import Seq2SeqBackbone, Seq2SeqTranslator

# One test process builds this file's module fixtures once (setup.cfg: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_seq2seq")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 1-layer translator trained for seconds on word -> WORD pairs."""
    tmp = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdef"), rng.integers(3, 7))) for _ in range(1500)]
    (tmp / "toy.tsv").write_text("".join(f"{w}\t{w.upper()}\n" for w in words))
    config = DataConfig(source=str(tmp / "toy.tsv"), val_fraction=0.1)
    pairs = pair_dataset(resolve_source(config), config)
    train = split_pairs(pairs, config, "train")
    tok, _ = train_pair_tokenizers(TokenizerConfig(kind="char"), train)
    batches = pair_batches(train, tok, tok, max_length=12, batch_size=32, training=True).repeat()
    keras.utils.set_random_seed(0)
    model = Seq2SeqTranslator(Seq2SeqBackbone(tok.vocabulary_size, tok.vocabulary_size, 1, 2, 64, 128,
                                              max_sequence_length=12, shared_embeddings=True))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    history = model.fit(batches, steps_per_epoch=150, epochs=2, verbose=0)
    held_out = [s.decode() for sources, _ in split_pairs(pairs, config, "validation") for s in sources.numpy()][:40]
    return model, tok, history, held_out


@pytest.mark.slow
def test_tiny_translator_learns_a_toy_mapping(toy):
    model, tok, history, held_out = toy
    assert history.history["accuracy"][-1] > 0.9  # chance is about 1/14
    greedy = translate(model, tok, tok, held_out, max_length=12)
    assert np.mean([g == w.upper() for g, w in zip(greedy, held_out)]) > 0.8, list(zip(held_out, greedy))[:5]
    assert translate(model, tok, tok, held_out[:8], max_length=12, beams=1) == greedy[:8]
    beam = translate(model, tok, tok, held_out[:8], max_length=12, beams=3)
    assert np.mean([b == w.upper() for b, w in zip(beam, held_out)]) > 0.7


def _inputs(src, src_mask, length=10, start=1):
    dec = np.zeros((len(src), length), "int32")
    dec[:, 0] = start
    mask = np.zeros_like(dec, bool)
    mask[:, 0] = True
    return {"encoder_token_ids": src, "encoder_padding_mask": src_mask, "decoder_token_ids": dec, "decoder_padding_mask": mask}


@pytest.mark.slow
def test_cached_decoding_matches_full_recompute_and_padding_is_masked(toy):
    model, tok, _, _ = toy
    rng = np.random.default_rng(1)
    src = rng.integers(3, tok.vocabulary_size, (3, 7)).astype("int32")
    src_mask = np.ones((3, 7), bool)
    src_mask[1, 4:] = False
    model.compile(sampler="greedy")
    model.generate_function = None
    greedy = model.generate(_inputs(src, src_mask, start=tok.eot_id), stop_token_ids=None)["decoder_token_ids"]
    for i in range(3):
        seq = [tok.eot_id]
        while len(seq) < 10:
            d = np.array([seq], "int32")
            logits = model({"encoder_token_ids": src[i : i + 1], "encoder_padding_mask": src_mask[i : i + 1],
                            "decoder_token_ids": d, "decoder_padding_mask": np.ones_like(d, bool)}).numpy()
            seq.append(int(logits[0, -1].argmax()))
        assert greedy[i].tolist() == seq
    assert len(set(greedy.ravel().tolist())) > 3
    model.compile(sampler=keras_hub.samplers.BeamSampler(num_beams=1))
    model.generate_function = None
    beam = model.generate(_inputs(src, src_mask, start=tok.eot_id), stop_token_ids=None)["decoder_token_ids"]
    assert (beam == greedy).all()
    noisy = src.copy()
    noisy[1, 4:] = 5  # source tokens under the padding mask change nothing
    model.compile(sampler="greedy")
    model.generate_function = None
    again = model.generate(_inputs(noisy, src_mask, start=tok.eot_id), stop_token_ids=None)["decoder_token_ids"]
    assert (again == greedy).all()


def test_shared_embeddings_tie_encoder_decoder_and_output():
    def count(shared):
        return Seq2SeqTranslator(Seq2SeqBackbone(20, 20, 1, 2, 32, 64, max_sequence_length=16, shared_embeddings=shared)).count_params()

    assert count(False) - count(True) == 20 * 32
    with pytest.raises(ValueError, match="one vocabulary"):
        Seq2SeqBackbone(20, 30, 1, 1, 8, 8, shared_embeddings=True)
