"""Run as a script by tests/test_export.py in a fresh process: loads a
SavedModel with only tensorflow + tensorflow_text, calls every signature,
then hammers serving_default from 8 threads. Prints one JSON line."""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
import tensorflow_text  # noqa: F401

path, prompts = sys.argv[1], json.loads(sys.argv[2])
model = tf.saved_model.load(path)
sig = model.signatures
texts = tf.constant(prompts)


def greedy():
    out = sig["serving_default"](prompts=texts, max_new_tokens=tf.constant(12), temperature=tf.constant(0.0),
                                 top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0))
    return [t.decode() for t in out["text"].numpy()]


def seeded():
    out = sig["serving_default"](prompts=texts, max_new_tokens=tf.constant(12), temperature=tf.constant(1.0),
                                 top_k=tf.constant(5), top_p=tf.constant(0.9), seed=tf.constant(7))
    return out


sampled = seeded()
beam = sig["beam_search"](prompts=texts, max_new_tokens=tf.constant(12))
scored = sig["score"](texts=texts)
tokens = sig["tokenize"](texts=texts)
back = sig["detokenize"](token_ids=tokens["token_ids"])
first = {"greedy": greedy(), "seeded": [t.decode() for t in sampled["text"].numpy()]}
with ThreadPoolExecutor(8) as pool:  # greedy and seeded requests interleaved: each kind always the same
    results = list(pool.map(lambda i: ("greedy", greedy()) if i % 2 else
                            ("seeded", [t.decode() for t in seeded()["text"].numpy()]), range(400)))
print(json.dumps({
    "signatures": sorted(sig),
    "greedy": first["greedy"],
    "sampled_tokens": sampled["num_tokens"].numpy().tolist(),
    "beam": [t.decode() for t in beam["text"].numpy()],
    "perplexity": scored["perplexity"].numpy().tolist(),
    "detokenized": [t.decode() for t in back["text"].numpy()],
    "threaded_requests": len(results),
    "threaded_all_equal": all(r == first[kind] for kind, r in results),
    "modules": sorted(m for m in ("keras", "keras_hub", "keras_nlp", "kerasllm") if m in sys.modules),
}))
