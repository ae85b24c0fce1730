"""A small Qwen2-style tokenizer built offline, for tiny models, tests and examples.

It has Qwen2's pre-tokenization and byte-level BPE (trained here on the given texts), Qwen2's special tokens plus
STORM's placeholders, after the learned vocabulary and in this order: <|endoftext|>, <|im_start|>, <|im_end|>,
<|video_pad|>, <|image_pad|>; and STORM's chat template. `save_pretrained` / `AutoTokenizer.from_pretrained` round
trip it like any Qwen2 tokenizer.
"""

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from .processors.processing_storm import CHAT_TEMPLATE, IMAGE_TOKEN, VIDEO_TOKEN

# Named special tokens after <|endoftext|> (eos, pad and unk), in id order.
SPECIAL_TOKENS = {
    "im_start_token": "<|im_start|>",
    "im_end_token": "<|im_end|>",
    "video_token": VIDEO_TOKEN,
    "image_token": IMAGE_TOKEN,
}


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Qwen2Tokenizer:
    """Train a byte-level BPE on `texts` and wrap it as a Qwen2 tokenizer with STORM's specials and chat template.

    `vocab_size` bounds the whole vocabulary, special tokens included (at least the 256 byte tokens + 5 specials).
    The result is deterministic for the same texts and size.
    """
    num_special = 1 + len(SPECIAL_TOKENS)
    if vocab_size < 256 + num_special:
        raise ValueError(f"vocab_size must be at least {256 + num_special} (256 bytes + specials), got {vocab_size}.")
    bpe = Tokenizer(BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - num_special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    model = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=[tuple(merge) for merge in model["merges"]],
        extra_special_tokens=SPECIAL_TOKENS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
