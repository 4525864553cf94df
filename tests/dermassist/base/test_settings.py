"""The one settings resolver: flag > environment > the dataclass default, typed and strict, for every config."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.paths import PROJECT_ROOT
from dermassist.base.settings import (
    DEFAULT,
    ENVIRONMENT,
    FLAG,
    Settings,
    env_name,
    parse_text,
    setting_help,
    setting_names,
    value_source,
)


@dataclass(frozen=True)
class Inner(Settings):
    env_prefix = "T_"

    depth: int = 18


@dataclass(frozen=True)
class Placed(Settings):
    env_prefix = "T_"
    place: Path = PROJECT_ROOT / "reports" / "latest"


@dataclass(frozen=True)
class Example(Settings):
    env_prefix = "T_"

    inner: Inner = field(default_factory=Inner)
    epochs: int = 6
    rate: float = field(default=2e-3, metadata=env_name("T_LR"))
    flag: bool = False
    name: str = "x"
    levels: tuple[int, ...] = (1, 2)
    folder: Path | None = None


def test_a_flag_wins_then_the_environment_then_the_default() -> None:
    env = {"T_EPOCHS": "9", "T_LR": "5e-4", "T_DEPTH": "34"}
    assert Example.resolve({"epochs": 3}, env).epochs == 3
    resolved = Example.resolve({"epochs": None}, env)
    assert (resolved.epochs, resolved.rate, resolved.inner.depth) == (9, pytest.approx(5e-4), 34)
    assert Example.resolve({}, {}) == Example()
    assert Example.resolve({"depth": 50}, env).inner.depth == 50  # nested configs read the same flags


def test_an_empty_variable_is_unset_except_for_a_string() -> None:
    resolved = Example.resolve({}, {"T_EPOCHS": "", "T_FOLDER": "", "T_NAME": ""})
    assert (resolved.epochs, resolved.folder, resolved.name) == (6, None, "")


@pytest.mark.parametrize(("raw", "kind", "expected"), [
    ("Yes", bool, True), ("0", bool, False), ("3", int, 3), ("1.5", float, 1.5), ("4, 8,", tuple[int, ...], (4, 8)),
    ("a/b", Path | None, Path("a/b")), ("text", str, "text"),
])
def test_values_parse_as_their_field_types(raw: str, kind: object, expected: object) -> None:
    assert parse_text(raw, kind) == expected


@pytest.mark.parametrize(("name", "raw", "kind"), [("T_EPOCHS", "six", "int"), ("T_FLAG", "maybe", "bool"),
                                                    ("T_LEVELS", "1,x", r"tuple\[int, \.\.\.\]")])
def test_a_bad_value_names_the_variable_and_the_type(name: str, raw: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name} must be of type {kind}, got '{raw}'"):
        Example.resolve({}, {name: raw})


def test_each_config_raises_its_own_error() -> None:
    from loadtest.config import RunConfig
    from loadtest.errors import LoadtestConfigError

    with pytest.raises(LoadtestConfigError, match="LOADTEST_USERS"):
        RunConfig.resolve({}, {"LOADTEST_USERS": "many"})


def test_the_source_of_a_value_follows_the_resolver_rules() -> None:
    env = {"T_EPOCHS": "9", "T_LR": "", "T_NAME": "", "T_FLAG": "1"}
    assert value_source(Example, "epochs", {"epochs": 3}, env) == FLAG
    assert value_source(Example, "epochs", {"epochs": None}, env) == ENVIRONMENT
    assert value_source(Example, "rate", {}, env) == DEFAULT  # an empty variable is unset...
    assert value_source(Example, "name", {}, env) == ENVIRONMENT  # ...except for a string
    assert value_source(Example, "flag", {}, {}) == DEFAULT


def test_a_setting_is_named_by_its_flag_and_its_variable() -> None:
    assert setting_names(Example, "epochs") == "--epochs / T_EPOCHS"
    assert setting_names(Example, "rate") == "--rate / T_LR"  # a variable named in the field's metadata


def test_flag_help_shows_the_variable_and_the_default_written_once() -> None:
    assert setting_help(Example, "rate", "peak rate") == "peak rate (T_LR, default 0.002)"
    assert setting_help(Example, "levels", "levels") == "levels (T_LEVELS, default 1,2)"
    assert setting_help(Example, "folder", "folder") == "folder (T_FOLDER, default none)"
    assert setting_help(Placed, "place", "where") == \
        "where (T_PLACE, default reports/latest of the checkout DermAssist runs from)"  # not the working folder's
    assert setting_help(Example, "flag", "flag") == "flag (T_FLAG, default false)"


def _stage_args(add_arguments, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_the_segmenter_stage_takes_its_defaults_from_the_dataclasses(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.segmenter.model import UNetConfig
    from training.segmenter.stage import add_arguments, config_from_args
    from training.segmenter.train import SegmenterConfig

    for name in ("DERMASSIST_SEG_EPOCHS", "DERMASSIST_SEG_LR", "DERMASSIST_SEED", "DERMASSIST_SEG_WIDTH"):
        monkeypatch.delenv(name, raising=False)
    plain = config_from_args(_stage_args(add_arguments, ["--data", "d"]))
    assert (plain.epochs, plain.learning_rate, plain.unet) == (SegmenterConfig.epochs, SegmenterConfig.learning_rate,
                                                               UNetConfig())
    monkeypatch.setenv("DERMASSIST_SEG_LR", "1e-3")
    monkeypatch.setenv("DERMASSIST_SEED", "4")
    monkeypatch.setenv("DERMASSIST_SEG_WIDTH", "0.5")
    config = config_from_args(_stage_args(add_arguments, ["--data", "d", "--epochs", "3", "--no-augment"]))
    assert (config.epochs, config.learning_rate, config.seed, config.unet.width, config.augment) == (3, 1e-3, 4, 0.5, False)


def test_the_classifier_stage_takes_its_defaults_from_the_dataclasses(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.classifier.stage import StageOptions, add_arguments, config_from_args
    from training.classifier.train import ClassifierConfig
    from training.errors import TrainingConfigError

    for name in ("DERMASSIST_CLS_EPOCHS", "DERMASSIST_CLS_LOW_RES_EPOCHS", "DERMASSIST_CLS_LR", "DERMASSIST_SEED"):
        monkeypatch.delenv(name, raising=False)
    args = _stage_args(add_arguments, ["--data", "d"])
    assert config_from_args(args) == ClassifierConfig(progress=config_from_args(args).progress)
    assert StageOptions.resolve(vars(args)) == StageOptions()
    short = config_from_args(_stage_args(add_arguments, ["--data", "d", "--epochs", "3", "--lr", "1e-3"]))
    assert (short.epochs, short.low_res_epochs, short.learning_rate) == (3, 2, 1e-3)  # the last epoch at full size
    given = config_from_args(_stage_args(add_arguments, ["--data", "d", "--epochs", "3", "--low-res-epochs", "3"]))
    assert given.low_res_epochs == 3  # a value given is kept
    monkeypatch.setenv("DERMASSIST_CLS_EPOCHS", "six")
    with pytest.raises(TrainingConfigError, match="DERMASSIST_CLS_EPOCHS must be of type int, got 'six'"):
        config_from_args(args)


def test_the_classifier_stage_cuts_its_crops_with_the_colour_balance_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from preprocess.crop import CropParams
    from training.classifier.stage import StageOptions, add_arguments
    from training.errors import TrainingConfigError

    monkeypatch.delenv("DERMASSIST_CLS_COLOUR_CONSTANCY", raising=False)
    assert StageOptions.resolve(vars(_stage_args(add_arguments, ["--data", "d"]))).crop() == CropParams()
    given = StageOptions.resolve(vars(_stage_args(add_arguments, ["--data", "d", "--colour-constancy", "6",
                                                                 "--crop-threshold", "0.3"])))
    assert given.crop() == CropParams(threshold=0.3, colour_constancy=6.0)
    monkeypatch.setenv("DERMASSIST_CLS_COLOUR_CONSTANCY", "4")
    assert StageOptions.resolve(vars(_stage_args(add_arguments, ["--data", "d"]))).colour_constancy == 4.0
    with pytest.raises(TrainingConfigError, match="--colour-constancy.*shades-of-grey norm p in \\[1, 16\\], got 0.5"):
        StageOptions.resolve(vars(_stage_args(add_arguments, ["--data", "d", "--colour-constancy", "0.5"])))


@dataclass(frozen=True)
class Root(Settings):
    env_prefix = "T2_"

    port: int = 1


@dataclass(frozen=True)
class Leaf(Settings):
    env_prefix = "T2_LEAF_"

    size: int = 2


def test_a_misspelt_variable_of_a_classs_own_prefix_is_refused_with_the_name_it_likely_meant() -> None:
    """DERMASSIST_SEG_EPOCH=3 (for ..._EPOCHS) trained the default 8 epochs without a word; LOADTEST_* typos were
    already refused. A class sharing its prefix (Inner with Example) reads its own variables, and the nested and
    renamed ones (T_DEPTH, T_LR) are settings too."""
    with pytest.raises(ConfigError, match=r"T_EPOCH \(did you mean T_EPOCHS\?\): no setting reads them"):
        Example.resolve({}, {"T_EPOCH": "3"})
    assert Example.resolve({}, {"T_EPOCHS": "3", "T_DEPTH": "34", "T_LR": "0.1", "OTHER": "x"}).epochs == 3
    with pytest.raises(ConfigError, match="T2_LEAF_SIZ "):
        Leaf.resolve({}, {"T2_LEAF_SIZ": "3"})
    # a prefix another class's prefix extends is shared (as DERMASSIST_ is): its variables are not checked
    assert Root.resolve({}, {"T2_LEAF_SIZE": "3", "T2_ANYTHING": "1"}) == Root()


def test_a_setting_and_a_step_parameter_take_the_same_spellings_of_true_and_false() -> None:
    """The two lists are copies (the base's settings import only the standard library): they must not drift."""
    from dermassist.base import settings
    from preprocess import params

    assert (settings._TRUE, settings._FALSE) == (params._TRUE, params._FALSE)
