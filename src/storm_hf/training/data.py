"""Video instruction data: loading JSON/JSONL rows with `datasets`, and the collator that turns rows into batches.

A row holds a conversation in the usual `messages` form and the media it refers to:

    {"id": "x", "video": "videos/x.mp4",        # or "image": "images/y.png"; a list for several
     "messages": [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "question"}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "answer"}]}]}

Each `{"type": "video"}` / `{"type": "image"}` item of the messages receives the row's next video / image path.
In a row built in memory (not loaded from a file), a video may instead be its decoded frames, a `(T, H, W, 3)` uint8
array (numpy or torch), and an image an `(H, W, 3)` array; a list of such arrays for several.
"""

import logging
import multiprocessing
import random
from pathlib import Path

import torch

from ..processors.video_processing_storm import concatenate_videos

logger = logging.getLogger(__name__)

MEDIA_COLUMNS = ("video", "image")
IGNORE_INDEX = -100
# Batch keys the model reads; anything else the processor returns is dropped.
_PIXEL_KEYS = ("pixel_values_videos", "video_frame_counts", "pixel_values")


def _is_frames(value) -> bool:
    """Decoded frames (an array or tensor) rather than a path or a list of media."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, Path)) or _is_frames(value) else list(value)


def load_training_dataset(source, *, media_root=None):
    """A `datasets.Dataset` of training rows, with every video/image path made absolute and checked to exist.

    `source` is a JSON or JSONL file (its media paths are relative to the file's folder unless `media_root` is given)
    or a `datasets.Dataset` with the same columns (relative paths are taken from `media_root`, default the current
    folder).
    """
    import datasets

    if isinstance(source, datasets.Dataset):
        dataset, root = source, Path(media_root or ".")
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"No training data at {path}: give a JSON/JSONL file or a datasets.Dataset.")
        dataset = datasets.load_dataset("json", data_files=str(path), split="train")
        root = Path(media_root) if media_root is not None else path.parent
    if "messages" not in dataset.column_names:
        raise ValueError(
            f"The training data has no 'messages' column (columns: {dataset.column_names}); each row needs a "
            "conversation: [{'role': 'user', 'content': [...]}, {'role': 'assistant', 'content': [...]}]."
        )
    columns = [column for column in MEDIA_COLUMNS if column in dataset.column_names]
    if not columns:
        return dataset
    root = root.resolve()

    def resolve(row, index):
        resolved = {}
        for column in columns:
            paths = []
            for name in _as_list(row[column]):
                media = root / name
                if not media.is_file():
                    raise FileNotFoundError(
                        f"Row {index} (id {row.get('id', index)!r}): {column} {name!r} not found at {media}. "
                        "Paths are relative to the JSONL file's folder (or to media_root)."
                    )
                paths.append(str(media))
            resolved[column] = paths if isinstance(row[column], list) else (paths[0] if paths else None)
        return resolved

    # never from the cache: files may have moved since
    return dataset.map(resolve, with_indices=True, load_from_cache_file=False, desc="Checking media files")


def build_conversation(row: dict) -> list[dict]:
    """The row's messages with each video/image item pointing at the row's media (keys set to None by `datasets`'
    column merging are dropped)."""
    media = {column: _as_list(row.get(column)) for column in MEDIA_COLUMNS}
    used = dict.fromkeys(MEDIA_COLUMNS, 0)
    messages = []
    for message in row["messages"]:
        content = message["content"]
        if isinstance(content, list):
            items = []
            for item in content:
                item = {key: value for key, value in item.items() if value is not None}
                kind = item.get("type")
                if kind in media:
                    if used[kind] >= len(media[kind]):
                        raise ValueError(
                            f"Row {row.get('id')!r} has more {{'type': '{kind}'}} items in its messages than "
                            f"{kind} paths ({len(media[kind])}): give one '{kind}' path per item."
                        )
                    source = media[kind][used[kind]]
                    # decoded frames go where the processor takes media objects, paths where it loads files
                    item[kind if _is_frames(source) else "path"] = source
                    used[kind] += 1
                items.append(item)
            content = items
        messages.append({key: value for key, value in {**message, "content": content}.items() if value is not None})
    for kind in MEDIA_COLUMNS:
        if used[kind] != len(media[kind]):
            raise ValueError(
                f"Row {row.get('id')!r} has {len(media[kind])} {kind} path(s) but {used[kind]} {{'type': '{kind}'}} "
                f"item(s) in its messages: put one {{'type': '{kind}'}} item where each {kind} belongs."
            )
    return messages


class SampleTooLong(Exception):
    """A sample has more tokens than the collator's `max_length`."""


class StormDataCollator:
    """Training rows -> a padded batch for `StormForConditionalGeneration`, labels on the assistant's tokens only.

    Each row's conversation goes through the processor's chat template (`frame_kwargs`: `num_frames`, or `fps` and
    `max_frames`), which expands the video/image placeholders and marks the assistant's tokens (the template's
    `{% generation %}` blocks). Videos of different lengths are zero-padded to the longest in the batch, with
    `video_frame_counts` telling the model each one's length.

    A sample longer than `max_length` tokens is never truncated (that would cut through its video tokens): it is
    skipped, logged and counted in `num_skipped`. With `dataset` given, a skipped sample is replaced by another row
    of it, so a batch keeps its size; without it, the batch shrinks.
    """

    def __init__(self, processor, *, max_length: int = 8192, frame_kwargs: dict | None = None, dataset=None, seed=0):
        self.processor = processor
        self.max_length = max_length
        self.frame_kwargs = dict(frame_kwargs or {})
        self.dataset = dataset
        self.seed = seed
        self.pad_token_id = processor.tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError("The processor's tokenizer has no pad token: set tokenizer.pad_token before training.")
        # Shared with DataLoader worker processes, so the count covers every worker.
        self._skipped = multiprocessing.Value("l", 0)

    @property
    def num_skipped(self) -> int:
        """Samples skipped so far for being longer than `max_length`."""
        return self._skipped.value

    def encode(self, row: dict) -> dict[str, torch.Tensor]:
        """One row -> unpadded model inputs with `labels`; raises `SampleTooLong`."""
        inputs = self.processor.apply_chat_template(
            build_conversation(row),
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
            processor_kwargs=self.frame_kwargs,
        )
        input_ids = inputs["input_ids"][0]
        if len(input_ids) > self.max_length:
            raise SampleTooLong(f"{len(input_ids)} tokens > max_length {self.max_length}")
        assistant = torch.as_tensor(inputs["assistant_masks"])[0].bool()
        if not assistant.any() and any(m["role"] == "assistant" for m in row["messages"]):
            raise ValueError(
                "The processor's chat template marks no assistant tokens, so there is nothing to learn: its template "
                "must wrap each assistant reply (and its end-of-turn token) in {% generation %} ... "
                "{% endgeneration %}."
            )
        sample = {"input_ids": input_ids, "labels": input_ids.masked_fill(~assistant, IGNORE_INDEX)}
        sample.update({key: inputs[key] for key in _PIXEL_KEYS if key in inputs})
        return sample

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        samples = []
        for row in rows:
            sample = self._encode_or_skip(row)
            if sample is None and self.dataset is not None:
                sample = self._replacement(row)
            if sample is not None:
                samples.append(sample)
        if not samples:
            raise ValueError(
                f"Every sample of this batch is longer than max_length={self.max_length} tokens. Raise max_length, "
                "use fewer frames per video, or give the collator the dataset so skipped samples are replaced."
            )
        return self.pad(samples)

    def _encode_or_skip(self, row: dict):
        try:
            return self.encode(row)
        except SampleTooLong as reason:
            with self._skipped.get_lock():
                self._skipped.value += 1
                count = self._skipped.value
            logger.warning(
                "Skipped sample %r: %s (video and image tokens are never truncated); %d sample(s) skipped so far.",
                row.get("id", row.get("video", row.get("image"))),
                reason,
                count,
            )
            return None

    def _replacement(self, skipped_row: dict, attempts: int = 100) -> dict[str, torch.Tensor]:
        """Another row of the dataset, drawn deterministically from the skipped row's identity."""
        identity = [skipped_row.get(key) for key in ("id", *MEDIA_COLUMNS)]
        rng = random.Random(f"{self.seed}:{identity}")
        for _ in range(attempts):
            sample = self._encode_or_skip(self.dataset[rng.randrange(len(self.dataset))])
            if sample is not None:
                return sample
        raise ValueError(
            f"{attempts} rows drawn in a row were all longer than max_length={self.max_length} tokens: raise "
            "max_length or use fewer frames per video (num_frames / max_frames)."
        )

    def pad(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        """Right-pad token sequences; concatenate the videos (zero-padded to the longest) and the images."""
        length = max(len(sample["input_ids"]) for sample in samples)
        batch = {
            "input_ids": torch.full((len(samples), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros(len(samples), length, dtype=torch.long),
            "labels": torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long),
        }
        for row, sample in enumerate(samples):
            n = len(sample["input_ids"])
            batch["input_ids"][row, :n] = sample["input_ids"]
            batch["attention_mask"][row, :n] = 1
            batch["labels"][row, :n] = sample["labels"]
        videos = [sample for sample in samples if "pixel_values_videos" in sample]
        if videos:
            batch["pixel_values_videos"] = concatenate_videos([sample["pixel_values_videos"] for sample in videos])
            batch["video_frame_counts"] = torch.cat([sample["video_frame_counts"] for sample in videos])
            if "temporal_sampling_stride" in self.frame_kwargs:
                # the processor made tokens for this stride; the model must sample the same slots
                batch["temporal_sampling_stride"] = self.frame_kwargs["temporal_sampling_stride"]
        images = [sample["pixel_values"] for sample in samples if "pixel_values" in sample]
        if images:
            batch["pixel_values"] = torch.cat(images)
        return batch

