"""gelora-sync: every offline wandb run of a sweep handed to ``wandb sync`` (``cli.py``)."""
