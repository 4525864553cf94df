"""The floors of the project and its import graph, read from the sources with ``ast``.

Imports point down: ``preprocess`` (and the thin client, its own distribution) at the bottom, the
base, then ``training``, the serving code, the command line on top. Every ``import`` counts, those
inside functions too; a unit may import its own modules and any unit on a lower floor, never one on
its own floor or above. ``python -m dermassist.layers`` prints the picture (Mermaid) and exits 1
when an arrow points up; ``--png PATH`` draws it with matplotlib.

Each unit may import only the third-party packages ``THIRD_PARTY`` lets it (the standard library
always): ``preprocess`` and the thin client never TensorFlow or torch, the served steps only the
frameworks they host; an import of another package is listed as the upward ones are.

Imports made by name at run time (``importlib.import_module``, ``python -m`` subprocesses) are not
import statements and are not in the graph: the command line loads its subcommands and training
stages that way, which points down too.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .base.paths import PROJECT_ROOT

# (floor name, units on it) from the bottom up. A unit is a dotted module prefix; a module belongs to the
# unit with the longest matching prefix ("dermassist" is what is left of it: cli, commands, bench, evaluation).
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("contract and image maths; the thin client", ("preprocess", "dermassist_client")),
    ("base", ("dermassist.base",)),
    ("training", ("training",)),
    ("serving", ("model_repository", "dermassist.guard", "dermassist.reference")),
    ("command line and load test", ("dermassist", "loadtest")),
    ("tests", ("tests",)),
    ("development scripts", ("client_benchmarks",)),  # client/benchmarks borrows the tests' tiny models
)
# Unit -> the third-party packages (top-level import names) its modules may import, at any depth; a unit not listed
# (the tests, the development scripts) may import any. The standard library is always allowed.
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "preprocess": ("numpy", "cv2", "PIL", "simplejpeg"),  # PIL: headers, alpha, ICC profiles; simplejpeg: JPEG decode
    # extras: gradio (demo), pydicom/highdicom/pynetdicom (dicom), fhir.resources/pydantic (fhir)
    "dermassist_client": ("numpy", "PIL", "tritonclient", "gradio", "pydicom", "highdicom", "pynetdicom", "fhir",
                          "pydantic"),
    "dermassist.base": ("numpy", "cv2", "tritonclient", "google", "torch"),  # torch: import_torch, lazily
    "training": ("numpy", "cv2", "PIL", "tensorflow", "keras", "torch", "torchvision", "scipy", "skimage", "matplotlib",
                 "openpyxl", "tqdm", "_typeshed"),
    # each served step by its own module (model_repository.<model>), the others by the unit: only the segmenter hosts
    # TensorFlow; the classifier gets torch through dermassist.base (import_torch)
    "model_repository": ("numpy", "triton_python_backend_utils"),
    "model_repository.lesion_segmenter": ("numpy", "tensorflow", "triton_python_backend_utils"),
    "dermassist.guard": ("numpy", "grpc", "tritonclient", "google", "cryptography"),
    "dermassist.reference": ("numpy", "tensorflow"),
    "dermassist": ("numpy", "cv2", "matplotlib", "tritonclient", "cryptography", "packaging"),  # packaging: lockfile
    "loadtest": ("locust", "gevent", "grpc", "tritonclient"),
}
# Source folders -> the dotted name their modules get (model.py adapters: model_repository.<model>).
SOURCE_ROOTS: tuple[tuple[str, str], ...] = (
    ("preprocess", "preprocess"),
    ("dermassist", "dermassist"),
    ("training", "training"),
    ("loadtest", "loadtest"),
    ("client/dermassist_client", "dermassist_client"),
    ("client/benchmarks", "client_benchmarks"),
    ("model_repository", "model_repository"),
    ("tests", "tests"),
)


@dataclass(frozen=True)
class Import:
    """One import statement of a project module that names another project module."""

    source: str
    target: str
    path: Path
    line: int

    def where(self) -> str:
        """``path:line`` relative to the project."""
        return f"{self.path.relative_to(PROJECT_ROOT) if self.path.is_absolute() else self.path}:{self.line}"


def floor_of(unit: str) -> int:
    """Index of a unit's floor (0 is the bottom)."""
    for index, (_, units) in enumerate(FLOORS):
        if unit in units:
            return index
    raise KeyError(f"{unit!r} is on no floor of dermassist.layers.FLOORS; add it to one")


def unit_of(module: str) -> str:
    """The unit a dotted module name belongs to (the longest unit prefix)."""
    matches = [u for _, units in FLOORS for u in units if module == u or module.startswith(u + ".")]
    if not matches:
        raise KeyError(f"module {module!r} belongs to no unit of dermassist.layers.FLOORS; add its package to one")
    return max(matches, key=len)


def project_modules(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Dotted name -> file of every project module under the source roots."""
    modules: dict[str, Path] = {}
    for folder, name in SOURCE_ROOTS:
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if name == "model_repository":  # <model>/<version>/model.py: one adapter per model
                if len(parts) != 3 or parts[2] != "model":
                    continue
                parts = parts[:1]
            elif parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((name, *parts))] = path
    return modules


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``import from`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: Iterable[str]) -> Iterator[Import]:
    """Every import in ``path`` (at any depth) that names a project module."""
    known = set(known)
    tops = {m.split(".")[0] for m in known}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):  # one per module a statement names
            if name.split(".")[0] in tops:
                yield Import(module, name, path, node.lineno)


def third_party_imports(module: str, path: Path, project: Iterable[str]) -> Iterator[tuple[str, int]]:
    """(top-level package, line) of every import in ``path`` (at any depth) of a package that is neither the
    project's (``project``: its top-level names) nor the standard library's."""
    project = set(project)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        for top in dict.fromkeys(n.split(".")[0] for n in names):
            if top and top not in project and top not in sys.stdlib_module_names:
                yield top, node.lineno


def foreign_imports(root: Path = PROJECT_ROOT) -> list[str]:
    """``path:line: unit imports package`` for every third-party import ``THIRD_PARTY`` does not let its unit make."""
    modules = project_modules(root)
    project = {m.split(".")[0] for m in modules}
    found = []
    for module, path in modules.items():
        allowed = THIRD_PARTY.get(module, THIRD_PARTY.get(unit_of(module)))
        if allowed is None:
            continue
        for top, line in third_party_imports(module, path, project):
            if top not in allowed:
                where = path.relative_to(root) if path.is_relative_to(root) else path
                held = module if module in THIRD_PARTY else unit_of(module)
                found.append(f"{where}:{line}: {module} ({unit_of(module)}) imports {top}, which THIRD_PARTY does not "
                             f"let {held} import (it may: {', '.join(allowed)})")
    return found


def import_graph(root: Path = PROJECT_ROOT) -> list[Import]:
    """Every import between project modules."""
    modules = project_modules(root)
    return [imp for module, path in modules.items() for imp in imports_of(module, path, modules)]


def upward(imports: Iterable[Import]) -> list[Import]:
    """The imports that point sideways or up: into another unit on the same floor or a higher one."""
    bad = []
    for imp in imports:
        source, target = unit_of(imp.source), unit_of(imp.target)
        if source != target and floor_of(target) >= floor_of(source):
            bad.append(imp)
    return bad


def unit_edges(imports: Iterable[Import]) -> dict[tuple[str, str], int]:
    """(importing unit, imported unit) -> number of import statements, between different units."""
    edges: dict[tuple[str, str], int] = {}
    for imp in imports:
        key = (unit_of(imp.source), unit_of(imp.target))
        if key[0] != key[1]:
            edges[key] = edges.get(key, 0) + 1
    return dict(sorted(edges.items()))


def _node(unit: str) -> str:
    return unit.replace(".", "_")


def mermaid(imports: Iterable[Import]) -> str:
    """The picture as a Markdown page with a Mermaid graph: one box per floor (top floor first)."""
    edges = unit_edges(imports)
    lines = ["# Imports between the floors", "",
             "Generated by `python -m dermassist.layers --markdown docs/imports.md` from the sources (every import",
             "statement, those inside functions too); `tests/dermassist/test_layers.py` fails when it is stale or",
             "when an arrow points sideways or up. The number on an arrow counts the import statements.", "",
             "```mermaid", "flowchart TB"]
    for index in reversed(range(len(FLOORS))):
        name, units = FLOORS[index]
        lines.append(f'  subgraph floor{index}["{index}: {name}"]')
        lines += [f'    {_node(u)}["{u}"]' for u in units]
        lines.append("  end")
    lines += [f"  {_node(a)} -->|{n}| {_node(b)}" for (a, b), n in edges.items()]
    lines += ["```", "", "Third-party packages each unit may import (`THIRD_PARTY`; the standard library always; the tests "
              "and development scripts any):", "", "| unit | may import |", "|---|---|"]
    lines += [f"| {unit} | {', '.join(packages)} |" for unit, packages in THIRD_PARTY.items()]
    lines.append("")
    return "\n".join(lines)


def draw_png(imports: Iterable[Import], path: Path) -> Path:
    """Draw the floors below the tests as bands and the edges between their units as arrows, into a PNG
    (the tests may import every floor: their arrows would hide the others)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = FLOORS[: floor_of("tests")]
    spots = {u: (2.2 * i + 1.1 * (f % 2), 2.0 * f) for f, (_, units) in enumerate(shown) for i, u in enumerate(units)}
    edges = {k: n for k, n in unit_edges(imports).items() if k[0] in spots and k[1] in spots}
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for f, (name, _) in enumerate(shown):
        ax.axhspan(2.0 * f - 0.7, 2.0 * f + 0.7, color="0.93" if f % 2 else "0.97", zorder=0)
        ax.text(-1.4, 2.0 * f, f"{f}: {name}", ha="right", va="center", fontsize=9, color="0.3")
    for (a, b), n in edges.items():
        (xa, ya), (xb, yb) = spots[a], spots[b]
        colour = "tab:red" if floor_of(b) >= floor_of(a) else "tab:blue"
        ax.annotate("", xy=(xb, yb + 0.25), xytext=(xa, ya - 0.25), zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": colour, "alpha": 0.6, "lw": 0.6 + 0.12 * min(n, 12),
                                "connectionstyle": "arc3,rad=0.1"})
    for unit, (x, y) in spots.items():
        ax.text(x, y, unit, ha="center", va="center", fontsize=9, zorder=2,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.4"})
    ax.set_xlim(-5.5, 6.0)
    ax.set_ylim(-1, 2.0 * len(shown) - 1)
    ax.axis("off")
    ax.set_title("DermAssist imports between units (tests left out): every arrow points down (blue); an upward "
                 "one would be red", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Print (or write) the picture; exit 1 listing every import that points sideways or up."""
    parser = argparse.ArgumentParser(prog="python -m dermassist.layers", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="write the Mermaid page here instead of printing it")
    parser.add_argument("--png", type=Path, help="also draw the picture into this PNG")
    args = parser.parse_args(argv)
    graph = import_graph()
    page = mermaid(graph)
    if args.markdown:
        args.markdown.write_text(page)
    else:
        sys.stdout.write(page)
    if args.png:
        draw_png(graph, args.png)
    bad = upward(graph)
    for imp in bad:
        sys.stderr.write(f"{imp.where()}: {imp.source} ({unit_of(imp.source)}) imports {imp.target} "
                         f"({unit_of(imp.target)}), which is not on a lower floor\n")
    foreign = foreign_imports()
    for line in foreign:
        sys.stderr.write(line + "\n")
    return 1 if bad or foreign else 0


if __name__ == "__main__":
    sys.exit(main())
