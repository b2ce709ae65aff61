"""The zoo's tokenizer: one byte-level BPE trained here, in a BOS and a no-BOS variant.

One BPE (`train_bpe`, with `tokenizers`) is trained on the corpus's train slice and wrapped as a
transformers tokenizer (`wrap_tokenizer`) in two variants: one that prepends a BOS token (like
Llama's) and one that does not (like GPT-2's and Pythia's), so that the scorer's BOS convention
is exercised both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from pylogmap.demo.corpus import Document

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS_TOKEN = "<s>"
EOS_TOKEN = "<|endoftext|>"


def train_bpe(documents: Sequence[Document], vocab_size: int) -> Tokenizer:
    """A byte-level BPE `tokenizers.Tokenizer` trained on `documents` (deterministic, about 1 s).

    Byte level means any UTF-8 text tokenizes without unknown tokens, like GPT-2's tokenizer.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([d.text for d in documents], trainer)
    return tokenizer


def wrap_tokenizer(bpe: Tokenizer, *, add_bos: bool, model_max_length: int) -> PreTrainedTokenizerFast:
    """A transformers fast tokenizer around `bpe`.

    `add_bos=True` prepends `<s>` when called with the default `add_special_tokens=True`, as
    Llama's tokenizer does; `add_bos=False` adds nothing, as GPT-2's and Pythia's do (their
    `<|endoftext|>` only separates documents).
    """
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer.from_str(bpe.to_str())  # a copy: the post-processor differs per variant
    if add_bos:
        bos_id = bpe.token_to_id(BOS_TOKEN)
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=bpe, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, model_max_length=model_max_length
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, model_max_length=model_max_length
    )
