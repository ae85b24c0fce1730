"""Deliberate bugs the fast test suite must catch, each a realistic mistake in what reaches the model.

A mutant is a list of edits: in `path`, the snippet `old` (which must occur exactly once, so that a refactor breaks
the mutant loudly instead of leaving it silently inert) is replaced by `new`. `first` names the test files or folders
most likely to catch it; they run first, then the rest of the fast suite (the order changes the time, not the
verdict).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str
    edits: tuple[Edit, ...]
    first: tuple[str, ...]


MODELING = "src/storm_hf/modeling/modeling_storm.py"
MIXER = "src/storm_hf/modeling/mamba_mixer.py"
REDUCTION = "src/storm_hf/modeling/token_reduction.py"
DECODING = "src/storm_hf/processors/video_decoding.py"
VIDEO_PROCESSOR = "src/storm_hf/processors/video_processing_storm.py"
PROCESSOR = "src/storm_hf/processors/processing_storm.py"

MUTANTS = (
    Mutant(
        "generate-drops-video",
        "generate drops pixel_values_videos before the first step: the prompt's video placeholders stay text",
        (
            Edit(
                MODELING,
                "    def get_output_embeddings(self) -> nn.Module:\n",
                "    def prepare_inputs_for_generation(self, *args, **kwargs):\n"
                "        inputs = super().prepare_inputs_for_generation(*args, **kwargs)\n"
                '        inputs.pop("pixel_values_videos", None)\n'
                "        return inputs\n\n"
                "    def get_output_embeddings(self) -> nn.Module:\n",
            ),
        ),
        ("tests/modeling/test_generation.py",),
    ),
    Mutant(
        "decoder-bgr",
        "the video decoder returns BGR frames instead of RGB",
        (Edit(DECODING, 'frame.to_ndarray(format="rgb24"', 'frame.to_ndarray(format="bgr24"'),),
        ("tests/processors", "tests/training/test_data.py"),
    ),
    Mutant(
        "backward-branch-forward-dt-proj",
        "the backward branch of the bidirectional mixer uses the forward branch's dt_proj weight",
        (
            Edit(
                MIXER,
                'zip(self._branch_modules("x_proj{}"), self._stacked("dt_proj{}.weight"))',
                'zip(self._branch_modules("x_proj{}"), [self.dt_proj.weight] * len(self._branch_suffixes()))',
            ),
        ),
        ("tests/modeling/test_mixer_reference.py", "tests/modeling/test_temporal_encoder.py"),
    ),
    Mutant(
        "frame-indices-off-by-one",
        "uniform sampling takes the frame after the middle frame of each segment",
        (
            Edit(
                VIDEO_PROCESSOR,
                "indices = (2 * np.arange(count) + 1) * total // (2 * count)",
                "indices = np.minimum((2 * np.arange(count) + 1) * total // (2 * count) + 1, total - 1)",
            ),
        ),
        ("tests/processors/test_video_processing_storm.py",),
    ),
    Mutant(
        "sampling-wrong-slots",
        "test-time sampling keeps slots s-1, 2s-1, ... instead of 0, s, 2s, ...",
        (Edit(REDUCTION, "return x[:, ::stride].mean(dim=2)", "return x[:, stride - 1 :: stride].mean(dim=2)"),),
        ("tests/modeling/test_temporal_encoder.py",),
    ),
    Mutant(
        "temporal-pooling-wrong-axis",
        "temporal pooling averages frames T/k apart instead of k consecutive frames",
        (
            Edit(
                REDUCTION,
                "x = x.view(batch, frames // pool_size, pool_size, height, width, dim)",
                "x = x.view(batch, pool_size, frames // pool_size, height, width, dim).transpose(1, 2)",
            ),
        ),
        ("tests/modeling/test_temporal_encoder.py",),
    ),
    Mutant(
        "space-to-channel-order",
        "space-to-channel orders a cell's channels (column offset, row offset) instead of (row, column)",
        (Edit(REDUCTION, "x = x.permute(0, 1, 2, 4, 3, 5, 6)", "x = x.permute(0, 1, 2, 4, 5, 3, 6)"),),
        ("tests/modeling/test_temporal_encoder.py",),
    ),
    Mutant(
        "stride-not-reaching-model",
        "the processor counts tokens with the caller's sampling stride but does not pass it on to the model",
        (Edit(PROCESSOR, '            processed["temporal_sampling_stride"] = int(stride)\n', "            pass\n"),),
        ("tests/processors/test_model_agreement.py", "tests/processors/test_processing_storm.py"),
    ),
    Mutant(
        "placeholder-expansion-off-by-one",
        "each video placeholder expands to one video token too many",
        (
            Edit(
                PROCESSOR,
                "return (self.video_token * self.video_processor.tokens_per_frame + self.frame_separator) * slots\n",
                "return (self.video_token * self.video_processor.tokens_per_frame + self.frame_separator) * slots"
                " + self.video_token\n",
            ),
        ),
        ("tests/processors/test_processing_storm.py", "tests/processors/test_model_agreement.py"),
    ),
    Mutant(
        "padding-leaks-into-scan",
        "a mixed-length batch is scanned with its zero-padded frames, then each video keeps its own slots' tokens",
        (
            Edit(
                MODELING,
                "if all(count == max_frames for count in counts):  # no padding: a view of the pixels, not a copy",
                "if True:  # no padding: a view of the pixels, not a copy",
            ),
            Edit(
                MODELING,
                "frames, counts, [temporal_sampling_stride] * num_videos, temporal_sampling_slot\n        )\n",
                "frames, [max_frames] * num_videos, [temporal_sampling_stride] * num_videos, temporal_sampling_slot\n"
                "        )\n"
                "        grids = [self.temporal_encoder.output_grid(c, self.config.vision_grid_size, temporal_sampling_stride)"
                " for c in counts]\n"
                "        tokens = [t[: slots * side * side] for t, (slots, side) in zip(tokens, grids)]\n",
            ),
        ),
        ("tests/modeling/test_modeling.py",),
    ),
    Mutant(
        "lora-regex-hits-vision-tower",
        "the default LoRA target regex is not scoped to the language model, so it also wraps the vision tower",
        (
            Edit(
                "src/storm_hf/training/stages.py",
                "rf\".*{LANGUAGE}\\..*\\.({'|'.join(LANGUAGE_LORA_MODULES)})\",",
                "rf\".*\\.({'|'.join(LANGUAGE_LORA_MODULES)})\",",
            ),
        ),
        ("tests/training/test_stages.py",),
    ),
    Mutant(
        "model-card-lora-dt-proj",
        "the model card's LoRA example targets dt_proj (an adapter the scan never runs) instead of x_proj_b",
        (
            Edit(
                "src/storm_hf/conversion/model_card.py",
                "(in_proj|x_proj|x_proj_b|out_proj)",
                "(in_proj|x_proj|dt_proj|out_proj)",
            ),
        ),
        ("tests/hub/test_model_card.py",),
    ),
    Mutant(
        "converted-tensor-transposed",
        "the converter copies square weight matrices transposed (their shape still fits)",
        (
            Edit(
                "src/storm_hf/conversion/convert.py",
                "targets[target].copy_(checkpoint.tensors[part].read(key))",
                "source = checkpoint.tensors[part].read(key)\n"
                "            targets[target].copy_(source.mT if source.dim() == 2 and source.shape[0] == source.shape[1]"
                " else source)",
            ),
        ),
        ("tests/conversion/test_convert.py",),
    ),
)
