"""The model card of a release: its sections in order, rendered from ``release.json``, and written beside it."""
from __future__ import annotations

from pathlib import Path

from ..release import MODEL_CARD, read_release, recorded_triage
from .checks import skipped_lines
from .data import data_lines
from .figures import figures_lines
from .limits import known_limits_lines
from .models import what_it_is_lines
from .referral import referral_rule
from .reports import test_label
from .reproduce import reproduce_section
from .sources import source_roles
from .targets import targets_lines
from .terms import attribution_lines, header_lines, intended_use_lines


def title_line(release: dict) -> str:
    """The card's title: the release's name, version and date."""
    return f"# DermAssist model card: {release.get('name')} (version {release.get('version')}, {release.get('created')})"


def render_model_card(release: dict) -> str:
    """The card's markdown."""
    triage_values = recorded_triage(release)  # first, so a bad triage section fails with its own check's message
    rule, roles = referral_rule(release), source_roles(release)
    ev = release.get("evaluation", {})
    label = test_label(ev)
    lines = [
        title_line(release),
        "",
        *header_lines(release, roles),
        "",
        *intended_use_lines(roles),
        *what_it_is_lines(release, rule, triage_values),
        *data_lines(release, roles),
        *figures_lines(release, rule, label),
        *targets_lines(ev, label),
        *skipped_lines(ev.get("skipped", {})),
        *known_limits_lines(release, rule),
        *reproduce_section(release, roles),
        "## Attribution",
        "",
        *attribution_lines(roles),
    ]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path) -> Path:
    """Write ``MODEL_CARD.md`` beside the release's ``release.json``."""
    path = Path(folder) / MODEL_CARD
    path.write_text(render_model_card(read_release(folder)))
    return path
