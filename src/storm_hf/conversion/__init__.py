"""Research checkpoints to Hub folders, assembling STORM from pretrained parts, Hub export."""
