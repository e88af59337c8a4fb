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
train in this call (give the same options each time); a call that leaves a
run unfinished lists it under "pending":

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

    from kerasllm import config as config_lib
    from kerasllm.evaluation.question_answering import evaluate_qa
    from kerasllm.training.trainer import train

    out = args.out or tempfile.mkdtemp(prefix="kerasllm-bench-qa-")
    wanted = [r for r in args.runs.split(",") if r]
    if set(wanted) - set(RUNS):
        parser.error(f"--runs: choose from {', '.join(RUNS)}")
    may_train = {RUNS[r] for r in wanted}

    def run(config_file, name, minutes, extra):
        """The run's summary: trained now, read back from an earlier call, or None (pending)."""
        done = os.path.join(out, name, "bench-result.json")
        if os.path.isfile(done):  # finished in an earlier call with this --out
            with open(done) as f:
                return json.load(f)
        if name not in may_train:
            return None
        # An unfinished run (a crash) resumes within what is left of its time limit.
        config = config_lib.load(os.path.join(ROOT, "configs", config_file),
                                 [f"train.time_limit_minutes={minutes}", "train.epochs=100", "train.num_samples=0",
                                  *extra, *args.overrides])
        start = time.perf_counter()
        result = train(config, run_dir=os.path.join(out, name), verbose=0, print_fn=lambda s: None)
        summary = {"minutes": minutes, "steps": result.steps, "best_val_loss": round(result.best_val_loss, 4),
                   "seconds": round(time.perf_counter() - start, 1), "parameters": result.num_parameters,
                   "validation_curve": validation_curve(os.path.join(out, name))}
        with open(done + ".tmp", "w") as f:
            json.dump(summary, f)
        os.replace(done + ".tmp", done)  # only a finished run counts as done
        return summary

    # Fine-tuning validates (held-out training articles) every
    # --validate-every steps, which gives the curve.
    epochs = -(-args.finetune_steps // args.validate_every) if args.finetune_steps else 100
    every = [f"train.steps_per_epoch={args.validate_every}", f"train.epochs={epochs}"]
    pretrain = run("squad-mlm.yaml", "squad-mlm", args.pretrain_minutes, [])
    if pretrain is None and "squad-qa" in may_train:
        parser.error(f"--runs finetune needs the pretraining run under --out {out}: add pretrain")
    tuned = run("squad-qa.yaml", "squad-qa", args.finetune_minutes,
                [*every, f"train.init_from={os.path.join(out, 'squad-mlm')}"])
    scratch = run("squad-qa.yaml", "squad-qa-scratch", args.finetune_minutes, [*every, "train.init_from="])
    runs = {"pretraining": pretrain, "finetuned_from_pretraining": tuned, "from_scratch": scratch}
    for key, name in (("finetuned_from_pretraining", "squad-qa"), ("from_scratch", "squad-qa-scratch")):
        if runs[key] is not None:
            result = evaluate_qa(os.path.join(out, name), split="dev", limit=args.dev_questions)
            runs[key].update({k: result[k] for k in ("exact_match", "f1", "questions", "questions_per_second")})
    print(json.dumps({
        "benchmark": "qa_quality",
        "budget_minutes": {k: r["minutes"] for k, r in runs.items() if r is not None},
        "finetune_schedule_steps": epochs * args.validate_every if args.finetune_steps else None,
        "overrides": args.overrides,
        **{k: r for k, r in runs.items() if r is not None},
        "pending": [k for k, r in runs.items() if r is None],
        "runs": out,
    }))


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
