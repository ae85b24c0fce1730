"""Shipping the tiny STORMs into the package (`storm_hf/assets/storm-tiny`, and the unidirectional one that streams,
`storm_hf/assets/storm-tiny-stream`), with a model card that says what each is.

The card's evaluation table is read from the results `storm-hf evaluate-tiny` wrote (never typed in), and only when
those results were measured on the weights being shipped (or on weights that can no longer be compared).
"""

import json
from pathlib import Path

from ..conversion.model_card import CardInfo
from ..data.questions import QUESTION_TYPES
from ..processors.processing_storm import CHAT_TEMPLATE
from .recipe import CURRICULUM, FRAME_SIZE, NUM_FRAMES, SHIPPED_MODEL_DIR, SHIPPED_STREAM_MODEL_DIR, TRAIN_CLIPS
from .report import markdown_table

# Where `storm-hf evaluate-tiny` writes its results, in a checkout of the storm-hf source: the bidirectional model
# (as `storm`, beside the `baseline`) and the unidirectional one (as `stream`).
ACCURACY_JSON = SHIPPED_MODEL_DIR.parents[3] / "benchmarks" / "results" / "tiny-accuracy.json"
STREAM_ACCURACY_JSON = ACCURACY_JSON.with_name("tiny-stream-accuracy.json")


def _streams(model) -> bool:
    return not model.config.temporal_config.bidirectional


def _same_weights(first: Path, second: Path) -> bool:
    return (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def evaluation_section(accuracy_json, model_dir, name: str = "storm") -> str | None:
    """The card's evaluation, from `evaluate-tiny` results whose model `name` is `model_dir`'s weights; None when
    there are no results. Results measured on other weights are refused."""
    if accuracy_json is None or not Path(accuracy_json).is_file():
        return None
    accuracy_json = Path(accuracy_json)
    report = json.loads(accuracy_json.read_text())
    measured = Path(report["models"][name])
    if measured.is_dir() and not _same_weights(measured, Path(model_dir)):
        raise ValueError(
            f"{accuracy_json} was measured on {measured}, whose weights differ from {model_dir}: run "
            "`storm-hf evaluate-tiny` on the model to ship first."
        )
    others = {
        "baseline": "`baseline` is the same model without Mamba blocks, trained the same way and not shipped: the gap "
        "at the same video tokens is what the temporal encoder adds.",
        "storm": "`storm` is the bidirectional model shipped beside it (`storm-tiny`): the gap is what streaming "
        "(forward-only Mamba blocks) costs.",
    }
    compared = " ".join(text for other, text in others.items() if other != name and other in report["models"])
    return (
        f"Exact-match accuracy (%) on {report['test_size']} fresh test videos per frame count (the `test` split, "
        "never seen in training), by frame count and test-time sampling stride `s`, from `storm-hf evaluate-tiny` "
        f"(`{accuracy_json.name}`). {compared}\n\n" + markdown_table(report["accuracy"])
    )


def shipped_card(model, evaluation: str | None) -> CardInfo:
    parameters = model.num_parameters()
    question_types = ", ".join(f"`{name}`" for name in QUESTION_TYPES)
    scenes = sum(stage.samples for stage in CURRICULUM)
    clip_lengths = ", ".join(str(frames) for frames in sorted({clip.frames for clip in TRAIN_CLIPS}))
    streams = _streams(model)
    command = "`storm-hf train-tiny --unidirectional`" if streams else "`storm-hf train-tiny`"
    docs = "`docs/streaming.md`" if streams else "`docs/shipped-model.md`"
    if streams:
        role = (
            "It ships inside storm-hf as the model `storm-hf demo --stream` plays a video into, frame by frame: its "
            "Mamba blocks run forward only, so it answers about a live stream at any moment "
            "(`model.start_stream(processor)`), and test-time sampling keeps the last slot of each group."
        )
    else:
        role = "It ships inside storm-hf as the model `storm-hf demo` uses and as a test fixture."
    return CardInfo(
        license="apache-2.0",  # trained by this project, from scratch, on data it renders itself
        language=["en"],
        about=(
            f"\n**This is a {parameters / 1e6:.2f} M-parameter model ({parameters:,} parameters) that only knows "
            f"{FRAME_SIZE} px synthetic scenes**: coloured shapes on a dark background, {FRAME_SIZE}x{FRAME_SIZE} "
            f"frames ({NUM_FRAMES} by default). It answers the four question types of storm-hf's synthetic temporal "
            f"video QA data ({question_types}) and nothing else. {role} It is not a general video model.\n"
        ),
        limitations=(
            f"- Any video other than the synthetic {FRAME_SIZE} px scenes, and any question other than the four "
            "types as the data phrases them, gets a meaningless answer.\n"
            f"- Trained on clips of {clip_lengths} frames, each at the sampling stride that gives the language model "
            "16 video tokens (and 16 frames also at 8); Evaluation shows how it does at other frame counts and strides."
        ),
        training=(
            f"Trained from scratch by {command} (the `sft` stage: every part trains) on {scenes:,} fresh "
            "scenes of the synthetic data's `train` split, each rendered once on the fly, in the curriculum of "
            "`storm_hf.tiny.recipe.CURRICULUM` (question rows mixed with \"Describe the video.\" rows that name what "
            "each video token shows), batches cycling through the clip settings of `storm_hf.tiny.recipe.TRAIN_CLIPS`. "
            "The tokenizer is a byte-level BPE trained on the task's texts. Recipe, training curves and what was "
            f"tried: {docs} in the storm-hf source."
        ),
        evaluation=evaluation,
    )


def evaluated_name(model_dir) -> str:
    """The name `storm-hf evaluate-tiny` results give the model at `model_dir`: `stream` for a unidirectional model,
    else `storm`."""
    temporal = json.loads((Path(model_dir) / "config.json").read_text())["temporal_config"]
    return "storm" if temporal.get("bidirectional", True) else "stream"


def default_accuracy_json(model_dir) -> Path:
    """Where `storm-hf evaluate-tiny` results for the model at `model_dir` go by default: `STREAM_ACCURACY_JSON` for
    a unidirectional model, else `ACCURACY_JSON`."""
    return ACCURACY_JSON if evaluated_name(model_dir) == "storm" else STREAM_ACCURACY_JSON


def ship(model_dir, accuracy_json, out_dir=None) -> Path:
    """Export the tiny model at `model_dir` into the package as the shipped model (no code copies: the package is
    the code): a bidirectional model to `storm-tiny`, a unidirectional one to `storm-tiny-stream`. Its card's
    evaluation comes from `accuracy_json` (None: no evaluation yet) when those results are for these weights. `model_dir` may be the shipped folder
    itself: its metadata files are then written anew. `out_dir`: where to write instead of the package."""
    from ..conversion.hub_export import export_hub_folder
    from ..modeling.modeling_storm import StormForConditionalGeneration
    from ..processors.processing_storm import StormProcessor

    model = StormForConditionalGeneration.from_pretrained(model_dir)
    processor = StormProcessor.from_pretrained(model_dir)
    processor.chat_template = CHAT_TEMPLATE  # the recipe's template (build_processor's default), as it is now
    shipped_dir = SHIPPED_STREAM_MODEL_DIR if _streams(model) else SHIPPED_MODEL_DIR
    card = shipped_card(model, evaluation_section(accuracy_json, model_dir, evaluated_name(model_dir)))
    return export_hub_folder(
        model, processor, out_dir or shipped_dir, overwrite=True, include_code=False, model_id=shipped_dir.name,
        card=card,
    )
