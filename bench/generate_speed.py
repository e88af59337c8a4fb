"""Generation speed: the exported SavedModel versus keras-hub's
`CausalLM.generate` on the same weights.

    python bench/generate_speed.py [--run RUN_DIR] [--reps 7]

Without --run it first trains the shipped shakespeare-char architecture for
--train-steps (150, a few minutes) with a 320-token context (so 256 new
tokens fit after a prompt; a trained character model does not emit
end-of-text early, so every call makes exactly the tokens asked for). Then it exports the run and times
batch 1 and 16, 64 and 256 new tokens, greedy and top-p (0.9), for
(a) the SavedModel loaded with tf.saved_model.load and (b) keras-hub's
generate with its GreedySampler / TopPSampler (XLA as keras-hub sets it).
Each figure is the median of --reps calls, taken in turns across all cases.
Before timing, each case's first call (the warm-up) counts the new tokens
each implementation made (up to the first end-of-text, as the export counts
them); if keras-hub and the export made different numbers in any case, the
speeds are not comparable and it stops (exit code 1) naming the cases.
Prints one JSON line: ms per new token, tokens/s (of the tokens made), the
a/b speed ratio, the 256/64 cost ratio, export seconds and SavedModel size.

    python bench/generate_speed.py --train-steps 30 --reps 1    # a quick check that it runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROMPT = "ROMEO:"

from record import config_entry, emit, refuse  # noqa: E402  (bench/record.py)


def train_overrides(steps: int) -> list:
    """A 320-token context, so 256 new tokens fit after the prompt."""
    return ["model.seq_len=320", f"train.max_steps={steps}", "train.num_samples=0"]


def train_run(run_dir: str, steps: int) -> None:
    from kerasllm import config as config_lib
    from kerasllm.training.trainer import train

    config = config_lib.load(os.path.join(ROOT, "configs/shakespeare-char.yaml"), train_overrides(steps))
    train(config, run_dir=run_dir, verbose=0, print_fn=lambda s: None)


def token_count_mismatches(counts: dict) -> list[str]:
    """Cases where keras-hub made another number of new tokens than the export.

    Args:
        counts: {(impl, batch, new_tokens, mode): new tokens of each row}, impl
            "saved_model" or "keras_hub".

    Example:
        >>> token_count_mismatches({("saved_model", 1, 64, "greedy"): [64], ("keras_hub", 1, 64, "greedy"): [12]})
        ['b1_64_greedy: saved_model 64, keras_hub 12 tokens']
    """
    out = []
    for (impl, batch, new, mode), made in sorted(counts.items()):
        other = counts.get(("keras_hub", batch, new, mode))
        if impl == "saved_model" and (other is None or list(map(int, made)) != list(map(int, other))):
            out.append(f"b{batch}_{new}_{mode}: saved_model {sum(map(int, made))}, "
                       f"keras_hub {'none' if other is None else sum(map(int, other))} tokens")
    return out


def timed_round_robin(calls: dict, reps: int) -> dict:
    """Median seconds of each call, already warmed up (tracing and
    compilation are not generation speed). The repetitions go round all
    calls in turn, so a slow spell of a shared machine lands on every
    configuration alike instead of on whichever happened to run then."""
    times = {key: [] for key in calls}
    for _ in range(reps):
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=None)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=150, help="training steps of the run made without --run")
    args = parser.parse_args()

    import tensorflow as tf

    from kerasllm.export.runs import export_run
    from kerasllm.loaded_run import load_run

    work = tempfile.mkdtemp(prefix="kerasllm-bench-")
    run_dir = args.run or os.path.join(work, "run")
    if args.run is None:
        start = time.perf_counter()
        train_run(run_dir, args.train_steps)
        train_seconds = time.perf_counter() - start
    else:
        train_seconds = None
    export = export_run(run_dir, "bench", os.path.join(work, "saved_models"))
    served = tf.saved_model.load(export["path"])
    lm = load_run(run_dir)
    calls, counters = generation_cases(served, run_dir, lm)
    counts = {key: counters[key](fn()) for key, fn in calls.items()}  # also the warm-up
    mismatches = token_count_mismatches(counts)
    if mismatches:
        refuse("keras-hub and the export made different numbers of new tokens, so their speeds do not compare "
               f"({'; '.join(mismatches)}); train the run longer (--train-steps) or give a trained --run", code=1)
    seconds = timed_round_robin(calls, args.reps)
    results = [{"impl": impl, "batch": batch, "new_tokens": new, "mode": mode, "tokens_made": int(sum(counts[key])),
                "seconds": round(s, 4), "ms_per_token": round(1000 * s / new, 3),
                "tokens_per_s": round(int(sum(counts[key])) / s, 1)}
               for key, s in seconds.items() for impl, batch, new, mode in [key]]
    ratios, scaling = speed_ratios(results)
    model = lm.model
    emit({
        "benchmark": "generate_speed",
        "parameters": int(model.count_params()),
        "context": int(model.backbone.max_sequence_length),
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "export_seconds": export["seconds"],
        "saved_model_mb": export["size_mb"],
        "keras_hub_jit_compile": bool(getattr(model, "jit_compile", False)),
        "token_counts_equal": True,
        "all_calls_made_every_token": all(r["tokens_made"] == r["batch"] * r["new_tokens"] for r in results),
        "speed_ratio_saved_model_over_keras_hub": ratios,
        "min_speed_ratio": min(ratios.values()),
        "cost_256_over_64": scaling,
        "max_cost_256_over_64": max(scaling.values()),
        "results": results,
    }, configs={"run": config_entry(lm.config, None if args.run else train_overrides(args.train_steps))})


def generation_cases(served, run_dir: str, lm) -> tuple[dict, dict]:
    """({case: call}, {case: new tokens per row of that call's output}) for
    batch 1 and 16, 64 and 256 new tokens, greedy and top-p, each through
    the SavedModel and keras-hub's generate; case = (impl, batch, new, mode)."""
    import keras_hub
    import tensorflow as tf

    from kerasllm.loaded_run import load_run
    from kerasllm.inference.prompts import decode_continuations

    model, tokenizer, preprocessor = lm.model, lm.tokenizer, lm.preprocessor
    # The sampler is traced into keras-hub's generate function, so each
    # sampler gets its own copy of the model.
    keras_hub_models = {"greedy": model, "top_p": load_run(run_dir).model}
    keras_hub_models["greedy"].sampler = keras_hub.samplers.GreedySampler()
    keras_hub_models["top_p"].sampler = keras_hub.samplers.TopPSampler(p=0.9, seed=0)
    calls, counters = {}, {}
    for batch in (1, 16):
        for new in (64, 256):
            prompts = tf.constant([PROMPT] * batch)
            encoded = preprocessor.generate_preprocess(prompts, tf.constant(new), model.backbone.max_sequence_length)
            for mode in ("greedy", "top_p"):
                settings = {"temperature": tf.constant(0.0)} if mode == "greedy" else {
                    "temperature": tf.constant(1.0), "top_p": tf.constant(0.9), "seed": tf.constant(0)}

                def exported(prompts=prompts, new=new, settings=settings):
                    return served.generate(prompts, max_new_tokens=tf.constant(new), **settings)["num_tokens"]

                def keras_hub_generate(lm=keras_hub_models[mode], inputs=encoded.inputs()):
                    return lm.generate(inputs, stop_token_ids=(tokenizer.eot_id,))["token_ids"]

                def keras_hub_count(token_ids, encoded=encoded, new=new):
                    # Counted as the export counts (up to the first end-of-text).
                    return decode_continuations(preprocessor, token_ids, encoded, tf.constant(new))[1].numpy()

                calls[("saved_model", batch, new, mode)] = exported
                counters[("saved_model", batch, new, mode)] = lambda num_tokens: num_tokens.numpy()
                calls[("keras_hub", batch, new, mode)] = keras_hub_generate
                counters[("keras_hub", batch, new, mode)] = keras_hub_count
    return calls, counters


def speed_ratios(results: list) -> tuple[dict, dict]:
    """(saved_model / keras_hub tokens/s per case, 256/64 cost per impl)."""
    def find(impl, batch, new, mode):
        return next(r for r in results if (r["impl"], r["batch"], r["new_tokens"], r["mode"]) == (impl, batch, new, mode))

    ratios, scaling = {}, {}
    for batch in (1, 16):
        for new in (64, 256):
            for mode in ("greedy", "top_p"):
                a, b = find("saved_model", batch, new, mode), find("keras_hub", batch, new, mode)
                ratios[f"b{batch}_{new}_{mode}"] = round(a["tokens_per_s"] / b["tokens_per_s"], 3)
        for mode in ("greedy", "top_p"):
            for impl in ("saved_model", "keras_hub"):
                cost = find(impl, batch, 256, mode)["seconds"] / find(impl, batch, 64, mode)["seconds"]
                scaling[f"{impl}_b{batch}_{mode}"] = round(cost, 2)
    return ratios, scaling


if __name__ == "__main__":
    main()
