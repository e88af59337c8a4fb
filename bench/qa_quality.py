"""Question answering in a fixed CPU budget, with and without pretraining.

Trains configs/squad-mlm.yaml (masked-LM pretraining on the SQuAD training
contexts) for --pretrain-minutes, then configs/squad-qa.yaml from it for
--finetune-minutes, and, as the ablation, configs/squad-qa.yaml from scratch
for the same --finetune-minutes; then the official SQuAD v1.1 Exact Match and
F1 of both on the dev set (all 10,570 questions unless --dev-questions).
Each run's validation curve (loss and accuracies on held-out training
articles, every --validate-every fine-tuning steps and every pretraining
epoch) shows where it is heading.

    python bench/qa_quality.py [--pretrain-minutes 80] [--finetune-minutes 45] [--finetune-steps 2400]

The default budget is 80 + 45 + 45 minutes of training (under three hours
with data preparation and evaluation). Prints one JSON line. The time limits
cover the fits; tokenizer training and window counting come before them.
With --finetune-steps the fine-tuning learning rate decays (cosine) over
about that many steps instead of staying constant until the time limit.

The three runs can be spread over several sittings: with --out DIR each
finished run leaves DIR/<run>/bench-result.json, a later call with the same
--out reuses it instead of training again, and --runs picks which runs may
train in this call; a call that leaves a run unfinished lists it under
"pending". Each finished run records its config (after the options), and a
call whose options would give another config for it stops (exit code 2)
rather than report that run's results as this call's:

    python bench/qa_quality.py --out /tmp/qa-bench --runs pretrain              # 80 minutes
    python bench/qa_quality.py --out /tmp/qa-bench --runs finetune,scratch      # 2 x 45, then both scored
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

from record import config_entry, differences, emit, refuse  # noqa: E402  (bench/record.py)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrain-minutes", type=float, default=80.0)
    parser.add_argument("--finetune-minutes", type=float, default=45.0)
    parser.add_argument("--dev-questions", type=int, default=0, help="score only the first N dev questions (0 = all)")
    parser.add_argument("--validate-every", type=int, default=400, help="fine-tuning steps between validations")
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="fine-tuning steps the learning rate decays over (rounded up to whole --validate-every "
                             "epochs; the time limit may stop it sooner); 0 = as many as the time limit allows")
    parser.add_argument("--out", default=None, help="directory for the three runs (default: a temporary one)")
    parser.add_argument("--runs", default="pretrain,finetune,scratch",
                        help="runs that may train in this call; the others must have finished under --out before")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for all three runs, e.g. --set model.num_layers=2")
    args = parser.parse_args()

    from kerasllm.errors import UserError

    # Absolute, so that the recorded train.init_from is one spelling of the directory.
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="kerasllm-bench-qa-")
    wanted = [r for r in args.runs.split(",") if r]
    if set(wanted) - set(RUNS):
        parser.error(f"--runs: choose from {', '.join(RUNS)}")
    may_train = {RUNS[r] for r in wanted}
    # Every run's config is resolved and checked against the finished runs
    # before anything trains (and before TensorFlow loads).
    try:
        options = resolve_runs(out, args)
        for name, (_, entry) in options.items():
            check_reusable(os.path.join(out, name), entry)
    except UserError as e:
        refuse(str(e))

    from kerasllm.evaluation.question_answering import evaluate_qa
    from kerasllm.training.trainer import train

    def run(name):
        """The run's summary: trained now, read back from an earlier call, or None (pending)."""
        done = os.path.join(out, name, "bench-result.json")
        if os.path.isfile(done):  # finished in an earlier call with this --out and these options
            with open(done) as f:
                return json.load(f)
        if name not in may_train:
            return None
        # An unfinished run (a crash) resumes within what is left of its time limit.
        config, entry = options[name]
        start = time.perf_counter()
        result = train(config, run_dir=os.path.join(out, name), verbose=0, print_fn=lambda s: None)
        summary = {"minutes": config.train.time_limit_minutes, "steps": result.steps,
                   "best_val_loss": round(result.best_val_loss, 4),
                   "seconds": round(time.perf_counter() - start, 1), "parameters": result.num_parameters,
                   "validation_curve": validation_curve(os.path.join(out, name)), "options": entry}
        with open(done + ".tmp", "w") as f:
            json.dump(summary, f)
        os.replace(done + ".tmp", done)  # only a finished run counts as done
        return summary

    pretrain = run("squad-mlm")
    if pretrain is None and "squad-qa" in may_train:
        parser.error(f"--runs finetune needs the pretraining run under --out {out}: add pretrain")
    names = {"pretraining": "squad-mlm", "finetuned_from_pretraining": "squad-qa", "from_scratch": "squad-qa-scratch"}
    runs = {"pretraining": pretrain, "finetuned_from_pretraining": run("squad-qa"),
            "from_scratch": run("squad-qa-scratch")}
    for key in ("finetuned_from_pretraining", "from_scratch"):
        if runs[key] is not None:
            result = evaluate_qa(os.path.join(out, names[key]), split="dev", limit=args.dev_questions)
            runs[key].update({k: result[k] for k in ("exact_match", "f1", "questions", "questions_per_second")})
    finished = {k: {f: v for f, v in r.items() if f != "options"} for k, r in runs.items() if r is not None}
    emit({
        "benchmark": "qa_quality",
        "budget_minutes": {k: r["minutes"] for k, r in finished.items()},
        "finetune_schedule_steps": finetune_epochs(args) * args.validate_every if args.finetune_steps else None,
        **finished,
        "pending": [k for k, r in runs.items() if r is None],
        "runs": out,
    }, configs={k: options[names[k]][1] for k in runs})


def finetune_epochs(args) -> int:
    """Fine-tuning validates (held-out training articles) every
    --validate-every steps, which gives the curve; --finetune-steps is
    rounded up to whole such epochs."""
    return -(-args.finetune_steps // args.validate_every) if args.finetune_steps else 100


def run_plans(out: str, args) -> dict:
    """{run directory name: (config file, time limit in minutes, overrides it adds)}."""
    every = [f"train.steps_per_epoch={args.validate_every}", f"train.epochs={finetune_epochs(args)}"]
    return {
        "squad-mlm": ("squad-mlm.yaml", args.pretrain_minutes, []),
        "squad-qa": ("squad-qa.yaml", args.finetune_minutes,
                     [*every, f"train.init_from={os.path.join(out, 'squad-mlm')}"]),
        "squad-qa-scratch": ("squad-qa.yaml", args.finetune_minutes, [*every, "train.init_from="]),
    }


def resolve_runs(out: str, args) -> dict:
    """{run directory name: (its config after the options, record.config_entry of it)}."""
    from kerasllm import config as config_lib

    options = {}
    for name, (config_file, minutes, extra) in run_plans(out, args).items():
        overrides = [f"train.time_limit_minutes={minutes}", "train.epochs=100", "train.num_samples=0",
                     *extra, *args.overrides]
        config = config_lib.load(os.path.join(ROOT, "configs", config_file), overrides)
        options[name] = (config, config_entry(config, overrides))
    return options


def check_reusable(run_dir: str, entry: dict) -> None:
    """Raises UserError if run_dir holds a finished run made with another
    config than `entry` (record.config_entry of this call's resolved config).

    A finished run is reused as it is, so a call with other options would
    report that run's results under its own options.
    """
    from kerasllm.errors import UserError

    done = os.path.join(run_dir, "bench-result.json")
    if not os.path.isfile(done):
        return
    with open(done) as f:
        saved = json.load(f).get("options")
    if saved is None:
        raise UserError(f"{run_dir} was finished by an older bench/qa_quality.py that did not record its options; "
                        "use a new --out")
    diffs = differences(saved["config"], json.loads(json.dumps(entry["config"])))
    if diffs:
        raise UserError(f"{run_dir} was trained with other options ({'; '.join(diffs[:3])}); "
                        f"give the options it was made with (its config overrides: {' '.join(saved['overrides'])}) "
                        "or use a new --out")


RUNS = {"pretrain": "squad-mlm", "finetune": "squad-qa", "scratch": "squad-qa-scratch"}


def validation_curve(run_dir: str) -> list:
    """[{"step": N, "loss": ..., other validation metrics}] from the run's
    TensorBoard logs (Keras writes `evaluation_<metric>_vs_iterations`)."""
    import glob

    import tensorflow as tf

    points = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "logs", "validation", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("evaluation_") and value.tag.endswith("_vs_iterations"):
                    metric = value.tag[len("evaluation_"):-len("_vs_iterations")]
                    number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                    points.setdefault(int(event.step), {})[metric] = round(number, 4)
    return [{"step": step, **metrics} for step, metrics in sorted(points.items())]


if __name__ == "__main__":
    main()
