"""What the two encoder tasks (masked-LM pretraining and question
answering, `model.kind: encoder`) share: the config rules of a BERT-style
encoder and its WordPiece tokenizer.

Example:
    check_encoder(config, "configs/squad-qa.yaml")
"""

from __future__ import annotations

from kerasllm.config import FINETUNE_KEYS, require
from kerasllm.tasks.language_model import TRANSFORMER_KEYS, check_heads_divide

ENCODER_KEYS = TRANSFORMER_KEYS + FINETUNE_KEYS + ("model.head", "train.init_from")


def check_encoder(config, where: str) -> None:
    """The rules every encoder run meets: WordPiece (for its [CLS], [SEP]
    and [MASK] tokens), heads that divide the width, sane QA window sizes."""
    m, t = config.model, config.train
    require(config.tokenizer.kind == "wordpiece", where, "model.kind encoder needs tokenizer.kind: wordpiece "
            "(its [CLS], [SEP] and [MASK] tokens)")
    require(0.0 < t.mask_rate < 1.0, where, f"train.mask_rate must be in (0, 1), got {t.mask_rate}")
    require(1 <= m.doc_stride, where, "model.doc_stride must be at least 1")
    require(1 <= m.max_answer_tokens, where, "model.max_answer_tokens must be at least 1")
    check_heads_divide(config, where)
    require(not config.train.data_service, where, "train.data_service feeds language models; translation and "
            "question-answering runs read their data locally")
