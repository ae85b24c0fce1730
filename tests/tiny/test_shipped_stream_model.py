"""The unidirectional tiny STORM shipped for streaming (`storm-hf train-tiny --unidirectional --ship`): a complete,
pickle-free folder within the size budget, the unidirectional recipe, and streamed answers identical to the offline
model's on fresh test videos. Skipped until the model is shipped."""

import json

import pytest

from storm_hf import StormForConditionalGeneration, StormProcessor
from shipped_testing import check_complete_and_pickle_free, fresh_sample

from storm_hf.tiny.evaluation import evaluate_rows
from storm_hf.tiny.recipe import MAX_NEW_TOKENS, NUM_FRAMES, SHIPPED_STREAM_MODEL_DIR

pytestmark = pytest.mark.skipif(
    not (SHIPPED_STREAM_MODEL_DIR / "config.json").is_file(),
    reason="the streaming model is not shipped yet: storm-hf train-tiny --unidirectional --out RUN --ship",
)


@pytest.fixture(scope="module")
def loaded():
    model = StormForConditionalGeneration.from_pretrained(SHIPPED_STREAM_MODEL_DIR).eval()
    return model, StormProcessor.from_pretrained(SHIPPED_STREAM_MODEL_DIR)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return fresh_sample(tmp_path_factory, 24)


def test_shipped_stream_folder_is_complete_pickle_free_and_within_budget():
    check_complete_and_pickle_free(SHIPPED_STREAM_MODEL_DIR)


def test_shipped_stream_config_is_the_unidirectional_recipe():
    temporal = json.loads((SHIPPED_STREAM_MODEL_DIR / "config.json").read_text())["temporal_config"]
    assert (temporal["bidirectional"], temporal["temporal_sampling_slot"]) == (False, "last")
    assert (temporal["num_layers"], temporal["temporal_pool_size"]) == (2, 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_streamed_answers_equal_the_offline_answers(loaded, sample, stride):
    model, processor = loaded
    offline = evaluate_rows(model, processor, sample, num_frames=NUM_FRAMES, stride=stride)
    streamed = []
    for row in sample:
        session = model.start_stream(processor, temporal_sampling_stride=stride)
        session.add_frames(row["video"])
        question = row["messages"][0]["content"][1]["text"]
        streamed.append(session.ask(question, max_new_tokens=MAX_NEW_TOKENS, do_sample=False).strip().lower())
    assert streamed == offline
