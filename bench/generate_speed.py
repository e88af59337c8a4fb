"""Generation speed: the exported SavedModel versus keras-hub's
`CausalLM.generate` on the same weights.

    python bench/generate_speed.py [--run RUN_DIR] [--reps 7]

Without --run it first trains the shipped shakespeare-char architecture for
a few minutes with a 320-token context (so 256 new tokens fit after a
prompt; a trained character model does not emit end-of-text early, so every
call makes exactly the tokens asked for). Then it exports the run and times
batch 1 and 16, 64 and 256 new tokens, greedy and top-p (0.9), for
(a) the SavedModel loaded with tf.saved_model.load and (b) keras-hub's
generate with its GreedySampler / TopPSampler (XLA as keras-hub sets it).
Each figure is the median of --reps calls, taken in turns across all cases.
Prints one JSON line: ms per new token, tokens/s, the a/b speed ratio, the
256/64 cost ratio, export seconds and SavedModel size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROMPT = "ROMEO:"


def train_run(run_dir: str) -> None:
    from kerasllm import config as config_lib
    from kerasllm.training.trainer import train

    config = config_lib.load(os.path.join(ROOT, "configs/shakespeare-char.yaml"),
                             ["model.seq_len=320", "train.max_steps=150", "train.num_samples=0"])
    train(config, run_dir=run_dir, verbose=0, print_fn=lambda s: None)


def timed_round_robin(calls: dict, reps: int) -> dict:
    """Median seconds of each call. Each is warmed up once (tracing and
    compilation are not generation speed), then the repetitions go round
    all calls in turn, so a slow spell of a shared machine lands on every
    configuration alike instead of on whichever happened to run then."""
    for fn in calls.values():
        fn()
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
    args = parser.parse_args()

    import keras_hub
    import tensorflow as tf

    from kerasllm.export.runs import export_run
    from kerasllm.inference.generate import _encode
    from kerasllm.loaded_run import load_run

    work = tempfile.mkdtemp(prefix="kerasllm-bench-")
    run_dir = args.run or os.path.join(work, "run")
    if args.run is None:
        start = time.perf_counter()
        train_run(run_dir)
        train_seconds = time.perf_counter() - start
    else:
        train_seconds = None
    export = export_run(run_dir, "bench", os.path.join(work, "saved_models"))
    served = tf.saved_model.load(export["path"])
    lm = load_run(run_dir)
    model, tokenizer = lm.model, lm.tokenizer

    # The sampler is traced into keras-hub's generate function, so each
    # sampler gets its own copy of the model.
    keras_hub_models = {"greedy": model, "top_p": load_run(run_dir).model}
    keras_hub_models["greedy"].sampler = keras_hub.samplers.GreedySampler()
    keras_hub_models["top_p"].sampler = keras_hub.samplers.TopPSampler(p=0.9, seed=0)
    calls, exact = {}, True
    for batch in (1, 16):
        for new in (64, 256):
            prompts = tf.constant([PROMPT] * batch)
            inputs = _encode(tokenizer, prompts, tf.constant(new), model.backbone.max_sequence_length).inputs()
            for mode in ("greedy", "top_p"):
                settings = {"temperature": tf.constant(0.0)} if mode == "greedy" else {
                    "temperature": tf.constant(1.0), "top_p": tf.constant(0.9), "seed": tf.constant(0)}

                def exported(prompts=prompts, new=new, settings=settings):
                    out = served.generate(prompts, max_new_tokens=tf.constant(new), **settings)
                    return out["num_tokens"].numpy()

                def keras_hub_generate(lm=keras_hub_models[mode], inputs=inputs):
                    return lm.generate(inputs, stop_token_ids=(tokenizer.eot_id,))

                exact &= bool((exported() == new).all())
                calls[("saved_model", batch, new, mode)] = exported
                calls[("keras_hub", batch, new, mode)] = keras_hub_generate
    seconds = timed_round_robin(calls, args.reps)
    results = [{"impl": impl, "batch": batch, "new_tokens": new, "mode": mode,
                "seconds": round(s, 4), "ms_per_token": round(1000 * s / new, 3),
                "tokens_per_s": round(batch * new / s, 1)}
               for (impl, batch, new, mode), s in seconds.items()]

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
    print(json.dumps({
        "benchmark": "generate_speed",
        "parameters": int(model.count_params()),
        "context": int(model.backbone.max_sequence_length),
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "export_seconds": export["seconds"],
        "saved_model_mb": export["size_mb"],
        "keras_hub_jit_compile": bool(getattr(model, "jit_compile", False)),
        "all_calls_made_every_token": exact,
        "speed_ratio_saved_model_over_keras_hub": ratios,
        "min_speed_ratio": min(ratios.values()),
        "cost_256_over_64": scaling,
        "max_cost_256_over_64": max(scaling.values()),
        "results": results,
    }))


if __name__ == "__main__":
    main()
