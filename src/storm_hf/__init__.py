"""storm-hf: STORM (Mamba temporal encoder + video token reduction) for Hugging Face Transformers."""

__version__ = "0.1.0"
