"""Does learning carry over? Pretraining on Wikipedia prose, then Tiny
Shakespeare; and what fine-tuning a GPT-2-sized model costs.

Language model (the default): a GPT of configs/shakespeare-char.yaml's
shape (4 layers x 256) with a subword vocabulary (SentencePiece, 8,000
pieces, learned on the pretraining text) is

1. pretrained on the SQuAD v1.1 training contexts (`data.source:
   squad-v1.1`, which reads each distinct paragraph once: Wikipedia prose)
   for `--pretrain-minutes`;
2. fine-tuned on Tiny Shakespeare for `--finetune-minutes` with
   `train.init_from=<the pretraining run>` (its tokenizer and weights);
3. trained on Tiny Shakespeare from scratch for the same minutes with the
   SAME vocabulary: its run directory is given the pretraining run's
   tokenizer before its first `train` (see `seed_tokenizer`).

Runs 2 and 3 have the same config except `name` and `train.init_from`. All
three train through the real CLI (`kerasllm train`, `kerasllm evaluate`).
Reported for each: the validation curve (minutes since training started,
step, validation loss per token, from the run's TensorBoard logs), its best
point, the full validation split's loss, perplexity and bits per character
of its best weights (`kerasllm evaluate`), and training tokens/s.

    python bench/transfer.py [--pretrain-minutes 30] [--finetune-minutes 5] [--vocab-size 8000]
                             [--set KEY=VALUE ...] [--pretrain-set KEY=VALUE ...] [--finetune-set KEY=VALUE ...]

The minutes are training time (train.time_limit_minutes); learning the
vocabulary (a few minutes for SentencePiece on the 14 MB of contexts) and
counting blocks come before it.

Speed (`--speed`): training tokens/s of fine-tuning a GPT-2-sized model
(`model.kind: gpt2`, configs/finetune-gpt2.yaml, 12 layers x 768, 12 heads,
feed-forward 3,072, 1,024 positions cut to `--seq-len`) on Tiny Shakespeare,
full fine-tuning and LoRA (`train.lora_rank=8`), each in float32 and
mixed_bfloat16. The checkpoint is random weights written by
tests/tiny_checkpoints.py's `write_gpt2`, whose token embedding is then
widened to `--vocab-rows` (default 50,257, GPT-2's) so that the output
layer costs what GPT-2's does (124.4M parameters); its tokenizer stays the
tiny one (a few hundred tokens), so the data use only the first rows. Each
variant is one `kerasllm train` of `--warmup` + `--steps` steps that logs
tokens/s every step; the median over the steps after the warm-up is
reported. On 2 CPU cores a step of this model takes seconds, so the
defaults are few steps; raise `--steps` on a faster machine.

    python bench/transfer.py --speed [--steps 6] [--warmup 2] [--batch-size 4] [--seq-len 128]
                             [--variants full-float32,full-bf16,lora-float32,lora-bf16]

A kerasllm without `train.lora_rank` reports the LoRA variants as skipped,
with the reason. Each mode prints one JSON line (bench/record.py).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]

from record import config_entry, emit, refuse  # noqa: E402  (bench/record.py)
from tang_quality import _env, _events, _scalars  # noqa: E402  (the same CLI runs and TensorBoard reading)

BASE = ROOT / "configs/shakespeare-char.yaml"  # the 4 x 256 GPT shape, and Tiny Shakespeare
GPT2 = ROOT / "configs/finetune-gpt2.yaml"
RUNS = ("pretrain", "finetune", "scratch")
GPT2_VOCABULARY = 50257
# Settings of the speed variants (each on top of configs/finetune-gpt2.yaml).
VARIANTS = {
    "full-float32": ["train.precision=float32"],
    "full-bf16": ["train.precision=mixed_bfloat16"],
    "lora-float32": ["train.precision=float32", "train.lora_rank=8"],
    "lora-bf16": ["train.precision=mixed_bfloat16", "train.lora_rank=8"],
}


# ---------------------------------------------------------------- language model


def run_overrides(out: Path, args) -> dict:
    """{run: the --set overrides of its config (on configs/shakespeare-char.yaml)}.

    The fine-tuned and the scratch run differ only in `name` and
    `train.init_from`; time-limited runs get epochs enough never to end
    first, no early stopping (both curves run their whole budget) and no
    text samples (they would take time from the budget).
    """
    every = [f"tokenizer.kind={args.tokenizer}", f"tokenizer.vocab_size={args.vocab_size}", "train.epochs=1000",
             "train.early_stopping_patience=0", "train.num_samples=0", "train.log_every_steps=10", *args.overrides]
    pretrain = ["name=transfer-pretrain", "data.source=squad-v1.1", "data.val_fraction=0.02", "data.split_group=8",
                f"train.time_limit_minutes={args.pretrain_minutes}", "train.eval_every_steps=60",
                "train.validation_steps=10", *every, *args.pretrain_overrides]
    shakespeare = [f"train.time_limit_minutes={args.finetune_minutes}", "train.warmup_steps=20",
                   "train.eval_every_steps=10", *every, *args.finetune_overrides]
    return {
        "pretrain": pretrain,
        "finetune": ["name=transfer-finetune", *shakespeare, f"train.init_from={out / 'pretrain'}"],
        "scratch": ["name=transfer-scratch", *shakespeare, "train.init_from="],
    }


def seed_tokenizer(run_dir: Path, config, tokenizer_dir: Path) -> None:
    """Gives a new run directory `tokenizer_dir`'s tokenizer before its
    first `kerasllm train`.

    No key asks a run for another run's vocabulary without its weights, so
    the directory is put in the state a run leaves when it is stopped right
    after learning its tokenizer: the trainer writes a new run's config.yaml
    first (kerasllm/training/trainer.py `_open_run`, so that such a run is
    recognised as the same run next time), then the tokenizer. `train` on
    it takes it as this run (the config is the same), finds no checkpoint
    and starts at step 0, and `open_corpus` loads tokenizer/ instead of
    learning one (kerasllm/data/corpus.py). `check_same_tokenizer` checks
    afterwards that it did.
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    shutil.copytree(tokenizer_dir, run_dir / "tokenizer")


def check_same_tokenizer(a: Path, b: Path) -> None:
    """Stops the bench if two runs' tokenizer directories hold different files."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        sys.exit(f"{b}: its tokenizer files differ from {a}'s; the runs do not share a vocabulary")
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    if mismatch or errors:
        sys.exit(f"{b}: tokenizer files {mismatch + errors} differ from {a}'s; the runs do not share a vocabulary")


def _kerasllm(*args: str) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("kerasllm"))
    return subprocess.run([exe, *args], capture_output=True, text=True, env=_env())


def train_and_evaluate(name: str, overrides: list, run_dir: Path) -> dict:
    """Trains one run through the CLI (`run_dir` new, or seeded with a
    tokenizer only), evaluates its best weights on its validation split;
    the run's figures."""
    start = time.time()
    out = _kerasllm("train", "--config", str(BASE), "--run-dir", str(run_dir), "--quiet",
                    *[w for s in overrides for w in ("--set", s)])
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"{name}: training failed: {out.stderr.strip().splitlines()[-1:]}")
    evaluated = _kerasllm("evaluate", "--run", str(run_dir), "--quiet")
    if evaluated.returncode != 0:
        sys.exit(f"{name}: evaluate failed: {evaluated.stderr.strip().splitlines()[-1:]}")
    full = json.loads(evaluated.stdout.strip().splitlines()[-1])
    curve = validation_curve(run_dir / "logs")
    speeds = [v for _, _, v in _scalars(run_dir / "logs/train", "step/tokens_per_second")]
    return {
        "best_curve_validation_loss": min((p["validation_loss"] for p in curve), default=None),
        "curve": curve,
        "validation": {k: full.get(k) for k in ("loss", "perplexity", "accuracy", "bits_per_character", "tokens",
                                                "characters")},
        "steps": max((p["step"] for p in curve), default=None),
        "training_tokens_per_second": round(statistics.median(speeds)) if speeds else None,
        "process_seconds": round(wall, 1),
    }


def validation_curve(logs: Path) -> list:
    """[{"minutes", "step", "validation_loss"}] of a run's validations:
    minutes since its training started (the hparams summary is written
    right before; the time limit counts from there too), the optimizer
    step (Keras' `evaluation_loss_vs_iterations`), the loss per token on
    `train.validation_steps` batches."""
    begin = min((e.wall_time for e in _events(logs, "_hparams_/session_start_info")), default=None)
    return [{"minutes": round((w - begin) / 60, 2) if begin else None, "step": s, "validation_loss": round(v, 4)}
            for w, s, v in _scalars(logs / "validation", "evaluation_loss_vs_iterations")]


def language_model(args) -> None:
    from kerasllm import config as config_lib
    from kerasllm.errors import UserError

    out = Path(args.out).resolve()  # absolute: train.init_from is recorded as one spelling
    sets = run_overrides(out, args)
    try:  # every config is checked before anything trains
        configs = {run: config_lib.load(BASE, sets[run]) for run in RUNS}
    except UserError as e:
        refuse(str(e))
    results = {}
    for run in RUNS:
        run_dir = out / run
        if run == "scratch":
            seed_tokenizer(run_dir, configs[run], out / "pretrain/tokenizer")
        elif run_dir.exists():
            shutil.rmtree(run_dir)
        results[run] = train_and_evaluate(run, sets[run], run_dir)
        print(json.dumps({run: {k: v for k, v in results[run].items() if k != "curve"}}), file=sys.stderr, flush=True)
    for run in ("finetune", "scratch"):
        check_same_tokenizer(out / "pretrain/tokenizer", out / run / "tokenizer")
    from kerasllm.data.tokenizers import load_tokenizer

    vocabulary = load_tokenizer(out / "pretrain/tokenizer").vocabulary_size
    finetune, scratch = results["finetune"]["validation"]["loss"], results["scratch"]["validation"]["loss"]
    emit({"benchmark": "transfer", "pretrain_minutes": args.pretrain_minutes,
          "finetune_minutes": args.finetune_minutes, "tokenizer": args.tokenizer, "vocabulary": vocabulary,
          "overrides": args.overrides, "results": results,
          # The same Tiny Shakespeare validation split, the same vocabulary: losses per token compare.
          "scratch_minus_finetune_validation_loss": round(scratch - finetune, 4), "runs": str(out)},
         {run: config_entry(configs[run], sets[run]) for run in RUNS})


# ---------------------------------------------------------------- speed


def write_checkpoint(directory: Path, vocab_rows: int, max_positions: int = 1024) -> dict:
    """A random-weight GPT-2 (12 x 768) Hugging Face directory with
    `vocab_rows` token-embedding rows (0: the tiny tokenizer's count);
    {"vocabulary_rows", "tokenizer_tokens"}.

    The rows past the tokenizer's are seeded random like the others: the
    checkpoint then has GPT-2's shapes, and its tokenizer only ever
    produces ids of the first rows.
    """
    import numpy as np
    from safetensors.numpy import load_file, save_file

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_checkpoints import write_gpt2

    if directory.exists():
        shutil.rmtree(directory)
    write_gpt2(directory, num_layers=12, hidden_size=768, num_heads=12, max_positions=max_positions)
    config = json.loads((directory / "config.json").read_text())
    tokens = config["vocab_size"]
    if vocab_rows and vocab_rows != tokens:
        if vocab_rows < tokens:
            refuse(f"--vocab-rows {vocab_rows}: fewer than the checkpoint tokenizer's {tokens} tokens")
        tensors = load_file(str(directory / "model.safetensors"))
        extra = np.random.default_rng(1).standard_normal((vocab_rows - tokens, 768)).astype(np.float32) * 0.02
        tensors["wte.weight"] = np.concatenate([tensors["wte.weight"], extra])
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        config["vocab_size"] = vocab_rows
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"vocabulary_rows": config["vocab_size"], "tokenizer_tokens": tokens}


def speed_overrides(args, checkpoint: Path) -> list:
    """The overrides every speed variant shares: a short run that logs
    every step, validates on one batch and samples nothing."""
    return [f"train.init_from={checkpoint}", f"model.seq_len={args.seq_len}", f"train.batch_size={args.batch_size}",
            f"train.max_steps={args.warmup + args.steps}", "train.steps_per_execution=1", "train.log_every_steps=1",
            "train.eval_every_steps=0", "train.validation_steps=1", "train.save_every_steps=100000",
            "train.num_samples=0", "train.warmup_steps=1", *args.overrides]


# The trainer's line about the model, e.g. "Model: gpt2, 124,439,808 parameters (...); ...".
MODEL_LINE = re.compile(r"Model: \S+, ([\d,]+) parameters(?: \(([^)]*(?:\([^)]*\))?[^)]*)\))?;")


def measure(variant: str, overrides: list, run_dir: Path, warmup: int) -> dict:
    """One `kerasllm train` of the variant; tokens/s of the steps after
    `warmup` (the trainer logs each step's tokens/s, the first execution,
    which traces the step function, not counted)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.time()
    out = _kerasllm("train", "--config", str(GPT2), "--run-dir", str(run_dir),
                    *[w for s in overrides for w in ("--set", s)])
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"{variant}: training failed: {out.stderr.strip().splitlines()[-1:]}")
    per_step = {s: v for _, s, v in _scalars(run_dir / "logs/train", "step/tokens_per_second")}
    timed = [v for s, v in sorted(per_step.items()) if s > warmup]
    model = MODEL_LINE.search(out.stdout + out.stderr)
    shutil.rmtree(run_dir)  # a checkpoint of this model with its optimizer state is over 1 GB
    if not timed:
        sys.exit(f"{variant}: no step after the {warmup} warm-up steps logged its speed")
    return {"tokens_per_second": round(statistics.median(timed), 1), "steps_timed": len(timed),
            "per_step": [round(v, 1) for v in timed],
            "parameters": int(model.group(1).replace(",", "")) if model else None,
            "trained": model.group(2) if model and model.group(2) else ("all" if model else None),
            "process_seconds": round(wall, 1)}


def speed(args) -> None:
    from kerasllm import config as config_lib
    from kerasllm.errors import UserError

    out = Path(args.out).resolve()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        refuse(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    checkpoint = out / "gpt2-12x768"
    common = speed_overrides(args, checkpoint)
    configs, results = {}, {}
    for variant in variants:
        sets = [*common, *VARIANTS[variant]]
        try:  # the config alone; the checkpoint is written below
            configs[variant] = (config_lib.load(GPT2, sets), sets)
        except UserError as e:
            if not any(s.startswith("train.lora_rank") for s in VARIANTS[variant]) or "lora_rank" not in str(e):
                refuse(str(e))
            results[variant] = {"skipped": "this kerasllm has no train.lora_rank (LoRA is not in this checkout)"}
    sizes = write_checkpoint(checkpoint, args.vocab_rows)
    for _ in range(args.rounds):
        for variant, (_, sets) in configs.items():
            result = measure(variant, sets, out / f"speed-{variant}", args.warmup)
            results.setdefault(variant, []).append(result)
            print(json.dumps({variant: result}), file=sys.stderr, flush=True)
    table = {}
    for variant in variants:
        rounds = results[variant]
        if isinstance(rounds, dict):  # skipped
            table[variant] = rounds
            continue
        table[variant] = {**rounds[0], "tokens_per_second": round(statistics.median(r["tokens_per_second"]
                                                                                     for r in rounds), 1),
                          "rounds": [r["tokens_per_second"] for r in rounds]}
    emit({"benchmark": "transfer_speed", "model": "gpt2 12 layers x 768, 12 heads, feed-forward 3072 (random weights)",
          **sizes, "seq_len": args.seq_len, "batch_size": args.batch_size, "warmup_steps": args.warmup,
          "steps": args.steps, "rounds": args.rounds, "results": table},
         {variant: config_entry(config, sets) for variant, (config, sets) in configs.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", action="store_true", help="Measure GPT-2-sized fine-tuning tokens/s instead.")
    parser.add_argument("--out", default=str(ROOT / "bench/out/transfer"), help="Where the runs go.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every run.")
    lm = parser.add_argument_group("language model")
    lm.add_argument("--pretrain-minutes", type=float, default=30.0, help="Training minutes on the SQuAD contexts.")
    lm.add_argument("--finetune-minutes", type=float, default=5.0,
                    help="Training minutes on Tiny Shakespeare, fine-tuned and from scratch.")
    lm.add_argument("--tokenizer", default="sentencepiece", choices=("sentencepiece", "wordpiece"))
    lm.add_argument("--vocab-size", type=int, default=8000)
    lm.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[],
                    help="KEY=VALUE for the pretraining run only.")
    lm.add_argument("--finetune-set", dest="finetune_overrides", action="append", default=[],
                    help="KEY=VALUE for both Tiny Shakespeare runs.")
    sp = parser.add_argument_group("speed")
    sp.add_argument("--steps", type=int, default=6, help="Timed steps per variant.")
    sp.add_argument("--warmup", type=int, default=2, help="Steps before the timed ones.")
    sp.add_argument("--rounds", type=int, default=1, help="Interleaved rounds (medians reported).")
    sp.add_argument("--batch-size", type=int, default=4)
    sp.add_argument("--seq-len", type=int, default=128)
    sp.add_argument("--vocab-rows", type=int, default=GPT2_VOCABULARY,
                    help="Token-embedding rows of the checkpoint (0: the tiny tokenizer's).")
    sp.add_argument("--variants", default=",".join(VARIANTS), help=f"Of {', '.join(VARIANTS)}.")
    args = parser.parse_args()
    os.environ.update({k: v for k, v in _env().items() if k == "KERASLLM_DATA_DIR"})
    if args.speed:
        speed(args)
    else:
        language_model(args)


if __name__ == "__main__":
    main()
