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
                             "epochs; the time limit may stop it sooner); 0 = a constant rate until the time limit")
    parser.add_argument("--out", default=None, help="directory for the three runs (default: a temporary one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for all three runs, e.g. --set model.num_layers=2")
    args = parser.parse_args()

    from kerasllm import config as config_lib
    from kerasllm.evaluation.question_answering import evaluate_qa
    from kerasllm.training.trainer import train

    out = args.out or tempfile.mkdtemp(prefix="kerasllm-bench-qa-")

    def run(config_file, name, minutes, extra):
        config = config_lib.load(os.path.join(ROOT, "configs", config_file),
                                 [f"train.time_limit_minutes={minutes}", "train.epochs=100", "train.num_samples=0",
                                  *extra, *args.overrides])
        start = time.perf_counter()
        result = train(config, run_dir=os.path.join(out, name), verbose=0, print_fn=lambda s: None)
        return {"steps": result.steps, "best_val_loss": round(result.best_val_loss, 4),
                "seconds": round(time.perf_counter() - start, 1), "parameters": result.num_parameters,
                "validation_curve": validation_curve(os.path.join(out, name))}

    # Fine-tuning validates (held-out training articles) every
    # --validate-every steps, which gives the curve.
    epochs = -(-args.finetune_steps // args.validate_every) if args.finetune_steps else 100
    every = [f"train.steps_per_epoch={args.validate_every}", f"train.epochs={epochs}"]
    pretrain = run("squad-mlm.yaml", "squad-mlm", args.pretrain_minutes, [])
    tuned = run("squad-qa.yaml", "squad-qa", args.finetune_minutes,
                [*every, f"train.init_from={os.path.join(out, 'squad-mlm')}"])
    scratch = run("squad-qa.yaml", "squad-qa-scratch", args.finetune_minutes, [*every, "train.init_from="])
    scores = {}
    for name in ("squad-qa", "squad-qa-scratch"):
        result = evaluate_qa(os.path.join(out, name), split="dev", limit=args.dev_questions)
        scores[name] = {k: result[k] for k in ("exact_match", "f1", "questions", "questions_per_second")}
    print(json.dumps({
        "benchmark": "qa_quality",
        "budget_minutes": {"pretrain": args.pretrain_minutes, "finetune": args.finetune_minutes},
        "finetune_schedule_steps": epochs * args.validate_every if args.finetune_steps else None,
        "overrides": args.overrides,
        "pretraining": pretrain,
        "finetuned_from_pretraining": {**tuned, **scores["squad-qa"]},
        "from_scratch": {**scratch, **scores["squad-qa-scratch"]},
        "runs": out,
    }))


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
