"""`video-text-to-text` against transformers' own `image-text-to-text`, side by side on the same STORM folder: every
input form and parameter gives the same results with images (and with video chats, which image-text-to-text also
renders), the same structure with videos, and batched answers equal one-at-a-time answers."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
import transformers
from hub_testing import QUESTION, moving_square
from packaging import version
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

from storm_hf.data.video_writer import write_video

FRAMES = 8
NEW = {"max_new_tokens": 4}


@pytest.fixture(scope="module")
def ours(hub_folder):
    return pipeline("video-text-to-text", model=str(hub_folder))


@pytest.fixture(scope="module")
def reference(hub_folder):
    return pipeline("image-text-to-text", model=str(hub_folder))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "frame.png"
    PIL.Image.fromarray(moving_square()[5]).save(path)
    return str(path)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return str(write_video(tmp_path_factory.mktemp("long") / "long.mp4", moving_square(40)[::-1], fps=8))


def image_chat(image, question=QUESTION):
    return [{"role": "user", "content": [{"type": "image", "path": image}, {"type": "text", "text": question}]}]


def video_chat(video, question=QUESTION):
    return [{"role": "user", "content": [{"type": "video", "path": str(video)}, {"type": "text", "text": question}]}]


def prefilled(chat, words="It"):
    return chat + [{"role": "assistant", "content": [{"type": "text", "text": words}]}]


def results(output):
    """Pipeline output as plain data (iterators consumed, token tensors as lists)."""
    if isinstance(output, dict):
        return {key: results(value) for key, value in output.items()}
    if isinstance(output, torch.Tensor):
        return output.tolist()
    if isinstance(output, (list, tuple)) or hasattr(output, "__next__"):
        return [results(item) for item in output]
    return output


def shape(output):
    """The structure of an output: keys, list lengths and value types, without the values."""
    if isinstance(output, dict):
        return {key: shape(value) for key, value in output.items()}
    if isinstance(output, list):
        return [shape(item) for item in output]
    return type(output).__name__


# Calls image-text-to-text takes, built from an image path; each runs as it is on both pipelines.
IMAGE_CALLS = {
    "chat": lambda image: ((), {"text": image_chat(image)}),
    "chat as the first argument": lambda image: ((image_chat(image),), {}),
    "list of chats": lambda image: ((), {"text": [image_chat(image), image_chat(image, "Which colour?")]}),
    "chat continued": lambda image: ((), {"text": prefilled(image_chat(image))}),
    "chat not continued": lambda image: ((), {"text": prefilled(image_chat(image)), "continue_final_message": False}),
    "new text only": lambda image: ((), {"text": image_chat(image), "return_full_text": False}),
    "token ids": lambda image: ((), {"text": image_chat(image), "return_tensors": True}),
    "several sequences": lambda image: (
        (), {"text": image_chat(image), "generate_kwargs": {"num_beams": 3, "num_return_sequences": 2}}
    ),
    "stop sequence": lambda image: ((), {"text": image_chat(image), "stop_sequence": "i"}),
    "prompt with images=": lambda image: ((), {"images": image, "text": "<|image_pad|>" + QUESTION, "timeout": 5}),
    "dict": lambda image: (({"images": image, "text": "<|image_pad|>" + QUESTION},), {}),
    "text only": lambda image: ((), {"text": "Hello"}),
    "generator of chats": lambda image: (((c for c in [image_chat(image), image_chat(image, "Why?")]),), {}),
    "dataset of chats": lambda image: (
        (KeyDataset([{"m": image_chat(image)}, {"m": image_chat(image, "Why?")}], "m"),), {}
    ),
}


# image-text-to-text before 5.23 returned only the first of several sequences, and before 5.24 its internal chat
# wrapper as the input_text of token ids: there the reference itself is wrong (this pipeline's own tests cover both).
_INSTALLED = version.parse(transformers.__version__)
REFERENCE_BROKEN = {
    form
    for forms, fixed_in in (
        (("several sequences", "video chat, several sequences"), "5.23"),
        (("token ids", "video chat, token ids"), "5.24"),
    )
    if _INSTALLED < version.parse(fixed_in)
    for form in forms
}


@pytest.mark.parametrize("form", list(IMAGE_CALLS))
def test_every_image_text_to_text_call_gives_the_same_result(ours, reference, image_file, form):
    if form in REFERENCE_BROKEN:
        pytest.skip(f"image-text-to-text {transformers.__version__} gets {form!r} wrong")
    args, kwargs = IMAGE_CALLS[form](image_file)
    expected = results(reference(*args, **kwargs, **NEW))
    args, kwargs = IMAGE_CALLS[form](image_file)  # generators are used up
    assert results(ours(*args, **kwargs, **NEW)) == expected


def test_a_list_of_dicts_is_a_batch(ours, image_file, video_file):
    """image-text-to-text reads a list of dicts as one chat and fails; here each dict is an input."""
    inputs = [{"images": image_file, "text": "<|image_pad|>Which?"}, {"videos": str(video_file), "text": QUESTION}]
    assert ours(inputs, num_frames=FRAMES, **NEW) == [ours(item, num_frames=FRAMES, **NEW) for item in inputs]


def test_the_defaults_are_image_text_to_text_s(ours, image_file):
    [result] = ours(image_chat(image_file), **NEW)
    *conversation, answer = result["generated_text"]  # return_full_text=True: the chat and the answer
    assert conversation == image_chat(image_file) and answer["role"] == "assistant"
    [continued] = ours(prefilled(image_chat(image_file)), **NEW)
    assert len(continued["generated_text"]) == 2  # the final assistant message is continued, not a new one
    assert continued["generated_text"][-1]["content"][-1]["text"].startswith("It")


VIDEO_CALLS = {
    "video chat": {"text": "video chat"},
    "video chats, batched": {"text": "video chats", "batch_size": 2},
    "video chat, token ids": {"text": "video chat", "return_tensors": True},
    "video chat, several sequences": {"text": "video chat", "generate_kwargs": {"num_beams": 2, "num_return_sequences": 2}},
}


@pytest.mark.parametrize("form", list(VIDEO_CALLS))
def test_video_chats_give_what_image_text_to_text_gives_for_them(ours, reference, video_file, form):
    """image-text-to-text renders video blocks through the processor too; with the tokenizer padding left, even its
    batches (videos of one length) answer as single calls do."""
    if form in REFERENCE_BROKEN:
        pytest.skip(f"image-text-to-text {transformers.__version__} gets {form!r} wrong")
    call = VIDEO_CALLS[form]
    chats = {"video chat": video_chat(video_file), "video chats": [video_chat(video_file), video_chat(video_file, "Why?")]}
    call = {**call, "text": chats[call["text"]], "processor_kwargs": {"num_frames": FRAMES}}
    assert results(ours(**call, **NEW)) == results(reference(**call, **NEW))


def test_video_inputs_have_the_structure_of_image_inputs(ours, video_file, image_file):
    for image_call, video_call in [
        ({"text": image_chat(image_file)}, {"text": video_chat(video_file)}),
        ({"images": image_file, "text": "<|image_pad|>" + QUESTION}, {"videos": str(video_file), "text": "<|video_pad|>Q"}),
        ({"images": image_file, "text": QUESTION}, {"videos": str(video_file), "text": QUESTION}),
        ({"images": [image_file] * 2, "text": [QUESTION] * 2}, {"videos": [str(video_file)] * 2, "text": [QUESTION] * 2}),
    ]:
        from_images = ours(**image_call, **NEW)
        from_videos = ours(**video_call, num_frames=FRAMES, **NEW)
        assert shape(results(from_videos)) == shape(results(from_images))


def test_a_question_with_media_is_one_user_turn(ours, video_file, image_file):
    """`text=` + `videos=`/`images=` without placeholders: the chat with the media first, the question last."""
    for media, block in (({"videos": str(video_file)}, "video"), ({"images": image_file}, "image")):
        [from_text] = ours(text=QUESTION, **media, num_frames=FRAMES, return_full_text=False, **NEW)
        path = next(iter(media.values()))
        chat = [{"role": "user", "content": [{"type": block, "path": path}, {"type": "text", "text": QUESTION}]}]
        [from_chat] = ours(chat, num_frames=FRAMES, return_full_text=False, **NEW)
        assert from_text["generated_text"] == from_chat["generated_text"]
        assert from_text["input_text"] == QUESTION


def test_batched_answers_equal_one_at_a_time(ours, video_file, long_video, image_file):
    inputs = [
        video_chat(video_file),
        video_chat(long_video, "Which colour appears first? Answer in one word."),
        image_chat(image_file, "And here?"),
        prefilled(video_chat(long_video), "It moves"),
        [{"role": "user", "content": "No video at all."}],
    ]
    kwargs = {"num_frames": FRAMES, "temporal_sampling_stride": 2, **NEW}
    singles = [ours(chat, **kwargs) for chat in inputs]
    for batch_size in (2, 5):
        assert ours(inputs, batch_size=batch_size, **kwargs) == singles
    questions = ["What happens?", "Which colour appears first? Answer in one word.", "Why?"]
    videos = [str(video_file), long_video, str(video_file)]
    one_by_one = [ours(text=q, videos=v, num_frames=FRAMES, **NEW) for q, v in zip(questions, videos)]
    assert ours(text=questions, videos=videos, num_frames=FRAMES, batch_size=3, **NEW) == one_by_one
    streamed = ours(KeyDataset([{"chat": chat} for chat in inputs], "chat"), batch_size=2, **kwargs)
    assert list(streamed) == singles


def test_token_ids_come_with_the_messages(ours, video_file):
    [result] = ours(video_chat(video_file), num_frames=FRAMES, return_tensors=True, **NEW)
    assert result["input_text"] == video_chat(video_file) and result["generated_token_ids"].ndim == 1


def test_several_sequences_per_input_in_a_batch(ours, video_file, long_video):
    chats = [video_chat(video_file), video_chat(long_video, "Why?")]
    kwargs = {"num_frames": FRAMES, "generate_kwargs": {"num_beams": 3, "num_return_sequences": 3}, **NEW}
    batched = ours(chats, batch_size=2, **kwargs)
    assert [len(per_input) for per_input in batched] == [3, 3]
    assert batched == [ours(chat, **kwargs) for chat in chats]
    assert len({result["generated_text"][-1]["content"] for result in batched[0]}) == 3  # three distinct beams


def video_tokens(ours, result) -> int:
    return int((result["generated_token_ids"] == ours.processor.video_token_id).sum())


def test_processor_options_reach_the_processor(ours, video_file):
    """Every processor option goes to the processor, not to generate (where they used to fail)."""
    processor = ours.processor
    per_slot = processor.video_processor.tokens_per_frame

    def count(**options):
        return video_tokens(ours, ours(video_chat(video_file), return_tensors=True, max_new_tokens=1, **options)[0])

    assert count(do_sample_frames=False) == 24 // 4 * per_slot  # every frame of the 24
    assert count(processor_kwargs={"num_frames": FRAMES}) == FRAMES // 4 * per_slot
    assert count(num_frames=16, temporal_sampling_stride=2) == 2 * per_slot
    frames = moving_square(12)
    [from_frames] = ours(text="Q", videos=frames, fps=2, video_metadata={"fps": 4.0}, return_tensors=True, max_new_tokens=1)
    assert video_tokens(ours, from_frames) == 8 // 4 * per_slot  # 3 s at 2 fps -> 6, rounded to 8
    with pytest.raises(ValueError, match=r"\['num_frames'\] given both as keywords and in processor_kwargs"):
        ours(video_chat(video_file), num_frames=8, processor_kwargs={"num_frames": 4})


def test_stop_sequence_stops_generation(ours, video_file):
    [free] = ours(video_chat(video_file), num_frames=FRAMES, max_new_tokens=8, return_full_text=False)
    stop = free["generated_text"][1:3]
    [stopped] = ours(
        video_chat(video_file), num_frames=FRAMES, max_new_tokens=8, return_full_text=False, stop_sequence=stop
    )
    # generation stops with the token that completes the stop string
    assert stop in stopped["generated_text"] and len(stopped["generated_text"]) < len(free["generated_text"])
    assert free["generated_text"].startswith(stopped["generated_text"])


def test_frame_files_as_one_video(ours, tmp_path):
    paths = []
    for index, frame in enumerate(moving_square(8)):
        paths.append(str(tmp_path / f"{index}.png"))
        PIL.Image.fromarray(frame).save(paths[-1])
    chat = [{"role": "user", "content": [{"type": "video", "path": paths}, {"type": "text", "text": QUESTION}]}]
    [from_files] = ours(chat, num_frames=FRAMES, **NEW)
    [from_array] = ours(text=QUESTION, videos=np.stack([np.asarray(PIL.Image.open(p)) for p in paths]), num_frames=FRAMES,
                        return_full_text=False, **NEW)
    assert from_files["generated_text"][-1]["content"] == from_array["generated_text"]


REMOTE_SCRIPT = """
import json, sys
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

folder, video, long_video = sys.argv[1:4]
def chat(path, question):
    return [{"role": "user", "content": [{"type": "video", "path": path}, {"type": "text", "text": question}]}]
chats = [chat(video, "What happens?"), chat(long_video, "Why?") + [{"role": "assistant", "content": "It"}]]
pipe = pipeline("video-text-to-text", model=folder, trust_remote_code=True)
kwargs = {"num_frames": 8, "max_new_tokens": 4}
print(json.dumps({
    "module": type(pipe).__module__.split(".")[0],
    "batched": pipe(chats, batch_size=2, **kwargs),
    "dataset": list(pipe(KeyDataset([{"c": c} for c in chats], "c"), batch_size=2, **kwargs)),
    "text": pipe(text=["What happens?", "Why?"], videos=[video, long_video], batch_size=2, **kwargs),
}))
"""


def test_the_exported_pipeline_without_storm_hf(hub_folder, video_file, long_video, ours, python_without_storm_hf):
    result = python_without_storm_hf(REMOTE_SCRIPT, hub_folder, video_file, long_video)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    continued = video_chat(long_video, "Why?") + [{"role": "assistant", "content": "It"}]
    chats = [video_chat(video_file, "What happens?"), continued]
    kwargs = {"num_frames": FRAMES, **NEW}
    expected = [ours(chat, **kwargs) for chat in chats]
    assert outcome["module"] == "transformers_modules"
    assert outcome["batched"] == outcome["dataset"] == expected
    texts = [ours(text=q, videos=v, **kwargs) for q, v in (("What happens?", str(video_file)), ("Why?", long_video))]
    assert outcome["text"] == texts
