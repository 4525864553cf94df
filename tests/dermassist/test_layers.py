"""Imports point down: the graph read from the sources has no arrow sideways or up, and docs/imports.md is current."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.layers import FLOORS, Import, import_graph, mermaid, project_modules, unit_of, upward
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph()


def test_every_import_points_down(graph: list[Import]) -> None:
    bad = [f"{i.where()}: {i.source} imports {i.target}" for i in upward(graph)]
    assert not bad, "imports that do not point to a lower floor:\n" + "\n".join(bad)


def test_every_project_module_is_on_a_floor() -> None:
    modules = project_modules()
    assert {"preprocess.contract", "dermassist.base.settings", "training.pipeline", "model_repository.triage",
            "dermassist.cli", "loadtest.locustfile", "dermassist_client.client"} <= set(modules)
    assert {unit_of(m) for m in modules} == {u for _, units in FLOORS for u in units}


def test_the_check_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    """A relative import inside a function of the base that reaches the command line is caught."""
    (tmp_path / "dermassist" / "base").mkdir(parents=True)
    for package in ("dermassist", "dermassist/base"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "dermassist" / "cli.py").write_text("")
    (tmp_path / "dermassist" / "base" / "paths.py").write_text("def f():\n    from ..cli import main\n")
    bad = upward(import_graph(tmp_path))
    assert [(i.source, i.target, i.line) for i in bad] == [("dermassist.base.paths", "dermassist.cli", 2)]


def test_the_thin_client_and_preprocess_import_no_other_project_package(graph: list[Import]) -> None:
    for imp in graph:
        if unit_of(imp.source) in ("dermassist_client", "preprocess"):
            assert unit_of(imp.target) == unit_of(imp.source), imp.where()


def test_the_picture_in_docs_is_current(graph: list[Import]) -> None:
    page = (PROJECT_ROOT / "docs" / "imports.md").read_text()
    assert page == mermaid(graph), "docs/imports.md is stale: run `python -m dermassist.layers --markdown docs/imports.md`"


def test_every_unit_imports_only_the_third_party_packages_it_may() -> None:
    from dermassist.layers import foreign_imports

    assert foreign_imports() == []


def test_a_framework_import_in_preprocess_or_the_client_is_caught(tmp_path: Path) -> None:
    """preprocess importing torch inside a function, and the client importing tensorflow, are named with their lines;
    the standard library and the unit's own packages are not."""
    from dermassist.layers import foreign_imports

    (tmp_path / "preprocess").mkdir()
    (tmp_path / "preprocess" / "__init__.py").write_text("")
    (tmp_path / "preprocess" / "maths.py").write_text("import json\nimport numpy as np\n\n\ndef f():\n    import torch\n")
    (tmp_path / "client" / "dermassist_client").mkdir(parents=True)
    (tmp_path / "client" / "dermassist_client" / "__init__.py").write_text("from tensorflow import keras\n")
    found = foreign_imports(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("preprocess/maths.py:6: preprocess.maths (preprocess) imports torch, which THIRD_PARTY")
    assert found[1].startswith("client/dermassist_client/__init__.py:1: dermassist_client (dermassist_client) imports "
                               "tensorflow")


def test_a_served_step_may_import_only_the_framework_it_hosts(tmp_path: Path) -> None:
    """The steps shared one allow-list holding TensorFlow, so triage could import it and pass (review 11)."""
    from dermassist.layers import foreign_imports

    for step in ("triage", "lesion_segmenter"):
        (tmp_path / "model_repository" / step / "1").mkdir(parents=True)
        (tmp_path / "model_repository" / step / "1" / "model.py").write_text("import numpy\nimport tensorflow as tf\n")
    found = foreign_imports(tmp_path)
    assert len(found) == 1 and found[0].startswith("model_repository/triage/1/model.py:2: model_repository.triage "
                                                   "(model_repository) imports tensorflow, which THIRD_PARTY does not "
                                                   "let model_repository import")
