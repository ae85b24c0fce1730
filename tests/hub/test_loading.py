"""Both loading routes: remote code in a process where storm_hf cannot be imported, and the installed package."""

import json

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
    pipeline,
)

from hub_testing import QUESTION

FRAMES = 8


def messages(video_file):
    return [{"role": "user", "content": [{"type": "video", "path": str(video_file)}, {"type": "text", "text": QUESTION}]}]


def greedy_tokens(model, processor, video_file) -> list[int]:
    inputs = processor.apply_chat_template(
        messages(video_file),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"num_frames": FRAMES},
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


REMOTE_SCRIPT = """
import json, sys
import torch
from transformers import (AutoConfig, AutoModel, AutoModelForImageTextToText, AutoModelForMultimodalLM,
                          AutoProcessor, AutoVideoProcessor)

folder, video = sys.argv[1], sys.argv[2]
loaded = {
    "config": AutoConfig.from_pretrained(folder, trust_remote_code=True),
    "base": AutoModel.from_pretrained(folder, trust_remote_code=True),
    "base_model": AutoModel.from_pretrained(folder, trust_remote_code=True).model,
    "multimodal": AutoModelForMultimodalLM.from_pretrained(folder, trust_remote_code=True),
    "video_processor": AutoVideoProcessor.from_pretrained(folder, trust_remote_code=True),
    "processor": AutoProcessor.from_pretrained(folder, trust_remote_code=True),
    "model": AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval(),
}
model, processor = loaded["model"], loaded["processor"]
messages = [{"role": "user", "content": [{"type": "video", "path": video}, {"type": "text", "text": %(question)r}]}]
inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                       return_tensors="pt", processor_kwargs={"num_frames": %(frames)d})
with torch.no_grad():
    tokens = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
bf16 = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.bfloat16)
auto = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, device_map="auto")
print(json.dumps({
    "classes": {name: type(obj).__name__ for name, obj in loaded.items()},
    "auto_model_tokens": loaded["base"].generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)[
        0, inputs["input_ids"].shape[1]:].tolist(),
    "modules": sorted({type(obj).__module__.split(".")[0] for obj in loaded.values()}),
    "tokens": tokens[0, inputs["input_ids"].shape[1]:].tolist(),
    "bf16": str(next(bf16.parameters()).dtype),
    "device_map": str(next(auto.parameters()).device),
    "storm_hf_loaded": any(name.split(".")[0] == "storm_hf" for name in sys.modules),
}))
""" % {"question": QUESTION, "frames": FRAMES}


def test_remote_code_loads_every_auto_class_and_generates_the_same_tokens(
    hub_folder, video_file, tiny_model_and_processor, python_without_storm_hf
):
    result = python_without_storm_hf(REMOTE_SCRIPT, hub_folder, video_file)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["classes"] == {
        "config": "StormConfig",
        "base": "StormForConditionalGeneration",
        "base_model": "StormModel",
        "multimodal": "StormForConditionalGeneration",
        "video_processor": "StormVideoProcessor",
        "processor": "StormProcessor",
        "model": "StormForConditionalGeneration",
    }
    assert outcome["modules"] == ["transformers_modules"] and outcome["storm_hf_loaded"] is False
    assert outcome["tokens"] == greedy_tokens(*tiny_model_and_processor, video_file)
    assert outcome["auto_model_tokens"] == outcome["tokens"]  # AutoModel gives the model that generates
    assert outcome["bf16"] == "torch.bfloat16" and outcome["device_map"] == "cpu"


def test_installed_package_loads_without_trust_remote_code(hub_folder, video_file, tiny_model_and_processor):
    loaded = [
        AutoConfig.from_pretrained(hub_folder),
        AutoModel.from_pretrained(hub_folder),
        AutoModelForMultimodalLM.from_pretrained(hub_folder),
        AutoVideoProcessor.from_pretrained(hub_folder),
    ]
    model = AutoModelForImageTextToText.from_pretrained(hub_folder).eval()
    processor = AutoProcessor.from_pretrained(hub_folder)
    for obj in loaded + [model, processor]:
        assert type(obj).__module__.startswith("storm_hf."), type(obj)
    expected = greedy_tokens(*tiny_model_and_processor, video_file)
    assert greedy_tokens(model, processor, video_file) == expected
    # AutoModel gives the model that generates (as remote-code VLMs on the Hub do); the base model is its `.model`
    assert type(loaded[1]).__name__ == "StormForConditionalGeneration"
    assert type(loaded[1].model).__name__ == "StormModel"
    assert greedy_tokens(loaded[1], processor, video_file) == expected


def test_installed_package_serves_the_pipeline_task(hub_folder, video_file):
    pipe = pipeline("video-text-to-text", model=str(hub_folder))
    assert type(pipe).__module__ == "storm_hf.processors.pipeline_storm"
    [result] = pipe(text=QUESTION, videos=str(video_file), num_frames=FRAMES, max_new_tokens=3)
    assert isinstance(result["generated_text"], str)


def test_a_folder_loaded_with_the_installed_package_and_saved_again_still_serves_remote_code(
    hub_folder, video_file, tmp_path, python_without_storm_hf
):
    """Fine-tune-and-save in place: the saved config keeps the pipeline entry that people without storm-hf need."""
    import shutil

    copy = shutil.copytree(hub_folder, tmp_path / "copy")
    AutoModelForImageTextToText.from_pretrained(copy).save_pretrained(copy)
    saved, exported = (json.loads((folder / "config.json").read_text()) for folder in (copy, hub_folder))
    assert saved["custom_pipelines"] == exported["custom_pipelines"]
    assert saved["auto_map"] == exported["auto_map"]
    script = """
import sys
from transformers import pipeline
pipe = pipeline("video-text-to-text", model=sys.argv[1], trust_remote_code=True)
print(type(pipe).__module__.split(".")[0], pipe(text=%r, videos=sys.argv[2], num_frames=8, max_new_tokens=2)[0]["generated_text"] != None)
""" % QUESTION
    result = python_without_storm_hf(script, copy, video_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["transformers_modules", "True"]


def test_the_processor_and_the_pipeline_print_no_deprecation_warning(hub_folder, video_file, caplog):
    import logging
    import warnings

    import transformers

    transformers.logging.enable_propagation()
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            pipe = pipeline("video-text-to-text", model=str(hub_folder))
            pipe(text=QUESTION, videos=str(video_file), num_frames=FRAMES, max_new_tokens=2)
            greedy_tokens(pipe.model, pipe.processor, video_file)
    finally:
        transformers.logging.disable_propagation()
    messages = [str(w.message) for w in caught] + [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "deprecat" in m.lower()], messages
