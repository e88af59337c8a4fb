"""Does the cleaning keep up with training? The text pipeline's speed with
and without `data.cleaning.pii` (mask, drop), the one-off near-duplicate
pass, and the tokens per second that training consumes, on this machine.

    python bench/cleaning_speed.py [--reps 3] [--train-steps 60] [--no-train]

Pipelines, each read to the end `--reps` times after one warm-up pass (the
best pass counts):
- Tiny Shakespeare as training reads it (`Corpus.token_chunks("train")`:
  read, clean, split, tokenize with the char tokenizer), a document per
  line and a document per file;
- spa-eng as translation reads it (`pair_dataset`: read in Python, clean).
Near duplicates (`near_duplicates: 0.8`): the seconds of the pass that
decides them (datasketch MinHash LSH), once per process and corpus.
Training: tokens/s of the step lines of a short `kerasllm train` of
configs/tiny-char.yaml and configs/shakespeare-char.yaml (char tokenizer:
a token is a character). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from record import config_entry, emit  # noqa: E402  (bench/record.py)

ROOT = Path(__file__).resolve().parents[1]
CLEANINGS = {"none": {}, "pii_mask": {"pii": "mask"}, "pii_drop": {"pii": "drop"}}


def timed_passes(make, reps: int, count) -> dict:
    """Best seconds over `reps` full passes of the dataset `make()` returns
    (after a warm-up pass), and what `count` adds up over one pass."""
    total = count(make())  # warm-up: traces the graphs
    best = min(_seconds(make) for _ in range(reps))
    return {"seconds": round(best, 3), **total}


def _seconds(make) -> float:
    ds = make()
    start = time.perf_counter()
    for _ in ds:
        pass
    return time.perf_counter() - start


def language_model_pipeline(document: str, cleaning: dict, reps: int, data_dir: str, tokenizer_dir: Path) -> dict:
    import tensorflow as tf

    from kerasllm import config as config_lib
    from kerasllm.data.corpus import open_corpus

    overrides = [f"data.document={document}"] + [f"data.cleaning.{k}={v}" for k, v in cleaning.items()]
    config = config_lib.load(ROOT / "configs" / "tiny-char.yaml", overrides)
    corpus = open_corpus(config, tokenizer_dir, data_dir)

    def count(ds):
        return {"tokens": int(ds.reduce(tf.constant(0, tf.int64), lambda n, c: n + tf.size(c, out_type=tf.int64)))}

    result = timed_passes(lambda: corpus.token_chunks("train"), reps, count)
    megabytes = corpus.source.num_bytes * (1 - config.data.val_fraction) / 1e6  # about the training split
    result["mb_per_second"] = round(megabytes / result["seconds"], 2)
    result["tokens_per_second"] = round(result["tokens"] / result["seconds"])
    return {"corpus": f"tinyshakespeare, a document per {document}", "cleaning": cleaning or "none", **result}


def pair_pipeline(cleaning: dict, reps: int, data_dir: str) -> dict:
    import tensorflow as tf

    from kerasllm import config as config_lib
    from kerasllm.data.paired_text import pair_dataset
    from kerasllm.data.sources import resolve_source

    config = config_lib.load(ROOT / "configs" / "spa-eng-transformer.yaml",
                             [f"data.cleaning.{k}={v}" for k, v in cleaning.items()])
    source = resolve_source(config.data, data_dir)

    def count(ds):
        return {"pairs": int(ds.reduce(tf.constant(0, tf.int64), lambda n, pair: n + tf.size(pair[0], out_type=tf.int64)))}

    result = timed_passes(lambda: pair_dataset(source, config.data), reps, count)
    result["mb_per_second"] = round(source.num_bytes / 1e6 / result["seconds"], 2)
    result["pairs_per_second"] = round(result["pairs"] / result["seconds"])
    return {"corpus": "spa-eng pairs", "cleaning": cleaning or "none", **result}


def near_duplicate_pass(name: str, threshold: float, data_dir: str) -> dict:
    """Seconds of the pass that decides the near-copies (building the
    pipeline runs it, once per process and corpus), and how many it found."""
    from kerasllm import config as config_lib
    from kerasllm.data import document_filter, paired_text, sources

    if name == "spa-eng":
        config = config_lib.load(ROOT / "configs" / "spa-eng-transformer.yaml",
                                 [f"data.cleaning.near_duplicates={threshold}"])
        source = sources.resolve_source(config.data, data_dir)
        start = time.perf_counter()
        paired_text.pair_dataset(source, config.data)
        key = paired_text.removal_key(source, config.data)
    else:
        config = config_lib.load(ROOT / "configs" / "tiny-char.yaml",
                                 ["data.document=line", f"data.cleaning.near_duplicates={threshold}"])
        source = sources.resolve_source(config.data, data_dir)
        start = time.perf_counter()
        sources.keyed_text_dataset(source, config.data.cleaning)
        key = sources.removal_key(source, config.data.cleaning)
    seconds = time.perf_counter() - start
    return {"corpus": name, "threshold": threshold, "seconds": round(seconds, 2),
            "near_copies": document_filter.remembered(key).near_copies}


def training_speed(config_name: str, steps: int, data_dir: str, work: Path) -> dict:
    """tokens/s of a short run's last step line (after the first execution,
    which traces)."""
    from kerasllm import config as config_lib
    from kerasllm.training.trainer import train

    every = max(steps // 3, 1)
    overrides = [f"train.max_steps={steps}", f"train.log_every_steps={every}", "train.epochs=1",
                 f"train.steps_per_epoch={steps}", f"train.save_every_steps={steps}"]
    config = config_lib.load(ROOT / "configs" / config_name, overrides)
    lines = []
    train(config, run_dir=str(work / config.name), data_dir=data_dir, verbose=1, print_fn=lines.append)
    speeds = [float(m.group(1).replace(",", "")) for line in lines for m in [re.search(r"tokens/s ([\d,]+)", line)] if m]
    return {"config": config_name, "steps": steps, "tokens_per_second": round(speeds[-1]) if speeds else None,
            "step_lines": len(speeds)}, config_entry(config, overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--no-train", action="store_true", help="skip the training measurements")
    args = parser.parse_args()
    data_dir = os.environ.get("KERASLLM_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    work = Path(tempfile.mkdtemp(prefix="kerasllm-cleaning-"))
    pipelines, configs = [], {}
    for document in ("line", "file"):
        for name, cleaning in CLEANINGS.items():
            pipelines.append(language_model_pipeline(document, cleaning, args.reps, data_dir, work / "tok"))
            print(pipelines[-1], file=sys.stderr, flush=True)
    for name, cleaning in CLEANINGS.items():
        pipelines.append(pair_pipeline(cleaning, args.reps, data_dir))
        print(pipelines[-1], file=sys.stderr, flush=True)
    near = [near_duplicate_pass(name, 0.8, data_dir) for name in ("tinyshakespeare lines", "spa-eng")]
    training = []
    if not args.no_train:
        for config_name, steps in (("tiny-char.yaml", args.train_steps), ("shakespeare-char.yaml", args.train_steps // 3)):
            result, configs[config_name] = training_speed(config_name, steps, data_dir, work)
            training.append(result)
            print(result, file=sys.stderr, flush=True)
    emit({"benchmark": "cleaning_speed", "pipelines": pipelines, "near_duplicates": near, "training": training},
         configs)


if __name__ == "__main__":
    main()
