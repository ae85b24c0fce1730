import pytest
from processor_testing import CORPUS
from transformers import AutoTokenizer

from storm_hf.processors.processing_storm import CHAT_TEMPLATE
from storm_hf.tokenization import build_tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|video_pad|>", "<|image_pad|>"]


def test_specials_follow_the_learned_vocabulary(tokenizer):
    assert len(tokenizer) <= 320
    assert tokenizer.convert_tokens_to_ids(SPECIALS) == list(range(len(tokenizer) - 5, len(tokenizer)))
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>", "<|endoftext|>")
    assert (tokenizer.video_token, tokenizer.image_token) == ("<|video_pad|>", "<|image_pad|>")
    assert tokenizer.chat_template == CHAT_TEMPLATE


def test_byte_level_round_trip_and_atomic_specials(tokenizer):
    text = "Ünïcode and emoji 🎬 never seen in training.\n\n<|video_pad|>x"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert ids.count(tokenizer.convert_tokens_to_ids("<|video_pad|>")) == 1


def test_save_and_reload_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\n<|video_pad|>What happens?<|im_end|>\n"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert len(loaded) == len(tokenizer) and loaded.chat_template == CHAT_TEMPLATE
    assert loaded.convert_tokens_to_ids(SPECIALS) == tokenizer.convert_tokens_to_ids(SPECIALS)


def test_deterministic_and_bounded():
    assert build_tokenizer(CORPUS, vocab_size=300).get_vocab() == build_tokenizer(CORPUS, vocab_size=300).get_vocab()
    with pytest.raises(ValueError, match="vocab_size must be at least 261"):
        build_tokenizer(CORPUS, vocab_size=100)
