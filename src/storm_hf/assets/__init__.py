"""The tiny STORM models shipped inside storm-hf (data only: one Hub folder per model)."""
