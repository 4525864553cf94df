"""``MODEL_CARD.md`` of a release, rendered from its ``release.json`` (figures through the served ensemble)."""
from __future__ import annotations

from .checks import QUALITY_CHECK_IMAGES
from .render import render_model_card, write_model_card
from .sources import training_class_counts

__all__ = ["QUALITY_CHECK_IMAGES", "render_model_card", "training_class_counts", "write_model_card"]
