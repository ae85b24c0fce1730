"""The README.md model card of an exported STORM folder: Hub metadata (`huggingface_hub.ModelCardData`), what the
model is, usage that runs, intended use and limitations, training, evaluation and citation.

What the config cannot tell (license, base models, datasets, languages, how the weights were trained and scored)
comes from the caller as `CardInfo`; nothing is guessed: an unknown license or training is stated as unknown.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..modeling.token_reduction import num_temporal_slots, reduced_grid_side

PAPER_URL = "https://arxiv.org/abs/2503.04130"
CITATION = """@article{jiang2025storm,
  title   = {{STORM}: Token-Efficient Long Video Understanding for Multimodal {LLMs}},
  author  = {Jiang, Jindong and Li, Xiuyu and Liu, Zhijian and Li, Muyang and Chen, Guo and Li, Zhiqi and
             Huang, De-An and Liu, Guilin and Yu, Zhiding and Keutzer, Kurt and Ahn, Sungjin and Kautz, Jan and
             Yin, Hongxu and Lu, Yao and Han, Song and Byeon, Wonmin},
  journal = {arXiv preprint arXiv:2503.04130},
  year    = {2025}
}"""
# storm-hf is not published on the package index: it installs from a checkout of its source.
INSTALL = """```bash
pip install -e .            # in a checkout of the storm-hf source (storm-hf is not on PyPI)
pip install -e ".[cuda]"    # + the Mamba CUDA kernels (mamba-ssm, causal-conv1d), built on a CUDA machine
```"""
TAGS = ["storm", "video-llm", "mamba", "video-text-to-text"]


@dataclass
class CardInfo:
    """What a model card says beyond the model's config.

    `license`: a Hub license id (`apache-2.0`, `mit`, `other`, ...), None when not known (the card says so).
    `base_models`, `datasets`: Hub ids. `language`: ISO codes. `about`, `limitations`, `training`, `evaluation`:
    Markdown for the card's sections (None: the section says that nothing was recorded).
    """

    license: str | None = None
    base_models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=list)
    about: str | None = None
    limitations: str | None = None
    training: str | None = None
    evaluation: str | None = None

    @classmethod
    def read(cls, folder) -> "CardInfo":
        """The metadata of the card in a local folder (an empty `CardInfo` when there is none)."""
        readme = Path(folder) / "README.md" if folder else None
        if readme is None or not readme.is_file():
            return cls()
        data = ModelCard.load(readme).data
        as_list = lambda value: [value] if isinstance(value, str) else list(value or [])  # noqa: E731
        return cls(
            license=data.license,
            base_models=as_list(data.base_model),
            datasets=as_list(data.datasets),
            language=as_list(data.language),
        )

    def derived(self, source: str | None, training: str) -> "CardInfo":
        """The card of a model made from `source` (whose card this is): same license and languages, `source` as
        the base model when it is a Hub id, and the new `training`."""
        base = [source] if source and not Path(source).exists() else []
        return replace(self, base_models=base, training=training, evaluation=None, about=None, limitations=None)


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

`video-text-to-text` takes what transformers' `image-text-to-text` takes (chats, lists and datasets of chats,
`batch_size`, `return_full_text`, `continue_final_message`, ...) with videos as well as images.

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
print(pipe(messages, num_frames={frames}, max_new_tokens=32, return_full_text=False))
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

The loss covers the assistant's answer only: the chat template marks its tokens (`return_assistant_tokens_mask`),
as `storm-hf train` does.

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
    messages,
    tokenize=True,
    return_dict=True,
    return_tensors="pt",
    return_assistant_tokens_mask=True,
    processor_kwargs={{"num_frames": {frames}}},
)
answer = torch.as_tensor(batch.pop("assistant_masks")).bool()
labels = batch["input_ids"].masked_fill(~answer, -100)  # no loss on the prompt, the video or the padding
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
loss = model(**batch, labels=labels).loss
loss.backward()
optimizer.step()
print(f"loss {{loss.item():.3f}} on {{int(answer.sum())}} answer tokens")
model.save_pretrained("storm-lora-adapter")
```
'''

_ROUTE = {
    True: (
        "This folder carries its model code: `trust_remote_code=True` is all it takes, nothing to install beyond "
        "transformers (with torchvision and PyAV for videos). Where storm-hf is installed, `import storm_hf` "
        "registers the classes and `trust_remote_code` is not needed."
    ),
    False: (
        "This folder holds no model code: it loads where storm-hf is installed (`import storm_hf` registers the "
        "classes; see Install below); `storm-hf export` writes a Hub folder that carries the code, which loads as "
        "transformers' remote code with nothing to install."
    ),
}
_INSTALL_INTRO = {
    True: "## Install storm-hf (optional)\n\nThe `storm-hf` package adds the command line",
    False: "## Install storm-hf\n\nThis folder needs the `storm-hf` package, which also brings the command line",
}
_INTENDED_USE = (
    "Answering questions about videos and describing them, and measuring what STORM's token reduction (temporal "
    "pooling k, spatial pooling, test-time sampling s) trades between speed and accuracy, with transformers' "
    "generation, pipelines and PEFT."
)
_LIMITATIONS = (
    "- The model knows what its weights were trained on (see Training) and nothing else; its answers are not "
    "checked facts.\n"
    "- Temporal pooling k is fixed by training; the sampling stride s can change at test time, at some cost in "
    "accuracy.\n"
    "- The bidirectional temporal encoder needs the whole clip: it cannot stream.\n"
    "- Without the Mamba CUDA kernels the temporal encoder runs a pure-PyTorch scan (slower, same results).\n"
    "- No safety evaluation was done: do not use it for decisions about people."
)


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
    registration = "import storm_hf  # registers STORM with transformers' Auto classes\n"
    return usage.replace("```python\n", "```python\n" + registration)


def card_metadata(info: CardInfo, include_code: bool) -> ModelCardData:
    return ModelCardData(
        license=info.license,
        library_name="transformers",
        pipeline_tag="video-text-to-text",
        tags=TAGS + (["custom_code"] if include_code else []),
        base_model=info.base_models or None,
        datasets=info.datasets or None,
        language=info.language or None,
    )


def write_model_card(
    path: Path, config, processor, *, model_id: str, info: CardInfo, include_code: bool = True
) -> None:
    """Write the card; `include_code=False` describes a folder that loads only where storm-hf is installed."""
    temporal, vision, text = config.temporal_config, config.vision_config, config.text_config
    k = temporal.temporal_pool_size
    direction = "bidirectional" if temporal.bidirectional else "unidirectional (streamable)"
    license_line = (
        f"License: `{info.license}`." if info.license else
        "License: **not stated** — whoever exported these weights did not say; find out before using them."
    )
    usage = _USAGE.format(model_id=model_id, frames=8 * k, max_frames=16 * k, k=k)
    if not include_code:
        usage = _for_the_installed_package(usage)
    body = f"""
# {model_id.split("/")[-1]}

A STORM video LLM ([arXiv 2503.04130]({PAPER_URL}), "STORM: Token-Efficient Long Video Understanding for
Multimodal LLMs") for Hugging Face Transformers: a {vision.model_type} vision tower ({vision.image_size} px, patch
{vision.patch_size}), a {direction} Mamba temporal encoder with {temporal.num_layers} layers, and a
{text.model_type} language model ({text.hidden_size} wide, {text.num_hidden_layers} layers). The temporal encoder
mixes information across the whole clip, then averages every {k} frames into one slot (spatial pooling
{temporal.spatial_pool_size}x{temporal.spatial_pool_size}), so most video tokens never reach the LLM.
{info.about or ""}
{_ROUTE[include_code]} {license_line}
{usage}
{_INSTALL_INTRO[include_code]} (`storm-hf demo`, `train`, `convert`, `export`, ...), the classes
without remote code, and training helpers:

{INSTALL}

## Video tokens

Video tokens reaching the LLM (each slot ends with one separator token), by test-time sampling stride `s`:

{_token_table(config, [8 * k, 16 * k, 32 * k])}

## Intended use and limitations

{_INTENDED_USE}

{info.limitations + chr(10) + chr(10) if info.limitations else ""}{_LIMITATIONS}

## Training data and procedure

{info.training or "Not recorded with this folder: see where its weights came from."}

## Evaluation

{info.evaluation or "No evaluation was recorded with this folder."}

## Citation

STORM is described in [{PAPER_URL}]({PAPER_URL}):

```bibtex
{CITATION}
```
"""
    card = ModelCard(f"---\n{card_metadata(info, include_code).to_yaml()}\n---\n{body}")
    card.save(path)
