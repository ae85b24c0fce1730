"""Hub code: video processor, processor and pipeline files shipped verbatim with exported checkpoints."""
