"""What a language-model or translation run trains: its data, model, loss
and samples (the `kerasllm.tasks.Training` contract).

The trainer is the same for every task; it asks the run's task
(`kerasllm.task_registry`) to open one of these, then asks it for batches,
a model and a few samples.
"""

from __future__ import annotations

import keras
import numpy as np

from kerasllm import task_registry
from kerasllm.compat import in_multi_worker_mode
from kerasllm.config import RunConfig
from kerasllm.data import pipelines
from kerasllm.errors import UserError
from kerasllm.run_dir import RunDir
from kerasllm.training.init_from import load_run_weights, take_tokenizers

SAMPLE_TEMPERATURE = 0.8


class LanguageModelTask:
    # Blocks are `block_len + 1` tokens: a causal model's inputs and targets.
    block_len_offset = 0
    weighted_metrics = False
    random_validation_examples = False  # the trainer caches validation batches drawn at random
    # What each validation prints and TensorBoard shows; perplexity is exp(loss).
    epoch_metrics = ("loss", "perplexity", "accuracy")

    def __init__(self, config: RunConfig, run: RunDir, data_dir=None, build=None):
        from kerasllm.data.corpus import count_blocks, open_corpus

        self.config = config
        task = task_registry.for_model(config.model)
        # (ModelConfig, vocabulary_size, dtype) -> model: the registered task's builder by default.
        self._build = build or task.build
        self.block_len = config.model.seq_len + self.block_len_offset
        take_tokenizers(config, run)  # a run that continues another reads text as that one did
        self.corpus = open_corpus(config, run.tokenizer, data_dir, for_training=True)
        self.counts = count_blocks(self.corpus, self.block_len, run.data)
        self.tokenizer = self.corpus.tokenizer
        # Blocks -> training examples (the token stream itself is the corpus's).
        self.preprocessor = task.preprocessor(config, self.tokenizer)
        t = config.train
        if t.batch_size * t.grad_accum_steps > self.counts["train"]:
            raise UserError(
                f"train.batch_size={t.batch_size} (x grad_accum_steps={t.grad_accum_steps}) is more than the "
                f"{self.counts['train']} training blocks of {self.block_len + 1} tokens; lower it or add text"
            )
        self.batches_per_pass = self.counts["train"] // t.batch_size
        self.tokens_per_batch = t.batch_size * config.model.seq_len

    def build_model(self, dtype):
        return self._build(self.config.model, self.tokenizer.vocabulary_size, dtype)

    def initialise(self, model, print_fn) -> None:
        """A new run with `train.init_from`: the other run's best weights."""
        load_run_weights(model, self.config, print_fn)

    def example_input(self):
        return np.zeros((1, self.config.model.seq_len), "int32")

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def describe(self) -> str:
        c = self.counts
        service = f"; training text tokenized by the tf.data service at {self.corpus.service}" if self.corpus.service else ""
        return (f"vocabulary {self.tokenizer.vocabulary_size} ({self.config.tokenizer.kind}); "
                f"{c['train']:,} training / {c['validation']:,} validation blocks of {self.block_len + 1} tokens"
                f"{service}")

    def train_batches(self, skip: int, strategy=None):
        """The endless training batches, resumed after `skip` batches; under
        `strategy` (multi-worker), see `input_sharding`."""
        t, c = self.config.train, self.config
        if self.input_sharding(strategy) == "file":
            return self._batches_by_file(skip, strategy)
        if self.corpus.service:
            skip = 0  # the service's order is not reproducible: a resumed run starts a fresh pass
        return pipelines.lm_batches(
            self.corpus.blocks("train", self.block_len), t.batch_size, training=True,
            shuffle_buffer=c.data.shuffle_buffer, seed=t.seed, skip_batches=skip, cache=self.corpus.cacheable,
            to_example=self.to_example,
        )

    def to_example(self, blocks):
        """A batch of blocks -> the preprocessor's training example."""
        return self.preprocessor.training_example(blocks)

    def input_sharding(self, strategy) -> str:
        """How several workers share the training data: `file` when it is
        `prepare`d shards with at least one shard file per worker (each
        worker reads only its own files), else `data` (every worker runs the
        one-device stream and keeps its share of each global batch);
        `none` on one machine."""
        if strategy is None or not in_multi_worker_mode(strategy):
            return "none"
        if self.corpus.prepared is not None and not self.corpus.service:
            from kerasllm.data import shards

            if len(shards.shard_files(self.corpus.prepared, "train")) >= _num_workers(strategy):
                return "file"
        return "data"

    def _batches_by_file(self, skip: int, strategy):
        local_replicas = strategy.num_replicas_in_sync // _num_workers(strategy)
        return strategy.distribute_datasets_from_function(
            lambda context: self.worker_batches(
                context.input_pipeline_id, context.num_input_pipelines,
                context.get_per_replica_batch_size(self.config.train.batch_size), skip * local_replicas,
            )
        )

    def worker_batches(self, worker: int, workers: int, batch_size: int, skip: int = 0):
        """FILE sharding: worker i of N reads shard files i, i+N, ... and
        packs, shuffles and batches them itself (`batch_size` = its
        replicas' share of the global batch). Resuming skips this worker's
        own batches, so it stays exact."""
        from kerasllm.data import shards

        t, c = self.config.train, self.config
        mine = shards.shard_files(self.corpus.prepared, "train")[worker::workers]
        blocks = pipelines.token_blocks(shards.read_chunks(self.corpus.prepared, "train", mine), self.block_len)
        return pipelines.lm_batches(blocks, batch_size, training=True, shuffle_buffer=c.data.shuffle_buffer, seed=t.seed,
                                    skip_batches=skip, cache=self.corpus.cacheable, to_example=self.to_example)

    def validation_batches(self):
        c = self.config
        return pipelines.lm_batches(self.corpus.blocks("validation", self.block_len), c.train.batch_size,
                                    training=False, cache=self.corpus.cacheable, to_example=self.to_example)

    def validation_explainer(self):
        from kerasllm.training.explain_callback import language_model_explainer

        return language_model_explainer(self.config, self)

    def sampler(self, model):
        from kerasllm.inference.generate import generate

        t = self.config.train
        budget = max(1, min(t.sample_tokens, self.config.model.seq_len - 1 - len(t.sample_prompt)))

        def sample():
            if t.num_samples == 0:
                return []
            texts = generate(model, self.tokenizer, [t.sample_prompt] * t.num_samples, max_new_tokens=budget,
                             temperature=SAMPLE_TEMPERATURE).texts
            return [t.sample_prompt + s for s in texts]

        return sample


class TranslationTask:
    weighted_metrics = True  # label padding is weighted out
    random_validation_examples = False
    # The target's token-level perplexity; BLEU and chrF are `kerasllm evaluate`'s.
    epoch_metrics = ("loss", "perplexity", "accuracy")

    def __init__(self, config: RunConfig, run: RunDir, data_dir=None):
        from kerasllm.data.pair_corpus import count_pair_batches, open_pair_corpus

        self.config = config
        take_tokenizers(config, run)
        self.corpus = open_pair_corpus(config, run.root, data_dir)
        # The run's task frames the ids (its preprocessor), in batches and samples alike.
        self.corpus.preprocessor = task_registry.for_model(config.model).preprocessor(
            config, self.corpus.source_tokenizer, self.corpus.target_tokenizer)
        self.counts = count_pair_batches(self.corpus, run.data)
        self.batches_per_pass = self.counts["train_batches"]
        self.tokens_per_batch = config.train.batch_size * config.model.seq_len  # an upper bound
        self._samples = None

    def initialise(self, model, print_fn) -> None:
        """A new run with `train.init_from`: the other translation run's best weights."""
        load_run_weights(model, self.config, print_fn)

    def build_model(self, dtype):
        from kerasllm.models import build_translator

        return build_translator(self.config.model, self.corpus.source_tokenizer, self.corpus.target_tokenizer, dtype)

    def example_input(self):
        ids, mask = np.zeros((1, 2), "int32"), np.ones((1, 2), bool)
        return {"encoder_token_ids": ids, "encoder_padding_mask": mask,
                "decoder_token_ids": ids, "decoder_padding_mask": mask}

    def loss(self):
        return translation_loss(self.config)

    def describe(self) -> str:
        c, r = self.counts, self.corpus.report
        kind = self.config.tokenizer.kind
        sizes = (f"{self.corpus.source_tokenizer.vocabulary_size}" if self.corpus.source_tokenizer is self.corpus.target_tokenizer
                 else f"{self.corpus.source_tokenizer.vocabulary_size}+{self.corpus.target_tokenizer.vocabulary_size}")
        return (f"vocabulary {sizes} ({kind}); {r.summary()}; {c['train_pairs']:,} training / "
                f"{c['validation_pairs']:,} validation / {c['test_pairs']:,} test pairs of at most "
                f"{self.config.model.seq_len} tokens, {c['train_batches']:,} batches per epoch "
                f"({c['train_padding']:.0%} padding)")

    def train_batches(self, skip: int, strategy=None):
        return self.corpus.batches("train", training=True, skip=skip)

    def input_sharding(self, strategy) -> str:
        return "data" if strategy is not None and in_multi_worker_mode(strategy) else "none"

    def validation_batches(self):
        return self.corpus.batches("validation")

    def validation_explainer(self):
        from kerasllm.training.explain_callback import translation_explainer

        return translation_explainer(self.config, self)

    def sampler(self, model):
        from kerasllm.inference.translate import translate

        t = self.config.train

        def sample():
            if t.num_samples == 0:
                return []
            if self._samples is None:  # the first distinct validation sources
                distinct = dict.fromkeys(s.decode() for sources, _ in self.corpus.pairs("validation").take(1)
                                         for s in sources.numpy())
                self._samples = list(distinct)[: t.num_samples]
            outputs = translate(model, self.corpus.source_tokenizer, self.corpus.target_tokenizer, self._samples,
                                max_length=self.config.model.seq_len, preprocessor=self.corpus.preprocessor)
            return [f"{s} -> {o}" for s, o in zip(self._samples, outputs)]

        return sample


def _num_workers(strategy) -> int:
    spec = strategy.cluster_resolver.cluster_spec()
    return sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker"))


def translation_loss(config: RunConfig):
    if config.train.label_smoothing:
        from kerasllm.training.losses import SmoothedSparseCrossentropy

        return SmoothedSparseCrossentropy(config.train.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

