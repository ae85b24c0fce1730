"""STORM in vLLM's offline engine (`LLM`) against transformers' `generate` on the same Hub folder: the same prompt
tokens (so the same video token counts) and token-for-token the same greedy answers."""

import os

import numpy as np
import pytest
import torch
from vllm_testing import MAX_MODEL_LEN, NEW_TOKENS, VIDEOS, messages, require_vllm, square_video

require_vllm()

# (video, mm_processor_kwargs): different lengths, frame settings and test-time strides.
REQUESTS = [
    ("red", {}),
    ("green", {"temporal_sampling_stride": 2}),
    ("yellow", {"num_frames": 8}),
    ("blue", {"fps": 4, "temporal_sampling_stride": 3}),
    ("green", {"num_frames": 16, "temporal_sampling_stride": 4}),
]


@pytest.fixture(scope="module")
def llm(storm_folder, videos):
    from vllm import LLM

    # The engine and its worker in this process (no spawned processes to start: the server test runs those).
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    engine = LLM(
        model=str(storm_folder),
        max_model_len=MAX_MODEL_LEN,
        enforce_eager=True,
        dtype="float32",
        seed=0,
        allowed_local_media_path=str(videos["red"].parent),
        limit_mm_per_prompt={"video": 2, "image": 1},
        distributed_executor_backend="uni",
    )
    try:
        yield engine
    finally:
        engine.llm_engine.engine_core.shutdown()
        del os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"]


@pytest.fixture(scope="module")
def prompt(reference):
    return reference.processor.apply_chat_template(messages({"type": "video"}), add_generation_prompt=True, tokenize=False)


def _greedy(**kwargs):
    from vllm import SamplingParams

    return SamplingParams(max_tokens=NEW_TOKENS, temperature=0.0, **kwargs)


def _request(prompt, video, settings):
    return {"prompt": prompt, "multi_modal_data": {"video": video}, "mm_processor_kwargs": settings}


def test_single_requests_match_transformers(llm, prompt, reference, videos):
    for name, settings in REQUESTS:
        (output,) = llm.generate([_request(prompt, str(videos[name]), settings)], _greedy())
        prompt_ids, answer = reference.answer(videos[name], settings)
        assert output.prompt_token_ids == prompt_ids, (name, settings)
        assert list(output.outputs[0].token_ids) == answer, (name, settings)


def test_concurrent_requests_of_different_lengths_and_strides_match_transformers(llm, prompt, reference, videos):
    outputs = llm.generate([_request(prompt, str(videos[name]), settings) for name, settings in REQUESTS], _greedy())
    expected = [reference.answer(videos[name], settings) for name, settings in REQUESTS]
    video_tokens = [output.prompt_token_ids.count(reference.processor.video_token_id) for output in outputs]
    # 24 frames / k=4 = 6 slots, 40 / 4 / 2 = 5, 8 / 4 = 2, 3 s at 4 fps = 12 frames / 4 / 3 = 1, 16 / 4 / 4 = 1.
    assert video_tokens == [n * reference.processor.video_processor.tokens_per_frame for n in (6, 5, 2, 1, 1)]
    assert [output.prompt_token_ids for output in outputs] == [ids for ids, _ in expected]
    assert [list(output.outputs[0].token_ids) for output in outputs] == [answer for _, answer in expected]


def test_chat_with_a_video_url_matches_transformers(llm, reference, videos):
    chat = messages({"type": "video_url", "video_url": {"url": videos["green"].as_uri()}})
    settings = {"num_frames": 24, "temporal_sampling_stride": 2}
    (output,) = llm.chat(chat, _greedy(), mm_processor_kwargs=settings)
    prompt_ids, answer = reference.answer(videos["green"], settings)
    assert output.prompt_token_ids == prompt_ids
    assert list(output.outputs[0].token_ids) == answer


def test_decoded_frames_match_transformers(llm, prompt, reference):
    frames = square_video(*VIDEOS["blue"])
    for video in (frames, list(frames)):  # an array, and a list of frames
        (output,) = llm.generate([_request(prompt, video, {"temporal_sampling_stride": 2})], _greedy())
        prompt_ids, answer = reference.answer(frames, {"temporal_sampling_stride": 2})
        assert output.prompt_token_ids == prompt_ids
        assert list(output.outputs[0].token_ids) == answer


def test_the_video_changes_the_first_step_in_both_engines(llm, prompt, reference, videos):
    """The model reads the video: red and blue squares give different first-token distributions, in vLLM as in
    transformers, and vLLM's log-probabilities are transformers' own."""
    vllm_logprobs = {}
    for name in ("red", "blue"):
        (output,) = llm.generate([_request(prompt, str(videos[name]), {})], _greedy(logprobs=5))
        vllm_logprobs[name] = {token: entry.logprob for token, entry in output.outputs[0].logprobs[0].items()}
    hf_logprobs = {name: reference.first_logprobs(videos[name]) for name in ("red", "blue")}
    assert (hf_logprobs["red"] - hf_logprobs["blue"]).abs().max() > 1e-3
    assert vllm_logprobs["red"] != vllm_logprobs["blue"]
    for name, logprobs in vllm_logprobs.items():
        tokens = list(logprobs)
        assert np.allclose([logprobs[t] for t in tokens], hf_logprobs[name][tokens].numpy(), atol=1e-4), name


def test_unknown_processor_kwarg_is_refused(llm, prompt, videos):
    with pytest.raises(ValueError, match=r"does not take mm_processor_kwargs \['frames'\]"):
        llm.generate([_request(prompt, str(videos["red"]), {"frames": 8})], _greedy())


def test_missing_video_file_is_refused(llm, prompt, tmp_path):
    with pytest.raises(ValueError, match="No video file at"):
        llm.generate([_request(prompt, str(tmp_path / "missing.mp4"), {})], _greedy())


def test_frame_count_not_a_multiple_of_k_is_refused(llm, prompt, videos):
    with pytest.raises(ValueError, match="not a multiple of the model's temporal pool size 4"):
        llm.generate([_request(prompt, str(videos["red"]), {"num_frames": 10})], _greedy())


def test_an_image_matches_transformers(llm, reference):
    processor, image = reference.processor, square_video(*VIDEOS["green"])[0]
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which colour is it?"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    (output,) = llm.generate([{"prompt": prompt, "multi_modal_data": {"image": image}}], _greedy())
    inputs = processor(text=prompt, images=[image], return_tensors="pt")
    with torch.no_grad():
        expected = reference.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert output.prompt_token_ids == inputs["input_ids"][0].tolist()
    assert list(output.outputs[0].token_ids) == expected[0, inputs["input_ids"].shape[1] :].tolist()
