"""The card's Reproduce section: how to rebuild the release, how long it took, its recipe and how to start from
ImageNet weights instead."""
from __future__ import annotations

from ..classifier.schedule import PRETRAINED_SHA256_PREFIX
from .shipped import SHARED_DATA_ROOT
from .sources import KNOWN_SOURCES

REPRODUCE = [
    "`dermassist release --data ../shared/data --recipe training/release/release.json --out data/release` (`make",
    "release`) retrains with the recorded recipe (below) and evaluates through the ensemble. The classifier stage is",
    "deterministic on CPU (the same crops give the same weights, bit for bit, in the same arithmetic); the segmenter",
    "stage (TensorFlow on CPU) is not, and its masks cut the classifier's crops, so a rebuild differs by run-to-run",
    "noise: `RUNS.md` compares a rebuild from scratch with this release, figure by figure, and gives each stage's",
    "time alone. Both stages train in bfloat16 where the CPU has it natively (AVX-512 or AMX, as this release was",
    "built) and fall back to float32 elsewhere, where bfloat16 is 8-15x slower: a rebuild there takes several",
    "times longer and its figures differ by that noise too.",
]


def reproduce_lines(release: dict, roles: dict[str, tuple[str, ...]]) -> list[str]:
    """How to rebuild the release: the shipped one from the shared data with ``make release``, any other from the
    data root its release.json records."""
    root = release.get("data", {}).get("root")
    if root == SHARED_DATA_ROOT and all(f in KNOWN_SOURCES for f in roles):
        return REPRODUCE
    return [f"`dermassist release --data {root or '<your data root>'} --recipe <this release>/release.json --out <new "
            "folder>`", REPRODUCE[1].removeprefix("release`) "), *REPRODUCE[2:]]


def reproduce_section(release: dict, roles: dict[str, tuple[str, ...]]) -> list[str]:
    """The Reproduce section: the rebuild, each stage's build time, the recipe and the pretrained start."""
    return [
        "## Reproduce",
        "",
        *reproduce_lines(release, roles),
        "Build time of this release on a 2-core machine (shared with other work): " + ", ".join(
            f"{stage} {seconds / 60:.0f} min" for stage, seconds in (release.get("build_seconds") or {}).items()
            if seconds) + ".",
        "",
        f"Recipe: `{release.get('recipe')}`",
        "",
        "With torchvision's ImageNet ResNet18 file (`resnet18-f37072fd.pth`, ResNet18_Weights.IMAGENET1K_V1, whose",
        f"SHA-256 begins `{PRETRAINED_SHA256_PREFIX}`, as torch.hub checks), `--pretrained FILE` on the classifier stage",
        "starts from it instead; the stage logs the file's full SHA-256 and refuses a file whose digest does not begin",
        "with the prefix its torchvision-style name carries.",
        "",
    ]
