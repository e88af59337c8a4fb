"""One way to generate, score and translate, whether the model is an exported
SavedModel or a run directory. Language models go through the serving
functions of `LanguageModelModule` (loaded from disk, or built in-process
from the run's best weights); translators through the exported signature or
in-process `translate`, which decode the same way (tested equal). So the CLI
behaves the same either way.

Example:
    lm = LanguageModelClient.open(model="saved_models/shakespeare")
    lm.generate(["ROMEO:"], max_new_tokens=50, temperature=0).texts
    for piece in stream(lm, "ROMEO:", 200, stop=["\\n\\n"]): print(piece, end="")
    TranslatorClient.open(model="saved_models/spa-eng").translate(["I like tea."], beams=4)
"""

from __future__ import annotations

import contextlib
import json
import random

import numpy as np
import tensorflow as tf

from kerasllm.errors import UserError
from kerasllm.inference.generate import Generated, cap_new_tokens, warn_truncated

STREAM_CHUNK = 16  # new tokens per call while streaming


def load_saved_model(path, kind: str):
    """(loaded SavedModel, its kerasllm.json) of a `kerasllm export` version
    (or the newest under a model directory), refusing another `kind`."""
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from kerasllm.export.saved_model import META_FILE, resolve_model_dir

    directory = resolve_model_dir(path)
    meta_path = directory / "assets.extra" / META_FILE
    if not meta_path.is_file():
        raise UserError(f"--model {path}: {meta_path} is missing; was this exported by `kerasllm export`?")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != kind:
        hint = {"translator": "use `kerasllm translate`", "question_answering": "use `kerasllm qa`"}.get(
            meta.get("kind"), "use `kerasllm generate`")
        raise UserError(f"--model {path}: a {meta.get('kind')} model, not a {kind.replace('_', ' ')}; {hint}")
    return tf.saved_model.load(str(directory)), meta


def _exactly_one(model, run) -> None:
    if (model is None) == (run is None):
        raise UserError("give exactly one of --model (an exported SavedModel) or --run (a run directory)")


class LanguageModelClient:
    def __init__(self, functions, meta: dict, trace_context=contextlib.nullcontext):
        self._f = functions
        self.meta = meta
        self.context = meta.get("context")
        self.max_new_tokens = meta["max_new_tokens"]
        self.beams = meta["beams"]
        self._trace_context = trace_context

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None, beams: int = 4) -> "LanguageModelClient":
        _exactly_one(model, run)
        if model is not None:
            return cls.from_saved_model(model)
        return cls.from_run(run, beams)

    @classmethod
    def from_saved_model(cls, path) -> "LanguageModelClient":
        return cls(*load_saved_model(path, "language_model"))

    @classmethod
    def from_run(cls, run_dir, beams: int = 4) -> "LanguageModelClient":
        from kerasllm.export.language_model import LanguageModelModule
        from kerasllm.export.xla_free import no_xla_ops
        from kerasllm.inference.generate import load_run

        lm = load_run(run_dir)
        kind = lm.config.model.kind
        if kind == "seq2seq":
            raise UserError(f"--run {run_dir}: a translation run; use `kerasllm translate --run {run_dir}`")
        if kind == "encoder":
            what = ("a question-answering run; use `kerasllm qa --run " + str(run_dir) + "`"
                    if lm.config.model.head == "span" else
                    "a masked-LM pretraining run: an encoder, which neither generates nor scores text; fine-tune "
                    "it for questions (configs/squad-qa.yaml) or train a GPT run")
            raise UserError(f"--run {run_dir}: {what}")
        module = LanguageModelModule(lm.model, lm.tokenizer, beams=max(beams, 1))
        meta = {"context": module.context, "max_new_tokens": module.max_new_tokens, "beams": module.beams}
        return cls(module, meta, trace_context=no_xla_ops)

    def generate(self, prompts: list[str], max_new_tokens: int | None = None, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, beams: int = 1, warn: bool = True) -> Generated:
        max_new_tokens = cap_new_tokens(max_new_tokens, self.context)
        if warn:
            self.warn_if_truncated(prompts, max_new_tokens)
        texts = tf.constant(prompts, tf.string)
        new = tf.constant(max_new_tokens, tf.int32)
        with self._trace_context():
            if beams > 1:
                if beams != self.beams:
                    raise UserError(f"--beams {beams}: this model was exported for beam search with {self.beams} "
                                    f"beams; use --beams {self.beams} or re-export with `kerasllm export --beam-search-width {beams}`")
                out = self._f.beam_search(texts, max_new_tokens=new)
            else:
                out = self._f.generate(
                    texts, max_new_tokens=new, temperature=tf.constant(temperature, tf.float32),
                    top_k=tf.constant(top_k, tf.int32), top_p=tf.constant(top_p, tf.float32),
                    seed=tf.constant(-1 if seed is None else seed, tf.int32),
                )
        return Generated([t.decode("utf-8", errors="replace") for t in out["text"].numpy()], out["num_tokens"].numpy().tolist())

    def warn_if_truncated(self, prompts: list[str], max_new_tokens: int) -> None:
        """The graph cuts long prompts silently; say so on the terminal."""
        if self.context is not None:
            counts = self.tokenize(prompts)["num_tokens"] + 1  # + the start token
            warn_truncated(counts, np.minimum(counts, self.context - max_new_tokens), self.context)

    def fit_prompt(self, prompt: str, max_new_tokens: int) -> str:
        """`prompt` cut from the left, with the warning, so that it and
        `max_new_tokens` fit the context: the cut `generate` makes, done once
        as text so that streaming, which calls again on prompt + what came so
        far, keeps the same prompt on every call."""
        if self.context is None:
            return prompt
        out = self.tokenize([prompt])
        n = int(out["num_tokens"][0])
        keep = self.context - max_new_tokens - 1  # the start token takes a position
        if n <= keep:
            return prompt
        warn_truncated([n + 1], [keep + 1], self.context)
        if keep == 0:
            return ""
        return self.detokenize(out["token_ids"][:, n - keep : n])[0]

    def detokenize(self, token_ids) -> list[str]:
        with self._trace_context():
            out = self._f.detokenize(tf.constant(token_ids, tf.int32))
        return [t.decode("utf-8", errors="replace") for t in out["text"].numpy()]

    def score(self, texts: list[str]) -> dict:
        with self._trace_context():
            out = self._f.score(tf.constant(texts, tf.string))
        return {k: v.numpy() for k, v in out.items()}

    def tokenize(self, texts: list[str]) -> dict:
        with self._trace_context():
            out = self._f.tokenize(tf.constant(texts, tf.string))
        return {k: v.numpy() for k, v in out.items()}


class TranslatorClient:
    """Translation from an exported translator (its serving_default) or from
    a run's best weights (in-process `translate`): the same decoding."""

    def __init__(self, translate_batch, max_length: int):
        self._translate = translate_batch
        self.max_length = max_length

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None) -> "TranslatorClient":
        _exactly_one(model, run)
        if model is not None:
            loaded, meta = load_saved_model(model, "translator")
            signature = loaded.signatures["serving_default"]

            def translate_batch(sentences, beams, length_penalty, max_length):
                out = signature(sources=tf.constant(sentences, tf.string), beams=tf.constant(beams, tf.int32),
                                length_penalty=tf.constant(length_penalty, tf.float32),
                                max_length=tf.constant(max_length, tf.int32))
                return [t.decode("utf-8", errors="replace") for t in out["translations"].numpy()]

            return cls(translate_batch, meta["max_length"])
        from kerasllm.inference.generate import load_run
        from kerasllm.inference.translate import translate

        lm = load_run(run)
        kind = lm.config.model.kind
        if kind != "seq2seq":
            hint = ("a question-answering or masked-LM encoder run; `kerasllm qa` answers with a QA run"
                    if kind == "encoder" else f"a {kind} language model; use `kerasllm generate`")
            raise UserError(f"--run {run}: {hint}")

        def translate_batch(sentences, beams, length_penalty, max_length):
            return translate(lm.model, lm.tokenizer, lm.target_tokenizer, sentences, max_length, beams, length_penalty)

        return cls(translate_batch, lm.config.model.seq_len)

    def translate(self, sentences: list[str], beams: int = 1, length_penalty: float = 0.6,
                  max_length: int | None = None) -> list[str]:
        return self._translate(sentences, beams, length_penalty, max_length or self.max_length)


class QuestionAnsweringClient:
    """Answers from an exported question answerer (its serving_default) or
    from a run's best weights (in-process): the same graph."""

    def __init__(self, answer, keep=None):
        self._answer = answer
        self._keep = keep  # the loaded SavedModel must outlive its functions

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None) -> "QuestionAnsweringClient":
        _exactly_one(model, run)
        if model is not None:
            loaded, _ = load_saved_model(model, "question_answering")
            signature = loaded.signatures["serving_default"]
            return cls(lambda q, c: signature(question=q, context=c), keep=loaded)
        from kerasllm.inference.generate import load_run
        from kerasllm.inference.qa import answer_fn

        lm = load_run(run)
        if lm.config.model.kind != "encoder" or lm.config.model.head != "span":
            raise UserError(f"--run {run}: not a question-answering run (model.kind encoder, model.head span)")
        return cls(answer_fn(lm.model, lm.tokenizer, lm.config.model))

    def answer(self, questions: list[str], contexts: list[str]) -> list[dict]:
        from kerasllm.inference.qa import answer_questions

        return answer_questions(self._answer, questions, contexts)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the first stop string (excluded), and whether one occurred."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def stream(client: LanguageModelClient, prompt: str, max_new_tokens: int | None, stop: list[str] = (),
           seed: int | None = None, chunk: int = STREAM_CHUNK, **settings):
    """Yields the continuation of one prompt piece by piece, `chunk` tokens
    per call; ends at end-of-text, `max_new_tokens` or a stop string. Text
    that could be the start of a stop string is held back until it is not.

    Every call gets the same prompt (cut once, as `generate` cuts it) and the
    same seed; sampling draws by (seed, position), so a seeded stream is the
    text one `generate` call with that seed returns."""
    stop = [s for s in stop if s]
    hold = max((len(s) for s in stop), default=1) - 1
    max_new_tokens = cap_new_tokens(max_new_tokens, client.context)
    prompt = client.fit_prompt(prompt, max_new_tokens)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31 - 1)
    text, shown, produced = "", 0, 0
    while produced < max_new_tokens:
        n = min(chunk, max_new_tokens - produced)
        out = client.generate([prompt + text], n, seed=seed, warn=False, **settings)
        text += out.texts[0]
        produced += out.num_tokens[0]
        kept, stopped = cut_at_stop(text, stop)
        if stopped:
            yield kept[shown:]
            return
        if out.num_tokens[0] < n:  # end-of-text
            break
        safe = max(len(text) - hold, shown)
        yield text[shown:safe]
        shown = safe
    yield text[shown:]
