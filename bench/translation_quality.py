"""Translation quality in a fixed time: train configs/spa-eng-transformer.yaml
for --minutes on this machine, then BLEU and chrF (sacrebleu) on the test
split, greedy and beam 4, plus ROUGE-1 F1 for comparison with the Keras
"English-to-Spanish translation with KerasHub" example, training speed and
translation speed.

    python bench/translation_quality.py [--minutes 60] [--beam-sentences 1000]

Prints one JSON line. Beam search is scored on the first --beam-sentences
test sentences (0 = all), since it is several times slower than greedy.
ROUGE-1 F1 follows rouge_score's default tokenisation (lowercase, runs of
characters outside a-z0-9 are separators), averaged over sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def rouge1_f1(hypotheses, references) -> float:
    def tokens(text):
        return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()

    scores = []
    for h, r in zip(hypotheses, references):
        h, r = tokens(h), tokens(r)
        overlap = sum(min(h.count(w), r.count(w)) for w in set(h))
        if not h or not r or not overlap:
            scores.append(0.0)
            continue
        p, q = overlap / len(h), overlap / len(r)
        scores.append(2 * p * q / (p + q))
    return sum(scores) / max(len(scores), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--beam-sentences", type=int, default=1000)
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()

    import sacrebleu

    from kerasllm import config as config_lib
    from kerasllm.data.pair_corpus import open_pair_corpus
    from kerasllm.inference.generate import load_run
    from kerasllm.inference.translate import translate
    from kerasllm.training.trainer import train

    run_dir = args.run_dir or os.path.join(tempfile.mkdtemp(prefix="kerasllm-bench-"), "spa-eng")
    config = config_lib.load(os.path.join(ROOT, "configs/spa-eng-transformer.yaml"),
                             [f"train.time_limit_minutes={args.minutes}", "train.epochs=100", "train.num_samples=0"])
    start = time.perf_counter()
    result = train(config, run_dir=run_dir, verbose=0, print_fn=lambda s: None)
    train_seconds = time.perf_counter() - start

    lm = load_run(run_dir)
    corpus = open_pair_corpus(lm.config, Path(run_dir))
    sources, references = [], []
    for s, t in corpus.pairs("test"):
        sources += [x.decode() for x in s.numpy()]
        references += [x.decode() for x in t.numpy()]

    def run(beams, n):
        hyps, t0 = [], time.perf_counter()
        for i in range(0, n, 64):
            hyps += translate(lm.model, lm.tokenizer, lm.target_tokenizer, sources[i : min(i + 64, n)],
                              max_length=lm.config.model.seq_len, beams=beams)
        seconds = time.perf_counter() - t0
        refs = references[:n]
        return {
            "sentences": n,
            "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "rouge1_f1": round(rouge1_f1(hyps, refs), 4),
            "sentences_per_s": round(n / seconds, 1),
        }

    greedy = run(1, len(sources))
    beam_n = len(sources) if args.beam_sentences == 0 else min(args.beam_sentences, len(sources))
    beam = run(4, beam_n)
    greedy_same = run(1, beam_n) if beam_n < len(sources) else greedy
    print(json.dumps({
        "benchmark": "translation_quality",
        "minutes_budget": args.minutes,
        "train_seconds": round(train_seconds, 1),
        "steps": result.steps,
        # The time limit covers the fit; tokenizer training and counting come before it.
        "pairs_per_s_training": round(result.steps * config.train.batch_size / (args.minutes * 60), 1),
        "best_val_loss": round(result.best_val_loss, 4),
        "parameters": int(lm.model.count_params()),
        "test_pairs": len(sources),
        "greedy": greedy,
        "beam4": beam,
        "greedy_on_beam_subset": greedy_same,
        "translation_speed_note": "in-process keras-hub decoding; translators are not exported yet",
    }))


if __name__ == "__main__":
    main()
