"""Exact Match and F1 of a question-answering run (official SQuAD v1.1
metric, max over the gold answers), with its predictions written as the
official `{id: answer}` JSON next to the run."""

from __future__ import annotations

import time
from pathlib import Path

from kerasllm import progress
from kerasllm.evaluation.squad_metric import squad_scores, write_predictions


def evaluate_qa(run_dir: str, data_dir=None, split: str = "dev", limit: int = 0) -> dict:
    """`split`: dev (the registered dataset's) or validation (held-out
    training articles); `limit` > 0 scores only the first questions."""
    from kerasllm.data.qa_data import qa_examples
    from kerasllm.loaded_run import load_run
    from kerasllm.inference.qa import answer_fn, answer_questions

    lm = load_run(run_dir)
    data = qa_examples(lm.config, split, data_dir)
    examples = data.examples[:limit] if limit else data.examples
    if not examples:
        from kerasllm.errors import UserError

        raise UserError(f"--split {split}: no questions to score in it ({data.summary()})")
    start = time.perf_counter()
    with progress.Progress(f"evaluate: answering the {split} questions", unit="questions", total=len(examples)) as report:
        answers = answer_questions(answer_fn(lm.model, lm.tokenizer, lm.config.model),
                                   [e.question for e in examples], [e.context for e in examples], on_batch=report.advance)
    seconds = time.perf_counter() - start
    predictions = {e.id: a["answer"] for e, a in zip(examples, answers)}
    path = Path(run_dir) / f"predictions-{split}.json"
    write_predictions(path, predictions)
    scores = squad_scores(predictions, {e.id: e.answers for e in examples})
    result = {"run": run_dir, "split": split, "exact_match": round(scores["exact_match"], 2),
              "f1": round(scores["f1"], 2),
              "questions": scores["count"], "questions_per_second": round(len(examples) / seconds, 1),
              "predictions": str(path)}
    if split == "dev":  # the whole file (validation is part of the training file)
        result["read"] = data.summary()
    return result
