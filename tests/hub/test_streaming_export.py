"""An exported folder streams with its own code: a session where storm_hf cannot be imported answers as the package."""

import json

import pytest
import torch
from hub_testing import CORPUS, QUESTION, moving_square

from storm_hf import StormForConditionalGeneration, StormProcessor, StormVideoProcessor
from storm_hf.conversion.hub_export import export_hub_folder
from storm_hf.data.video_writer import write_video
from storm_hf.tokenization import build_tokenizer

ANSWER = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}

REMOTE_SCRIPT = """
import json, sys
from transformers import AutoModelForImageTextToText, AutoProcessor

folder, video = sys.argv[1], sys.argv[2]
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
session = model.start_stream(processor, temporal_sampling_stride=2, max_video_tokens=8)
added = session.add_frames(video)
answer = session.answer_ids(%(question)r, **%(answer)r)
print(json.dumps({
    "added": added,
    "session": type(session).__module__.split(".")[0],
    "tokens": answer[0].tolist(),
    "storm_hf_loaded": any(name.split(".")[0] == "storm_hf" for name in sys.modules),
}))
""" % {"question": QUESTION, "answer": ANSWER}


@pytest.fixture(scope="module")
def streaming_folder(tiny_config, tmp_path_factory):
    tokenizer = build_tokenizer(CORPUS, vocab_size=300)
    processor = StormProcessor(
        StormVideoProcessor(size={"height": 32, "width": 32}, patch_size=8, temporal_pool_size=4), tokenizer
    )
    config = tiny_config(
        text={"vocab_size": len(tokenizer)},
        temporal_config={"bidirectional": False, "temporal_sampling_slot": "last"},
    )
    config.video_token_id, config.image_token_id = processor.video_token_id, processor.image_token_id
    torch.manual_seed(0)
    model = StormForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder = export_hub_folder(model, processor, tmp_path_factory.mktemp("hub") / "tiny-storm-stream")
    return folder, model, processor


def test_an_exported_folder_streams_without_storm_hf(streaming_folder, tmp_path, python_without_storm_hf):
    folder, model, processor = streaming_folder
    video = write_video(tmp_path / "clip.ts", moving_square(30), fps=8)
    result = python_without_storm_hf(REMOTE_SCRIPT, folder, video)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["session"] == "transformers_modules" and not outcome["storm_hf_loaded"]
    session = model.start_stream(processor, temporal_sampling_stride=2, max_video_tokens=8)
    assert outcome["added"] == session.add_frames(video) == 30
    assert outcome["tokens"] == session.answer_ids(QUESTION, **ANSWER)[0].tolist()
