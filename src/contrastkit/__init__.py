"""contrastkit: contrastive representation learning, one method per paper on one shared core."""

__version__ = "0.2.0"
