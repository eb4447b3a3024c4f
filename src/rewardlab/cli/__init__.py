"""The ``rewardlab`` command line (``rewardlab.cli:app``; ``python -m rewardlab.cli``)."""

from rewardlab.cli.app import app, main

__all__ = ["app", "main"]
