"""The known limits of the classes the classifier learnt: those with no training image (and where the evaluated SCCs
went), and those with few."""
from __future__ import annotations

from preprocess.contract import CLASS_CODES, CLASS_NAMES

from .sources import KNOWN_SOURCES
from .text import count_range, join_words, wrap

# A class with fewer training images than this is named a rare class in the known limits.
RARE_TRAINING_IMAGES = 30


def untrained_classes_lines(counts: dict[str, int], release: dict, sources: list[str]) -> list[str]:
    """The known limit naming the classes with no training image (none where every class has some)."""
    missing = [c for c in CLASS_CODES if counts[c] == 0]
    if not missing:
        return []
    names = [CLASS_NAMES[CLASS_CODES.index(c)].lower() for c in missing]
    learnt = "P(" + "), P(".join(missing) + ")"
    has = "has" if len(sources) == 1 else "have"
    if missing == ["SCC"]:
        akiec = ("; ISIC 2018 Task 3's AKIEC (actinic keratosis and intraepithelial carcinoma, Bowen's disease), trained "
                 "as AK, holds SCC in situ" if "ISIC 2018 Task 3" in sources and counts["AK"] else "")
        seen = scc_calls(release)
        text = (f"- **No invasive SCC in the training data**: {join_words(sources)} {has} no squamous cell carcinoma class, so "
                f"P(SCC) is never learnt{akiec}. An SCC is called one of the classes learnt, not always a malignant one"
                f"{seen}, and is referred only when the summed REFER_SCORE reaches the threshold or the picture is not "
                "assessable: never read the top class for a suspected keratinocyte cancer.")
        return wrap(text, indent="  ")
    text = (f"- **No {join_words(missing, 'or')} in the training data**: {join_words(sources)} {has}"
            f" no {join_words(names, 'or')}, so {learnt} {'is' if len(missing) == 1 else 'are'} never learnt;"
            f" such a lesion is called one of the classes learnt ({', '.join(c for c in CLASS_CODES if counts[c])}).")
    return wrap(text, indent="  ")


def scc_calls(release: dict) -> str:
    """`` (the ISIC 2019 sample's 3 SCCs were called AK, NV and BKL)``: the classes the evaluated SCCs of a report
    were called, from its confusion matrix; "" where no report holds an SCC."""
    for name, report in release.get("evaluation", {}).get("reports", {}).items():
        c = report.get("classification") or {}
        scc = CLASS_CODES.index("SCC")
        row = (c.get("confusion_matrix") or [])[scc] if len(c.get("confusion_matrix") or []) > scc else []
        if sum(row):
            called = [CLASS_CODES[i] for i, n in enumerate(row) for _ in range(n)]
            label = KNOWN_SOURCES[name].label if name in KNOWN_SOURCES else name
            return f" (the {label}'s {sum(row)} SCC{'s' if sum(row) > 1 else ''} {'were' if sum(row) > 1 else 'was'} " \
                   f"called {join_words(called)})"
    return ""


def rare_classes_lines(counts: dict[str, int], test_support: dict[str, int]) -> list[str]:
    """The known limit naming the classes with few training images and the test images their recall rests on."""
    # the rarest first (fewest training images), ties in the contract's order
    rare = sorted((c for c in CLASS_CODES if 0 < counts[c] < RARE_TRAINING_IMAGES), key=lambda c: counts[c])
    if not rare:
        return []
    tests = [test_support.get(c, 0) for c in rare]
    one = len(rare) == 1
    noise = (f"{'its' if one else 'their'} recall is noisy on {count_range(tests)} test images" if max(tests)
             else f"{'it has' if one else 'they have'} no test images, so {'its' if one else 'their'} recall is not measured")
    return wrap(f"- Rare class{'' if one else 'es'} ({', '.join(rare)}) {'has' if one else 'have'} "
                f"{count_range([counts[c] for c in rare])} training images{'' if one else ' each'}; {noise}.", indent="  ")
