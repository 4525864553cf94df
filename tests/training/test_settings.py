"""training.settings.setting: CLI > DERMASSIST_* environment > default, with typed, strict parsing."""
from __future__ import annotations

import pytest

from training.errors import TrainingConfigError
from training.settings import setting


def test_cli_wins_then_environment_then_default(monkeypatch) -> None:
    monkeypatch.setenv("DERMASSIST_CLS_EPOCHS", "9")
    assert setting(3, "CLS_EPOCHS", 6, int) == 3
    assert setting(None, "CLS_EPOCHS", 6, int) == 9
    monkeypatch.setenv("DERMASSIST_CLS_EPOCHS", "")
    assert setting(None, "CLS_EPOCHS", 6, int) == 6
    monkeypatch.setenv("DERMASSIST_CLS_LR", "5e-4")
    assert setting(None, "CLS_LR", 2e-3, float) == pytest.approx(5e-4)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("Yes", True), ("false", False), ("0", False)])
def test_booleans_parse_both_ways(monkeypatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("DERMASSIST_CLS_BRIGHTNESS", raw)
    assert setting(None, "CLS_BRIGHTNESS", False, bool) is expected


@pytest.mark.parametrize(("name", "raw", "cast"), [("CLS_EPOCHS", "six", int), ("CLS_BRIGHTNESS", "maybe", bool)])
def test_a_bad_value_names_the_variable(monkeypatch, name: str, raw: str, cast: type) -> None:
    monkeypatch.setenv(f"DERMASSIST_{name}", raw)
    with pytest.raises(TrainingConfigError, match=f"DERMASSIST_{name} must be a {cast.__name__}, got '{raw}'"):
        setting(None, name, cast(), cast)
