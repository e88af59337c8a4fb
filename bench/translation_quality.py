"""Translation quality in a fixed time: train configs/spa-eng-transformer.yaml
for --minutes on this machine, then BLEU and chrF (sacrebleu) on the test
split, greedy and beam 4, ROUGE-1 and ROUGE-2 as the Keras example
"English-to-Spanish translation with KerasHub" scores them, training speed,
and translation speed in-process and through the exported SavedModel.

    python bench/translation_quality.py [--minutes 60] [--beam-sentences 1000]
    python bench/translation_quality.py --minutes 0.2 --test-sentences 64 --beam-sentences 16   # quick check

Prints one JSON line. Beam search is scored on the first --beam-sentences
test sentences (0 = all), since it is several times slower than greedy,
with the default length penalty (0.6). Training pairs/s and tokens/s divide
by the run's measured training time (the clock its time limit reads: the
fit, validations included; tokenizer training and counting come before it).
Tokens count source and target (no padding), from the mean length of 10,000
training pairs. The exported translator translates the same sentences
(greedy: all those scored; beam 4: the beam subset) and the JSON says on
how many it was compared and how many came out the same.

ROUGE is keras_hub.metrics.RougeN (rouge-score underneath: `pip install -e
.[bench]`), as in the example, on the sentences the example scores: its
first 30 test pairs, greedy. The example's test pairs are its own random
15% of the pairs, so here the first 30 of this config's test split stand in.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

from record import config_entry, emit  # noqa: E402  (bench/record.py)

# keras.io examples/nlp/neural_machine_translation_with_keras_hub.py scores
# ROUGE on `test_pairs[:30]`, greedy decoding.
KERAS_EXAMPLE_SENTENCES = 30


def keras_example_rouge(hypotheses: list, references: list) -> dict:
    """ROUGE-1 and ROUGE-2 (precision, recall, F1, averaged over sentences) of
    the first KERAS_EXAMPLE_SENTENCES pairs, with the example's metric class
    and call order (reference first). rouge-score's tokenizer lowercases and
    splits at every character outside a-z0-9, accented letters included."""
    import keras_hub

    n = min(KERAS_EXAMPLE_SENTENCES, len(references))
    scores = {}
    for order in (1, 2):
        metric = keras_hub.metrics.RougeN(order=order)
        for reference, hypothesis in zip(references[:n], hypotheses[:n]):
            metric(reference, hypothesis)
        scores[f"rouge{order}"] = {k: round(float(v), 4) for k, v in metric.result().items()}
    return {
        "sentences": n,
        "subset": f"the first {n} sentences of the test split, greedy (the example: test_pairs[:30] of its own "
                  "random 15% test split, so not the same sentences)",
        "metric": "keras_hub.metrics.RougeN(order=1 and 2), use_stemmer=False",
        **scores,
        "keras_example_after_10_epochs_f1": {"rouge1": 0.579, "rouge2": 0.381},
    }


def compare(exported: list, in_process: list) -> dict:
    """How many of the exported translations equal the in-process ones."""
    same = sum(a == b for a, b in zip(exported, in_process))
    return {"compared_sentences": len(in_process), "equal_sentences": same,
            "equals_in_process": same == len(in_process) == len(exported)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--beam-sentences", type=int, default=1000)
    parser.add_argument("--test-sentences", type=int, default=0, help="score the first N test sentences (0 = all)")
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()

    from kerasllm import config as config_lib
    from kerasllm.run_dir import RunDir
    from kerasllm.training.trainer import train

    run_dir = args.run_dir or os.path.join(tempfile.mkdtemp(prefix="kerasllm-bench-"), "spa-eng")
    overrides = [f"train.time_limit_minutes={args.minutes}", "train.epochs=100", "train.num_samples=0"]
    config = config_lib.load(os.path.join(ROOT, "configs/spa-eng-transformer.yaml"), overrides)
    start = time.perf_counter()
    result = train(config, run_dir=run_dir, verbose=0, print_fn=lambda s: None)
    call_seconds = time.perf_counter() - start
    fit_seconds = RunDir(run_dir).load_state().train_seconds
    pairs_per_s = result.steps * config.train.batch_size / fit_seconds
    quality, lm = translation_quality(run_dir, args)

    emit({
        "benchmark": "translation_quality",
        "minutes_budget": args.minutes,
        "train_seconds": round(fit_seconds, 1),
        "train_call_seconds": round(call_seconds, 1),
        "steps": result.steps,
        "pairs_per_s_training": round(pairs_per_s, 1),
        "tokens_per_s_training": round(pairs_per_s * tokens_per_pair(lm, run_dir)),
        "best_val_loss": round(result.best_val_loss, 4),
        "parameters": int(lm.model.count_params()),
        **quality,
    }, configs={"run": config_entry(config, overrides)})


def load_test_pairs(lm, run_dir: str, limit: int) -> tuple[list, list, int]:
    """(sources, references) of the first `limit` test pairs (0 = all), and
    how many pairs the test split has."""
    from kerasllm.data.pair_corpus import open_pair_corpus

    sources, references = [], []
    for s, t in open_pair_corpus(lm.config, Path(run_dir)).pairs("test"):
        sources += [x.decode() for x in s.numpy()]
        references += [x.decode() for x in t.numpy()]
    n = len(sources) if limit == 0 else min(limit, len(sources))
    return sources[:n], references[:n], len(sources)


def tokens_per_pair(lm, run_dir: str) -> float:
    """Mean source + target tokens of 10,000 training pairs (no padding)."""
    from kerasllm.data.pair_corpus import open_pair_corpus

    sample = [(s.numpy(), t.numpy()) for s, t in open_pair_corpus(lm.config, Path(run_dir)).pairs("train").take(10)]
    src = [x for s, _ in sample for x in s][:10_000]
    tgt = [x for _, t in sample for x in t][:10_000]
    sources, _, labels = lm.preprocessor.encode_pairs(src, tgt)  # labels: the target's ids, then end-of-text
    return (float(sources.row_lengths().numpy().mean())
            + float(labels.row_lengths().numpy().mean()) - 1)


def translation_quality(run_dir: str, args) -> tuple[dict, object]:
    """Scores of greedy and beam-4 decoding on the test split, in-process
    and through the export, and the loaded run."""
    import sacrebleu

    from kerasllm.export.runs import export_run
    from kerasllm.export.client import TranslatorClient
    from kerasllm.loaded_run import load_run
    from kerasllm.inference.translate import translate

    lm = load_run(run_dir)
    sources, references, split_size = load_test_pairs(lm, run_dir, args.test_sentences)

    def translate_all(translate_batch, beams, n):
        hyps, t0 = [], time.perf_counter()
        for i in range(0, n, 64):
            hyps += translate_batch(sources[i : min(i + 64, n)], beams)
        return hyps, time.perf_counter() - t0

    def in_process(part, beams):
        return translate(lm.model, lm.tokenizer, lm.target_tokenizer, part, max_length=lm.config.model.seq_len,
                         beams=beams, length_penalty=0.6)

    def scores(hyps, seconds=None):
        refs = references[: len(hyps)]
        out = {"sentences": len(hyps), "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
               "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2)}
        return out if seconds is None else {**out, "sentences_per_s": round(len(hyps) / seconds, 1)}

    beam_n = len(sources) if args.beam_sentences == 0 else min(args.beam_sentences, len(sources))
    hyps = {1: translate_all(in_process, 1, len(sources)), 4: translate_all(in_process, 4, beam_n)}
    greedy_same = scores(hyps[1][0][:beam_n])

    # The exported translator: export time and size, speed, and the same output.
    export = export_run(run_dir, "spa-eng", os.path.join(os.path.dirname(run_dir), "saved_models"))
    served = TranslatorClient.open(model=export["path"])
    exported = {}
    for beams, (in_process_hyps, _) in hyps.items():
        served.translate(sources[:8], beams)  # first call loads the graph
        out, seconds = translate_all(lambda part, b: served.translate(part, b, 0.6), beams, len(in_process_hyps))
        exported[f"beams{beams}"] = {"sentences_per_s": round(len(out) / seconds, 1), **compare(out, in_process_hyps)}
    return {
        "test_pairs": split_size,
        "test_pairs_scored": len(sources),
        "greedy": scores(*hyps[1]),
        "beam4": scores(*hyps[4]),
        "greedy_on_beam_subset": greedy_same,
        "rouge_as_keras_example": keras_example_rouge(hyps[1][0], references),
        "export": {"seconds": export["seconds"], "size_mb": export["size_mb"], **exported},
    }, lm


if __name__ == "__main__":
    main()
