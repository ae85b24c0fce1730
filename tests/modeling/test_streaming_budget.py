"""A stream under a budget of video tokens: the cache stops growing, the oldest slots go, positions stay consistent."""

import pytest
import torch
from streaming_testing import (
    ANSWER,
    QUESTION,
    build_model,
    build_processor,
    coloured_video,
    first_answer_logits,
    offline_inputs,
    stream_frames,
)

from storm_hf.benchmarking.stages import kv_cache_bytes

SLOT = 4 + 1  # video tokens per slot and the frame separator


@pytest.fixture(scope="module")
def processor():
    return build_processor()


def test_the_cache_stops_growing_at_the_budget(tiny_config, processor):
    model = build_model(tiny_config, processor)
    session = model.start_stream(processor, max_video_tokens=11)  # room for 2 slots of 4 tokens
    video = coloured_video(40, (230, 40, 40))
    sizes = {}
    for stop in (8, 12, 20, 40):
        session.add_frames(video[session.frames_seen : stop])
        sizes[stop] = (session.video_tokens, session.cache_length, kv_cache_bytes(session.kv_cache))
        session.ask(QUESTION, **ANSWER)
    prefix = len(session.prefix_ids)
    assert sizes[8][:2] == (8, prefix + 2 * SLOT)
    assert sizes[12] == sizes[20] == sizes[40] == sizes[8]
    assert session.slots_seen == 10


@pytest.mark.parametrize("stride, frames", [(1, 30), (2, 38)])
def test_with_a_one_layer_llm_the_budgeted_stream_equals_the_prompt_of_its_newest_slots(
    tiny_config, processor, stride, frames
):
    """With one attention layer a cached token's keys and values depend on its own embedding and position only, so
    dropping slots must leave exactly the offline prompt [prefix][newest slots][question], in relative positions."""
    model = build_model(tiny_config, processor, text={"num_hidden_layers": 1})
    video = coloured_video(frames, (40, 200, 90))
    budget = 3
    session = model.start_stream(processor, max_video_tokens=4 * budget, temporal_sampling_stride=stride)
    stream_frames(session, video, [3])
    streamed, streamed_logits = first_answer_logits(model, lambda: session.answer_ids(QUESTION, **ANSWER))

    inputs = offline_inputs(processor, video, stride=stride)
    with torch.no_grad():
        features = model.get_video_features(inputs["pixel_values_videos"], temporal_sampling_stride=stride)
    slots = features.pooler_output[0].view(-1, 4, features.pooler_output[0].shape[-1])  # (kept slots, 4, D)
    assert len(slots) > budget  # the budget was exceeded: slots were dropped
    ids = inputs["input_ids"][0].tolist()
    first, last = ids.index(processor.video_token_id), len(ids) - ids[::-1].index(processor.video_token_id)
    prompt = ids[:first] + ([processor.video_token_id] * 4 + [processor.frame_separator_id]) * budget + ids[last + 1 :]
    embeds = model.get_input_embeddings()(torch.tensor([prompt]))
    embeds[0, torch.tensor(prompt) == processor.video_token_id] = slots[-budget:].reshape(-1, slots.shape[-1])
    mask = torch.ones(1, len(prompt), dtype=torch.long)
    with torch.no_grad():
        offline, logits = first_answer_logits(
            model, lambda: model.generate(inputs_embeds=embeds, attention_mask=mask, **ANSWER)
        )
    torch.testing.assert_close(streamed_logits, logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(streamed, offline)
    assert session.video_tokens + 4 == 4 * budget  # the last slot is still pending: the question added it


def test_a_budgeted_stream_does_not_depend_on_arrival_or_on_questions(tiny_config, processor):
    model = build_model(tiny_config, processor)
    video = coloured_video(33, (200, 200, 40))
    quiet = model.start_stream(processor, max_video_tokens=8, temporal_sampling_stride=2)
    stream_frames(quiet, video, [7])
    busy = model.start_stream(processor, max_video_tokens=8, temporal_sampling_stride=2)
    for index in range(len(video)):
        busy.add_frames(video[index])
        if index % 5 == 4:
            busy.ask("Describe the video in detail.", **ANSWER)
    assert torch.equal(busy.answer_ids(QUESTION, **ANSWER), quiet.answer_ids(QUESTION, **ANSWER))
    assert busy.cache_length == quiet.cache_length
