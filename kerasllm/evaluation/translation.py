"""Translation evaluation: BLEU and chrF (sacrebleu, its default 13a
tokenisation) of the run's translations of a held-out split, plus the
model's loss and token accuracy there. The sources, references and
hypotheses are written side by side under `<run>/eval/`.

Example:
    evaluate_translation("runs/spa-eng")  # {"bleu": 31.2, "chrf": 52.0, ...}
"""

from __future__ import annotations

import math
from typing import Optional

import keras

from kerasllm import progress
from kerasllm.data.pair_corpus import open_pair_corpus
from kerasllm.files import atomic_write_text
from kerasllm.inference.translate import translate
from kerasllm.loaded_run import load_run
from kerasllm.run_dir import RunDir
from kerasllm.training.tasks import translation_loss

BATCH = 64


def evaluate_translation(run_dir: str, data_dir: Optional[str] = None, split: str = "test", beams: int = 1,
                         length_penalty: float = 0.6) -> dict:
    import sacrebleu

    from kerasllm.errors import UserError

    lm = load_run(run_dir)
    config, run = lm.config, RunDir(run_dir)
    corpus = open_pair_corpus(config, run.root, data_dir)
    corpus.preprocessor = lm.preprocessor  # the run's framing of ids, for the loss
    sources, references = [], []
    for s, t in corpus.pairs(split):
        sources += [x.decode() for x in s.numpy()]
        references += [x.decode() for x in t.numpy()]
    if not sources:
        raise UserError(f"the {split} split of {config.data.source} is empty; set data.test_fraction (or use --split validation)")
    hypotheses = []
    with progress.Progress(f"evaluate: translating the {split} split", unit="sentences", total=len(sources)) as report:
        for start in range(0, len(sources), BATCH):
            hypotheses += translate(lm.model, lm.tokenizer, lm.target_tokenizer, sources[start : start + BATCH],
                                    max_length=config.model.seq_len, beams=beams, length_penalty=length_penalty,
                                    preprocessor=lm.preprocessor)
            report.advance(len(sources[start : start + BATCH]))
    lm.model.compile(loss=translation_loss(config), weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    with progress.Progress(f"evaluate: loss on the {split} split", unit="batches") as report:
        scores = lm.model.evaluate(corpus.batches(split), verbose=0, return_dict=True, callbacks=[report.keras_callback()])
    out_dir = run.root / "eval"
    for name, lines in (("src", sources), ("ref", references), ("hyp", hypotheses)):
        atomic_write_text(out_dir / f"{split}.{name}.txt", "".join(line.replace("\n", " ") + "\n" for line in lines))
    return {
        "run": run_dir,
        "split": split,
        "pairs": len(sources),
        "beams": beams,
        "length_penalty": length_penalty if beams > 1 else None,
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
        "loss": round(float(scores["loss"]), 5),
        "perplexity": round(math.exp(min(float(scores["loss"]), 50.0)), 4),
        "accuracy": round(float(scores["accuracy"]), 5),
        "hypotheses": str(out_dir / f"{split}.hyp.txt"),
    }
