"""The card's terms of use: its opening lines, the Intended use section and the Attribution section (the public sets'
where the release used only sets the card knows, else where a site adds its data's)."""
from __future__ import annotations

from .shipped import SHIPPED_HEADER, SHIPPED_SKIN_TYPES
from .sources import EVALUATION, KNOWN_SOURCES, NOT_RECORDED
from .text import ATTRIBUTION_WIDTH, join_words, wrap

INTENDED_USE = [
    "## Intended use",
    "",
    "- For: research decision support in an ethics-approved clinical study, used by clinicians trained in dermoscopy.",
    "  One dermoscopic picture of one skin lesion in; a referral suggestion, a most probable class and the reasons a",
    "  picture cannot be assessed out. It does not replace clinical examination or histopathology: a lesion the",
    "  clinician suspects is handled as usual, whatever the answer.",
    "- Not for: clinical (non-dermoscopic) or phone photographs; mucosal and nail lesions; ulcerated, bleeding,",
    "  biopsied, treated or tattooed lesions; lesions larger than the field of view; several lesions in one picture",
    "  (a second one is flagged, not assessed); screening people who have no lesion of concern.",
    "",
]


def header_lines(release: dict, roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The card's opening terms: the public sets' where the release used only sets the card knows, else the sources
    trained on and the line the site adds its data's terms on."""
    unknown = [f for f in roles if f not in KNOWN_SOURCES]
    if not unknown:
        return SHIPPED_HEADER
    trained = [KNOWN_SOURCES[f].short if f in KNOWN_SOURCES else f for f, r in roles.items() if r != (EVALUATION,)]
    public = " The public sets' licences are in the Data table; these weights inherit their terms." \
        if len(unknown) < len(trained) else ""
    return wrap(f"**Research use only. Not a medical device.** Trained on {join_words(trained)}. Licence and attribution of "
                f"{join_words(unknown)}: {NOT_RECORDED}.{public}")


def intended_use_lines(roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The Intended use section: what the models are for and not for, and the skin types of the data they learnt from
    (the public sets' where the release used only sets the card knows, else the line a site states its data's on)."""
    if all(f in KNOWN_SOURCES for f in roles):
        skin = SHIPPED_SKIN_TYPES
    else:
        skin = [f"- Skin types of the training data: {NOT_RECORDED}; how the models do on skin types it lacks is not known."]
    return [*INTENDED_USE[:-1], *skin, ""]


def attribution_lines(roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The Attribution section's text: each known set's citation (in the card's order), then the line each other
    source's terms go on."""
    known = " ".join(k.attribution for f, k in KNOWN_SOURCES.items() if f in roles)
    return [*(wrap(known, ATTRIBUTION_WIDTH) if known else []),
            *(f"{folder}: licence and attribution {NOT_RECORDED}." for folder in roles if folder not in KNOWN_SOURCES)]
