"""Translation quality in a fixed time: train configs/spa-eng-transformer.yaml
for --minutes on this machine, then BLEU and chrF (sacrebleu) on the test
split, greedy and beam 4, plus ROUGE-1 F1 for comparison with the Keras
"English-to-Spanish translation with KerasHub" example, training speed, and
translation speed in-process and through the exported SavedModel.

    python bench/translation_quality.py [--minutes 60] [--beam-sentences 1000]

Prints one JSON line. Beam search is scored on the first --beam-sentences
test sentences (0 = all), since it is several times slower than greedy,
with the default length penalty (0.6). Training tokens/s counts source and
target tokens (no padding), from the mean length of 10,000 training pairs.
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
    parser.add_argument("--export-sentences", type=int, default=512, help="sentences timed through the export")
    args = parser.parse_args()

    import sacrebleu

    from kerasllm import config as config_lib
    from kerasllm.data.pair_corpus import open_pair_corpus
    from kerasllm.export.runs import export_run
    from kerasllm.inference.client import TranslatorClient
    from kerasllm.loaded_run import load_run
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

    sample = [(s.numpy(), t.numpy()) for s, t in corpus.pairs("train").take(10)]  # batches of pairs
    src = [x for s, _ in sample for x in s][:10_000]
    tgt = [x for _, t in sample for x in t][:10_000]
    tokens_per_pair = (float(lm.tokenizer.tokenize(src).row_lengths().numpy().mean())
                       + float(lm.target_tokenizer.tokenize(tgt).row_lengths().numpy().mean()))

    def translate_all(translate_batch, beams, n):
        hyps, t0 = [], time.perf_counter()
        for i in range(0, n, 64):
            hyps += translate_batch(sources[i : min(i + 64, n)], beams)
        return hyps, time.perf_counter() - t0

    def in_process(part, beams):
        return translate(lm.model, lm.tokenizer, lm.target_tokenizer, part, max_length=lm.config.model.seq_len,
                         beams=beams, length_penalty=0.6)

    def run(beams, n):
        hyps, seconds = translate_all(in_process, beams, n)
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

    # The exported translator: export time and size, speed, and the same output.
    export = export_run(run_dir, "spa-eng", os.path.join(os.path.dirname(run_dir), "saved_models"))
    served = TranslatorClient.open(model=export["path"])
    n = min(args.export_sentences, len(sources))
    exported = {}
    for beams in (1, 4):
        served.translate(sources[:8], beams)  # first call loads the graph
        hyps, seconds = translate_all(lambda part, b: served.translate(part, b, 0.6), beams, n)
        same = hyps[:64] == in_process(sources[:64], beams)
        exported[f"beams{beams}"] = {"sentences": n, "sentences_per_s": round(n / seconds, 1), "equals_in_process": same}

    print(json.dumps({
        "benchmark": "translation_quality",
        "minutes_budget": args.minutes,
        "train_seconds": round(train_seconds, 1),
        "steps": result.steps,
        # The time limit covers the fit; tokenizer training and counting come before it.
        "pairs_per_s_training": round(result.steps * config.train.batch_size / (args.minutes * 60), 1),
        "tokens_per_s_training": round(result.steps * config.train.batch_size * tokens_per_pair / (args.minutes * 60)),
        "best_val_loss": round(result.best_val_loss, 4),
        "parameters": int(lm.model.count_params()),
        "test_pairs": len(sources),
        "greedy": greedy,
        "beam4": beam,
        "greedy_on_beam_subset": greedy_same,
        "export": {"seconds": export["seconds"], "size_mb": export["size_mb"], **exported},
    }))


if __name__ == "__main__":
    main()
