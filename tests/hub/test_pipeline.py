"""`pipeline("video-text-to-text")` in every input form, against direct generation with the same settings."""

import json
import socket

import pytest
import torch
from transformers import pipeline

from hub_testing import QUESTION

from storm_hf.processors.video_decoding import VideoDownloadError

FRAMES = 8


@pytest.fixture(scope="module")
def pipe(hub_folder):
    return pipeline("video-text-to-text", model=str(hub_folder))


def chat(video, question=QUESTION):
    return [{"role": "user", "content": [{"type": "video", "path": str(video)}, {"type": "text", "text": question}]}]


def direct_answer(model, processor, video, **processor_kwargs) -> str:
    inputs = processor.apply_chat_template(
        chat(video), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs=processor_kwargs,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize(
    "settings", [{"num_frames": FRAMES}, {"num_frames": 16, "temporal_sampling_stride": 2}, {"fps": 4, "max_frames": 8}]
)
def test_chat_input_passes_frame_settings_to_the_processor(pipe, tiny_model_and_processor, video_file, settings):
    [result] = pipe(text=chat(video_file), max_new_tokens=5, return_full_text=False, **settings)
    assert result["generated_text"] == direct_answer(*tiny_model_and_processor, video_file, **settings)
    assert result["input_text"] == chat(video_file)


def test_a_token_budget_gives_the_answer_of_the_stride_it_picks(pipe, tiny_model_and_processor, video_file):
    # 16 frames at k = 4 are 4 slots of 4 tokens: a budget of 8 keeps 2 slots, at s = 2
    [result] = pipe(text=chat(video_file), max_new_tokens=5, num_frames=16, max_video_tokens=8, return_full_text=False)
    model, processor = tiny_model_and_processor
    strided = direct_answer(model, processor, video_file, num_frames=16, temporal_sampling_stride=2)
    assert result["generated_text"] == strided


def test_text_and_videos_input_is_the_same_as_the_chat(pipe, video_file):
    from_text = pipe(text=QUESTION, videos=str(video_file), num_frames=FRAMES, max_new_tokens=5, return_full_text=False)
    from_chat = pipe(text=chat(video_file), num_frames=FRAMES, max_new_tokens=5, return_full_text=False)
    assert from_text[0]["generated_text"] == from_chat[0]["generated_text"]


def test_batches_of_inputs_give_one_result_each(pipe, video_file):
    singles = [pipe(text=chat(video_file, q), num_frames=FRAMES, max_new_tokens=4) for q in (QUESTION, "Which colour?")]
    batch = pipe(text=[chat(video_file, QUESTION), chat(video_file, "Which colour?")], num_frames=FRAMES, max_new_tokens=4)
    assert batch == singles
    texts = pipe(text=[QUESTION, QUESTION], videos=[str(video_file)] * 2, num_frames=FRAMES, max_new_tokens=4)
    assert len(texts) == 2 and texts[0] == texts[1]


def test_return_full_text_appends_the_answer_to_the_chat(pipe, tiny_model_and_processor, video_file):
    [result] = pipe(text=chat(video_file), num_frames=FRAMES, max_new_tokens=5, return_full_text=True)
    *conversation, answer = result["generated_text"]
    assert conversation == chat(video_file)
    expected = direct_answer(*tiny_model_and_processor, video_file, num_frames=FRAMES)
    assert answer == {"role": "assistant", "content": expected}


def test_generation_kwargs_reach_generate(pipe, video_file):
    [short] = pipe(text=chat(video_file), num_frames=FRAMES, max_new_tokens=1, return_full_text=False)
    [longer] = pipe(
        text=chat(video_file), num_frames=FRAMES, generate_kwargs={"max_new_tokens": 6, "min_new_tokens": 6},
        return_full_text=False,
    )
    tokenizer = pipe.processor.tokenizer
    assert len(tokenizer(short["generated_text"])["input_ids"]) <= 1
    assert longer["generated_text"].startswith(short["generated_text"])


@pytest.mark.parametrize(
    "call, message",
    [
        ({"videos": "clip.mp4"}, "Pass the question as `text=`"),
        ({"text": [QUESTION, QUESTION], "videos": ["a.mp4"]}, "Got 2 texts but 1 videos"),
        ({"text": [{"role": "user", "content": "hi"}], "videos": "a.mp4"}, "put each video inside the message content"),
    ],
)
def test_bad_calls_say_what_to_pass(pipe, call, message):
    with pytest.raises(ValueError, match=message):
        pipe(**call)


REMOTE_SCRIPT = """
import json, sys
from transformers import pipeline

folder, video = sys.argv[1], sys.argv[2]
chat = [{"role": "user", "content": [{"type": "video", "path": video}, {"type": "text", "text": %(question)r}]}]
named = pipeline("video-text-to-text", model=folder, trust_remote_code=True)
inferred = pipeline(model=folder, trust_remote_code=True)
print(json.dumps({
    "classes": [type(named).__module__.split(".")[0], type(inferred).__name__],
    "chat": named(text=chat, num_frames=8, max_new_tokens=5, return_full_text=False)[0]["generated_text"],
    "text": inferred(text=%(question)r, videos=video, num_frames=8, max_new_tokens=5, return_full_text=False)[0][
        "generated_text"],
}))
""" % {"question": QUESTION}


def test_remote_code_pipeline_with_the_task_named_or_inferred(hub_folder, video_file, pipe, python_without_storm_hf):
    result = python_without_storm_hf(REMOTE_SCRIPT, hub_folder, video_file)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["classes"] == ["transformers_modules", "StormVideoTextToTextPipeline"]
    expected = pipe(text=chat(video_file), num_frames=FRAMES, max_new_tokens=5, return_full_text=False)[0]["generated_text"]
    assert outcome["chat"] == outcome["text"] == expected


def test_the_timeout_bounds_the_download_of_a_video_url(pipe):
    with socket.socket() as silent:  # takes connections (into its backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/video.mp4"
        messages = [{"role": "user", "content": [{"type": "video", "url": url}, {"type": "text", "text": QUESTION}]}]
        with pytest.raises(VideoDownloadError, match=r"no answer for 0.5 s"):
            pipe(messages, timeout=0.5, max_new_tokens=1)
