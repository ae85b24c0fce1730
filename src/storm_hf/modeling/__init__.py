"""Hub code: configuration and modeling files shipped verbatim with exported checkpoints."""
