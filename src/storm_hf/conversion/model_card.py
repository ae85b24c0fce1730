"""The README.md model card of an exported STORM folder: Hub metadata, what the model is, and usage that runs."""

from pathlib import Path

from ..modeling.token_reduction import num_temporal_slots, reduced_grid_side

_USAGE = '''
## Use with transformers

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model_id = "{model_id}"
model = AutoModelForImageTextToText.from_pretrained(model_id, trust_remote_code=True, dtype="auto")
processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)

messages = [
    {{
        "role": "user",
        "content": [
            {{"type": "video", "path": "video.mp4"}},
            {{"type": "text", "text": "What happens in this video?"}},
        ],
    }}
]
inputs = processor.apply_chat_template(
    messages,
    add_generation_prompt=True,
    tokenize=True,
    return_dict=True,
    return_tensors="pt",
    processor_kwargs={{"num_frames": {frames}}},
).to(model.device)
output = model.generate(**inputs, max_new_tokens=32)
print(processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
```

## Use with a pipeline

```python
from transformers import pipeline

pipe = pipeline("video-text-to-text", model="{model_id}", trust_remote_code=True)
print(pipe(text="What happens in this video?", videos="video.mp4", num_frames={frames}, max_new_tokens=32))

messages = [
    {{
        "role": "user",
        "content": [
            {{"type": "video", "path": "video.mp4"}},
            {{"type": "text", "text": "What happens in this video?"}},
        ],
    }}
]
print(pipe(text=messages, num_frames={frames}, max_new_tokens=32))
```

## Choosing frames, fps and the test-time sampling stride

Frames are sampled uniformly (`num_frames`, a multiple of {k}) or by rate (`fps`, with `max_frames` /
`min_frames` caps). `temporal_sampling_stride=s` keeps every s-th pooled slot: s=2 halves the video tokens without
retraining, because the temporal encoder has already mixed each slot's neighbours into it.

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{model_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{model_id}", trust_remote_code=True)
messages = [
    {{
        "role": "user",
        "content": [{{"type": "video", "path": "video.mp4"}}, {{"type": "text", "text": "What happens in this video?"}}],
    }}
]
for settings in ({{"num_frames": {frames}}}, {{"fps": 2, "max_frames": {max_frames}}}, {{"num_frames": {frames}, "temporal_sampling_stride": 2}}):
    inputs = processor.apply_chat_template(  # a copy: apply_chat_template adds its own keys to the dict it gets
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs=dict(settings)
    )
    video_tokens = int((inputs["input_ids"] == model.config.video_token_id).sum())
    output = model.generate(**inputs, max_new_tokens=16)
    answer = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    print(settings, video_tokens, "video tokens:", answer)
```

## Fine-tune with LoRA

```python
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{model_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{model_id}", trust_remote_code=True)
lora = LoraConfig(
    r=16,
    lora_alpha=32,
    # scoped by module path: the LLM's attention and the temporal encoder's Mamba projections, not the vision tower
    # (nor dt_proj: the Mamba scan reads its weight directly, so an adapter there would never run)
    target_modules=r".*language_model.*\\.(q_proj|k_proj|v_proj|o_proj)|.*temporal_encoder.*\\.(in_proj|x_proj|x_proj_b|out_proj)",
)
model = get_peft_model(model, lora)
model.print_trainable_parameters()

messages = [
    {{
        "role": "user",
        "content": [{{"type": "video", "path": "video.mp4"}}, {{"type": "text", "text": "What happens in this video?"}}],
    }},
    {{"role": "assistant", "content": [{{"type": "text", "text": "A square moves to the right."}}]}},
]
batch = processor.apply_chat_template(
    messages, tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={{"num_frames": {frames}}}
)
labels = batch["input_ids"].clone()
labels[labels == model.config.video_token_id] = -100
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
loss = model(**batch, labels=labels).loss
loss.backward()
optimizer.step()
print(f"loss {{loss.item():.3f}}")
model.save_pretrained("storm-lora-adapter")
```
'''


_INSTALL_NOTE = {
    True: "`pip install storm-hf` registers the classes so `trust_remote_code` is not needed;",
    False: (
        "This folder holds no model code: it loads where storm-hf is installed (`pip install storm-hf`; "
        "`import storm_hf` registers the classes), and `storm-hf export` writes a Hub folder with the code."
    ),
}


def _token_table(config, processor_frames: list[int]) -> str:
    temporal = config.temporal_config
    side = reduced_grid_side(config.vision_grid_size, temporal.downsample, temporal.spatial_pool_size)
    rows = ["| frames | s=1 | s=2 | s=4 |", "|---|---|---|---|"]
    for frames in processor_frames:
        counts = [num_temporal_slots(frames, temporal.temporal_pool_size, s) * (side * side + 1) for s in (1, 2, 4)]
        rows.append(f"| {frames} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    return "\n".join(rows)


def _for_the_installed_package(usage: str) -> str:
    """The usage blocks for a folder without code: `import storm_hf` registers the classes instead of remote code."""
    usage = usage.replace(", trust_remote_code=True", "")
    return usage.replace("```python\n", "```python\nimport storm_hf  # registers STORM with transformers' Auto classes\n")


def write_model_card(
    path: Path, config, processor, *, model_id: str, license: str, base_models: list[str], include_code: bool = True
) -> None:
    """Write the card; `include_code=False` describes a folder that loads only where storm-hf is installed."""
    temporal, vision, text = config.temporal_config, config.vision_config, config.text_config
    k = temporal.temporal_pool_size
    frames = 8 * k
    metadata = [
        "---",
        f"license: {license}",
        "library_name: transformers",
        "pipeline_tag: video-text-to-text",
        "tags:",
        *(f"- {tag}" for tag in ("storm", "video-llm", "mamba", "video-text-to-text")),
        *(["- custom_code"] if include_code else []),
    ]
    if base_models:
        metadata += ["base_model:", *(f"- {name}" for name in base_models)]
    metadata.append("---")
    direction = "bidirectional" if temporal.bidirectional else "unidirectional (streamable)"
    body = f"""
# {model_id.split("/")[-1]}

A STORM video LLM (arXiv 2503.04130) for Hugging Face Transformers: a {vision.model_type} vision tower
({vision.image_size} px, patch {vision.patch_size}), a {direction} Mamba temporal encoder with
{temporal.num_layers} layers, and a {text.model_type} language model ({text.hidden_size} wide,
{text.num_hidden_layers} layers). The temporal encoder mixes information across the whole clip, then averages
every {k} frames into one slot (spatial pooling {temporal.spatial_pool_size}x{temporal.spatial_pool_size}), so
most video tokens never reach the LLM.

Video tokens reaching the LLM (each slot ends with one separator token), by test-time sampling stride `s`:

{_token_table(config, [8 * k, 16 * k, 32 * k])}

Built with storm-hf. {_INSTALL_NOTE[include_code]} `pip install storm-hf[cuda]` adds the Mamba CUDA kernels.
"""
    usage = _USAGE.format(model_id=model_id, frames=frames, max_frames=16 * k, k=k)
    if not include_code:
        usage = _for_the_installed_package(usage)
    path.write_text("\n".join(metadata) + "\n" + body + usage)
