"""Shipping the tiny STORM into the package (`storm_hf/assets/storm-tiny`), with a model card that says what it is.

The card's evaluation table is read from the results `storm-hf evaluate-tiny` wrote (never typed in), and only when
those results were measured on the weights being shipped (or on weights that can no longer be compared).
"""

import json
from pathlib import Path

from ..conversion.model_card import CardInfo
from ..data.questions import QUESTION_TYPES
from ..processors.processing_storm import CHAT_TEMPLATE
from .recipe import CURRICULUM, FRAME_SIZE, NUM_FRAMES, SHIPPED_MODEL_DIR
from .report import markdown_table

# Where `storm-hf evaluate-tiny` writes its results, in a checkout of the storm-hf source.
ACCURACY_JSON = SHIPPED_MODEL_DIR.parents[3] / "benchmarks" / "results" / "tiny-accuracy.json"


def _same_weights(first: Path, second: Path) -> bool:
    return (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def evaluation_section(accuracy_json, model_dir) -> str | None:
    """The card's evaluation, from `evaluate-tiny` results whose `storm` model is `model_dir`'s weights; None when
    there are no results. Results measured on other weights are refused."""
    if accuracy_json is None or not Path(accuracy_json).is_file():
        return None
    accuracy_json = Path(accuracy_json)
    report = json.loads(accuracy_json.read_text())
    measured = Path(report["models"]["storm"])
    if measured.is_dir() and not _same_weights(measured, Path(model_dir)):
        raise ValueError(
            f"{accuracy_json} was measured on {measured}, whose weights differ from {model_dir}: run "
            "`storm-hf evaluate-tiny` on the model to ship first."
        )
    return (
        f"Exact-match accuracy (%) on {report['test_size']} fresh test videos per frame count (the `test` split, "
        "never seen in training), by frame count and test-time sampling stride `s`, from `storm-hf evaluate-tiny` "
        f"(`{accuracy_json.name}`). `baseline` is the same model without Mamba blocks, trained the same way and not "
        "shipped: the gap at s = 2 is what the temporal encoder adds.\n\n" + markdown_table(report["accuracy"])
    )


def shipped_card(model, evaluation: str | None) -> CardInfo:
    parameters = model.num_parameters()
    question_types = ", ".join(f"`{name}`" for name in QUESTION_TYPES)
    scenes = sum(stage.samples for stage in CURRICULUM)
    return CardInfo(
        license="apache-2.0",  # trained by this project, from scratch, on data it renders itself
        language=["en"],
        about=(
            f"\n**This is a {parameters / 1e6:.2f} M-parameter model ({parameters:,} parameters) that only knows "
            f"{FRAME_SIZE} px synthetic scenes**: coloured shapes on a dark background, {NUM_FRAMES} frames of "
            f"{FRAME_SIZE}x{FRAME_SIZE}. It answers the four question types of storm-hf's synthetic temporal video "
            f"QA data ({question_types}) and nothing else. It ships inside storm-hf as the model `storm-hf demo` "
            "uses and as a test fixture; it is not a general video model.\n"
        ),
        limitations=(
            f"- Any video other than the synthetic {FRAME_SIZE} px scenes, and any question other than the four "
            "types as the data phrases them, gets a meaningless answer.\n"
            f"- Trained on videos of {NUM_FRAMES} frames; Evaluation shows how it does at other frame counts."
        ),
        training=(
            f"Trained from scratch by `storm-hf train-tiny` (the `sft` stage: every part trains) on {scenes:,} fresh "
            "scenes of the synthetic data's `train` split, each rendered once on the fly, in the curriculum of "
            "`storm_hf.tiny.recipe.CURRICULUM` (question rows mixed with \"Describe the video.\" rows that name what "
            "each video token shows). The tokenizer is a byte-level BPE trained on the task's texts. Recipe, "
            "training curves and what was tried: `docs/shipped-model.md` in the storm-hf source."
        ),
        evaluation=evaluation,
    )


def ship(model_dir, accuracy_json=ACCURACY_JSON, out_dir=SHIPPED_MODEL_DIR) -> Path:
    """Export the tiny model at `model_dir` into the package as the shipped model (no code copies: the package is
    the code), its card's evaluation from `accuracy_json` (None: no evaluation yet) when those results are for these
    weights. `model_dir` may be the shipped folder itself: its metadata files are then written anew. `out_dir`: where
    to write instead of the package."""
    from ..conversion.hub_export import export_hub_folder
    from ..modeling.modeling_storm import StormForConditionalGeneration
    from ..processors.processing_storm import StormProcessor

    model = StormForConditionalGeneration.from_pretrained(model_dir)
    processor = StormProcessor.from_pretrained(model_dir)
    processor.chat_template = CHAT_TEMPLATE  # the recipe's template (build_processor's default), as it is now
    card = shipped_card(model, evaluation_section(accuracy_json, model_dir))
    return export_hub_folder(
        model, processor, out_dir, overwrite=True, include_code=False, model_id="storm-tiny", card=card
    )
