"""`kerasllm prepare` on a corpus larger than memory would like: speed (MB of
text per second) and peak resident memory, at two corpus sizes to show that
memory does not grow with the corpus.

    python bench/prepare_throughput.py [--mb 512] [--small-mb 64] [--tokenizer char]

The corpus is Tiny Shakespeare written out repeatedly into 32 MB files (a
document per file) in a temporary directory; each size is prepared by a fresh
`kerasllm prepare` process whose peak RSS is read from the kernel
(`RUSAGE_CHILDREN`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FILE_MB = 32

from record import config_entry, emit  # noqa: E402  (bench/record.py)


def make_corpus(directory: Path, megabytes: int, text: bytes) -> int:
    directory.mkdir(parents=True)
    written, index = 0, 0
    while written < megabytes * 1e6:
        with open(directory / f"part-{index:04d}.txt", "wb") as f:
            size = 0
            while size < FILE_MB * 1e6 and written + size < megabytes * 1e6:
                f.write(text)
                size += len(text)
        written += size
        index += 1
    return written


# Runs a command and prints its peak RSS (KiB) last, so each measurement has
# its own process tree.
PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def prepare(config: Path, out: Path, env: dict) -> dict:
    exe = Path(sys.executable).with_name("kerasllm")
    cmd = [sys.executable, "-c", PEAK_RSS_WRAPPER, str(exe), "prepare", "--config", str(config), "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"prepare failed: {proc.stderr.strip()}")
    report_line, peak_kib = proc.stdout.strip().splitlines()[-2:]
    report = json.loads(report_line)
    report["process_seconds"] = round(seconds, 1)
    report["peak_rss_mb"] = round(int(peak_kib) / 1024, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--small-mb", type=int, default=64)
    parser.add_argument("--tokenizer", default="char", choices=["char", "byte", "wordpiece", "sentencepiece"])
    parser.add_argument("--workdir", default=None, help="where to write the corpus (default: a temporary directory)")
    args = parser.parse_args()
    env = dict(os.environ)
    data_dir = Path(env.get("KERASLLM_DATA_DIR", ROOT.parent / "shared/data"))
    text = (data_dir / "tinyshakespeare.txt").read_bytes()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kerasllm-prepare-"))
    results, configs = [], {}
    from kerasllm import config as config_lib

    try:
        for megabytes in (args.small_mb, args.mb):
            corpus = work / f"corpus-{megabytes}"
            size = make_corpus(corpus, megabytes, text)
            config = work / f"config-{megabytes}.yaml"
            tokenizer = {"kind": args.tokenizer}
            if args.tokenizer in ("wordpiece", "sentencepiece"):
                tokenizer["vocab_size"] = 2000
            tokenizer["sample_mb"] = 20
            config.write_text(yaml.safe_dump({"name": "bench", "data": {"source": str(corpus)}, "tokenizer": tokenizer}))
            configs[f"{megabytes}mb"] = config_entry(config_lib.load(config), [])
            report = prepare(config, work / f"prepared-{megabytes}", env)
            results.append(
                {
                    "corpus_mb": round(size / 1e6, 1),
                    "tokens": sum(report["tokens"].values()),
                    "shards": report["shards"],
                    "seconds": report["seconds"],
                    "mb_per_second": report["mb_per_second"],
                    "peak_rss_mb": report["peak_rss_mb"],
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            shutil.rmtree(corpus)
            shutil.rmtree(work / f"prepared-{megabytes}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    emit({"benchmark": "prepare_throughput", "tokenizer": args.tokenizer, "runs": results}, configs)


if __name__ == "__main__":
    main()
