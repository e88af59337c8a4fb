"""Preprocessors: each task's one path between strings and token ids.

A preprocessor owns a run's tokenizer(s) and turns raw text into what its
model reads (training examples, the inputs decoding starts from) and what
the model produces back into text, the role a `Preprocessor` plays in
keras-hub. The training pipelines, in-process generation, scoring,
translation and answering, evaluation and the exported SavedModels all
call these methods, so a task reads and writes text one way:

| task | preprocessor | keras-hub counterpart |
|---|---|---|
| language model | `LanguageModelPreprocessor` | `CausalLMPreprocessor` |
| translation | `TranslationPreprocessor` | `Seq2SeqLMPreprocessor` |
| translation (BART) | `BartTranslationPreprocessor` | `BartSeq2SeqLMPreprocessor` |
| masked-LM pretraining | `MaskedLMPreprocessor` | `MaskedLMPreprocessor` |
| question answering | `QuestionAnsweringPreprocessor` | `BertTextClassifierPreprocessor` (a pair of segments) |

A task's `preprocessor(config, tokenizer, target_tokenizer)`
(`kerasllm.tasks.Task`) makes its preprocessor for a run.

Why plain classes, not subclasses of `keras_hub.models.Preprocessor`:
keras-hub's are Keras layers whose tokenizer must be a keras-hub tokenizer
layer (saved and restored through `get_config` and presets), and whose
`call(x, y, sample_weight)` tokenizes and packs in one step. kerasllm's
tokenizers are its own classes (`kerasllm.data.tokenizers`, saved with a
run by `Tokenizer.save`), its data is packed by tf.data pipelines between
tokenizing and batching (blocks of a token stream, length buckets,
question windows), and the methods run inside tf.data maps and exported
`tf.Module` functions, where a layer would add only its config and dtype
machinery. So the classes keep keras-hub's roles and method names
(`generate_preprocess`, `generate_postprocess`, `tokenizer`) without its
base class. Every method is TensorFlow ops, the same eagerly, in a
`tf.function` and inside tf.data.

Example:
    from kerasllm.data.preprocessors import LanguageModelPreprocessor

    preprocessor = LanguageModelPreprocessor(tokenizer)
    batch = preprocessor.generate_preprocess(tf.constant(["ROMEO:"]), max_new_tokens=20, context=128)
"""

from kerasllm.data.preprocessors.language_model import LanguageModelPreprocessor, PromptBatch
from kerasllm.data.preprocessors.masked_lm import MaskedLMPreprocessor
from kerasllm.data.preprocessors.question_answering import QuestionAnsweringPreprocessor
from kerasllm.data.preprocessors.translation import BartTranslationPreprocessor, TranslationPreprocessor

__all__ = [
    "BartTranslationPreprocessor",
    "LanguageModelPreprocessor",
    "MaskedLMPreprocessor",
    "PromptBatch",
    "QuestionAnsweringPreprocessor",
    "TranslationPreprocessor",
]
