"""The tiny STORM's recipe: its tokenizer, processor and model, built from scratch.

32 px frames, 8 px patches (a 4x4 grid), 2x2 space-to-channel -> 4 tokens per temporal slot, k = 4; a 2-layer
SigLIP-style vision tower (64 wide), bidirectional Mamba blocks at the LLM width (0 blocks = the linear projector
only, the baseline; unidirectional blocks for the model that streams), a 2-layer Qwen2-style LLM (128 wide). The tokenizer is a byte-level BPE trained on every
question and answer of the synthetic data and the chat template's text.
"""

from pathlib import Path

from ..data.describe import DESCRIBE, description_texts
from ..data.questions import QUESTION_TYPES, answer_vocabulary, question_texts
from .scene_stream import Clip, Stage

# The shipped models, inside the package (written by `storm-hf train-tiny --out ... --ship`): the bidirectional one
# the demo asks, and the unidirectional one that streams (`--unidirectional`, `storm-hf demo --stream`).
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "storm-tiny"
SHIPPED_STREAM_MODEL_DIR = SHIPPED_MODEL_DIR.with_name("storm-tiny-stream")

FRAME_SIZE = 32
NUM_FRAMES = 16  # the demo's and the shipped-model test's default frame count
MAX_FRAMES = 128  # the most frames the processor samples by fps (or with neither fps nor num_frames)
TEMPORAL_POOL = 4
VOCAB_SIZE = 420  # every question word and every answer one token
MAX_NEW_TOKENS = 4  # an answer is one word and the end-of-turn token

VISION_CONFIG = {
    "model_type": "siglip_vision_model",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": FRAME_SIZE,
    "patch_size": 8,
    "vision_use_head": False,
}
TEXT_CONFIG = {
    "model_type": "qwen2",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
# Fresh scenes per training stage, in order (`storm-hf train-tiny --curriculum`): every question type from the start,
# mixed with "Describe the video." rows whose answer names what each video token holds (storm_hf.data.describe):
# half of the rows for 400 steps, a fifth after that. Each description word sits at a fixed distance from the token it
# describes, so the language model learns to read the video tokens within ~200 steps and the encoder has to keep
# colour, position and flashes of every slot (docs/shipped-model.md, "Fourth round").
CURRICULUM = (
    Stage((DESCRIBE,) * 4 + tuple(QUESTION_TYPES), 25_600),
    Stage((DESCRIBE,) + tuple(QUESTION_TYPES), 115_200),
)
# Clip settings (frames, test-time sampling stride) the training batches cycle through, one per batch: clips of 16, 32
# and 64 frames, each at the stride that gives the language model 16 video tokens, and at 16 frames also 8 tokens.
TRAIN_CLIPS = (Clip(16, 1), Clip(32, 2), Clip(16, 2), Clip(64, 4))
# Settings the validation split is scored at during training: the fixed 16-token budget at every training length,
# and 16 frames at s = 2.
VALIDATION_CLIPS = (Clip(16, 1), Clip(16, 2), Clip(32, 2), Clip(64, 4))
TEMPORAL_CONFIG = {"d_state": 8, "expand": 1, "temporal_pool_size": TEMPORAL_POOL, "bidirectional": True}
# The streamable variant: forward-only Mamba blocks, and test-time sampling keeping the last slot of each group (the
# one that has seen the others, and the one a stream has when the group completes).
UNIDIRECTIONAL = {"bidirectional": False, "temporal_sampling_slot": "last"}
# The chat template's own text (the default system turn and the role names), so the BPE learns it whole.
_CHAT_TEXTS = ["system\nYou are a helpful assistant.\n", "user\n", "assistant\n"]


def build_processor():
    """The tokenizer (trained on the task's texts) and the video processor, as one `StormProcessor`."""
    from ..processors.processing_storm import StormProcessor
    from ..processors.video_processing_storm import StormVideoProcessor
    from ..tokenization import build_tokenizer

    tokenizer = build_tokenizer(
        question_texts() + answer_vocabulary() + description_texts() + _CHAT_TEXTS, vocab_size=VOCAB_SIZE
    )
    tokenizer.eos_token = "<|im_end|>"  # a reply ends with the end of its turn, as in Qwen2's chat models
    video_processor = StormVideoProcessor(
        size={"height": FRAME_SIZE, "width": FRAME_SIZE},
        patch_size=VISION_CONFIG["patch_size"],
        downsample=2,
        temporal_pool_size=TEMPORAL_POOL,
        max_frames=MAX_FRAMES,
        # Centred on the scenes' dark grey background and scaled up, so the vision tower sees the shapes, not a
        # constant offset shared by every patch.
        image_mean=[0.16, 0.16, 0.16],
        image_std=[0.3, 0.3, 0.3],
    )
    return StormProcessor(video_processor, tokenizer)


def build_model(processor, temporal_layers: int = 2, seed: int = 0, unidirectional: bool = False):
    """A randomly initialised tiny STORM matching `processor`; `temporal_layers=0` is the linear-projector baseline,
    `unidirectional=True` the streamable variant."""
    import torch

    from ..modeling.configuration_storm import StormConfig
    from ..modeling.modeling_storm import StormForConditionalGeneration

    if temporal_layers < 0:
        raise ValueError(f"temporal_layers must be >= 0 (0 = linear projector only), got {temporal_layers}.")
    tokenizer = processor.tokenizer
    config = StormConfig(
        vision_config=VISION_CONFIG,
        text_config={**TEXT_CONFIG, "vocab_size": len(tokenizer)},
        temporal_config={**TEMPORAL_CONFIG, **(UNIDIRECTIONAL if unidirectional else {}), "num_layers": temporal_layers},
        vision_feature_layer=-1,
        # 32 px frames are 16 patches each: a training batch's frames (64 clips of up to 64 frames) go through the
        # vision tower at once, instead of in chunks of 32 frames whose autograd copies cost a third of the step
        vision_chunk_size=4096,
        video_token_id=processor.video_token_id,
        image_token_id=processor.image_token_id,
    )
    torch.manual_seed(seed)
    model = StormForConditionalGeneration(config)
    model.generation_config.update(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
    )
    return model
