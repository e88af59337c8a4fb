"""BeamSearch on a hand-made next-token table, so every score is known:
finished beams stop growing, the length penalty decides between a short and
a longer answer, one beam is greedy, and width/penalty may be tensors."""

import numpy as np
import tensorflow as tf

from kerasllm.inference.beam_search import BeamSearch

START, EOT, A, B = 0, 1, 2, 3
# next-token probabilities given the previous token
TABLE = np.log(np.array([
    [1e-6, 0.40, 0.35, 0.25],  # after START: end now (0.40), or "a" (0.35) ...
    [0.25, 0.25, 0.25, 0.25],  # after EOT (never read: finished beams are frozen)
    [1e-6, 0.90, 0.05, 0.05],  # after "a": almost surely end
    [1e-6, 0.50, 0.25, 0.25],  # after "b"
], dtype="float32"))


def _next(prompt, cache, index):
    logits = tf.gather(tf.constant(TABLE), prompt[:, index - 1])
    return logits, None, cache


def _search(beams, penalty, rows=1, length=5):
    prompt = tf.fill([rows, length], START)
    mask = tf.concat([tf.ones([rows, 1], tf.bool), tf.zeros([rows, length - 1], tf.bool)], axis=1)
    out = BeamSearch(num_beams=beams, length_penalty=penalty)(_next, prompt, index=1, mask=mask, stop_token_ids=(EOT,))
    return out.numpy().tolist()


def test_raw_log_prob_prefers_the_short_answer():
    # "eot": log 0.40 = -0.92 beats "a eot": log(0.35 * 0.90) = -1.16; the
    # search ends once both beams finished (later positions stay as given).
    assert _search(beams=2, penalty=0.0) == [[START, EOT, START, START, START]]


def test_length_penalty_prefers_the_longer_answer():
    # normalised by ((5 + n) / 6) ** 2: -0.92 / 1 < -1.16 / 1.36 = -0.85
    assert _search(beams=2, penalty=2.0) == [[START, A, EOT, START, START]]


def test_one_beam_is_greedy_whatever_the_penalty():
    assert _search(beams=1, penalty=0.0) == _search(beams=1, penalty=2.0) == [[START, EOT, START, START, START]]


def test_width_and_penalty_as_tensors_in_a_graph():
    @tf.function
    def search(beams, penalty):
        prompt = tf.fill([3, 5], START)
        mask = tf.concat([tf.ones([3, 1], tf.bool), tf.zeros([3, 4], tf.bool)], axis=1)
        return BeamSearch(beams, penalty)(_next, prompt, index=1, mask=mask, stop_token_ids=(EOT,))

    short = search(tf.constant(2), tf.constant(0.0)).numpy()
    long = search(tf.constant(3), tf.constant(2.0)).numpy()
    assert (short[:, 1] == EOT).all() and (long[:, 1:3] == [A, EOT]).all()


def test_prompt_positions_are_kept_and_finished_beams_freeze():
    """A longer prompt in the batch is copied, not searched; the first row
    finishes at once and its answer stays while the second goes on."""
    prompt = tf.constant([[START, 0, 0, 0, 0], [START, B, 0, 0, 0]])
    mask = tf.constant([[True, False, False, False, False], [True, True, False, False, False]])
    out = BeamSearch(num_beams=2, length_penalty=0.0)(_next, prompt, index=1, mask=mask, stop_token_ids=(EOT,))
    assert out.numpy().tolist() == [[START, EOT, EOT, START, START], [START, B, EOT, START, START]]
