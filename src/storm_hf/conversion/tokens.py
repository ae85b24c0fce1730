"""The video / image placeholder tokens: added to a tokenizer that lacks them, with embeddings to match."""

from tokenizers import AddedToken

from ..processors.processing_storm import IMAGE_TOKEN, VIDEO_TOKEN


def add_placeholder_tokens(tokenizer) -> list[str]:
    """Add the placeholders the tokenizer lacks as special tokens; returns the ones added."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in (VIDEO_TOKEN, IMAGE_TOKEN) if token not in vocab]
    if missing:
        tokens = [AddedToken(token, special=True, normalized=False) for token in missing]
        tokenizer.add_tokens(tokens, special_tokens=True)
    return missing


def placeholder_token_ids(tokenizer) -> dict[str, int]:
    """`video_token_id` / `image_token_id` for StormConfig."""
    return {
        "video_token_id": tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        "image_token_id": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    }


def fit_embeddings_to_tokenizer(model, tokenizer) -> int:
    """Grow the input and output embeddings to cover every token id; returns the number of rows added.

    New rows are drawn around the mean of the existing rows with their covariance (transformers' mean resizing), so
    the new tokens start where the model's next-token distribution barely moves, not at zero or at random scale.
    Rows the language model already reserves beyond its tokenizer are kept as they are.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    needed = len(tokenizer)
    if needed <= rows:
        return 0
    model.resize_token_embeddings(needed, mean_resizing=True)
    return needed - rows
