"""The flag a refusal names (``setting_names``) is the flag the command really has: every field of a command's
settings is set by the flag ``flag_of`` names, or by its variable alone when ``flag_of`` says it has none (a message
naming --requests-per-level when the flag is --requests sent operators looking for a flag that does not exist).
``demo`` is checked on its page's settings: its server settings are ``serve``'s but for --host, which is the page's
(the demo names the server's address by its variable alone)."""
from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from dermassist.base.server_config import DemoPageSettings, ServerConfig
from dermassist.base.settings import flag_of, setting_names
from dermassist.bench.config import BenchConfig
from dermassist.cli import build_parser
from dermassist.commands.experiments import ExperimentsConfig
from dermassist.commands.import_models import ImportConfig
from dermassist.commands.models import ModelsConfig
from dermassist.commands.serve import SERVER_FIELDS
from dermassist.evaluation.config import EvaluationConfig
from dermassist.gpu_parity import GpuCheckConfig
from dermassist.guard.config import GuardConfig
from loadtest.config import RunConfig, ScenarioConfig
from loadtest.run import build_parser as loadtest_parser
from training.classifier.stage import StageOptions
from training.classifier.train import ClassifierConfig
from training.pipeline import BuildConfig
from training.segmenter.model import UNetConfig
from training.segmenter.train import SegmenterConfig
from training.synth.generator import SynthConfig


def _options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option string of ``parser`` -> the dest it sets."""
    return {option: action.dest for action in parser._actions for option in action.option_strings}


def _command(*names: str) -> argparse.ArgumentParser:
    """The parser of ``dermassist <names...>`` (``train segmenter``: a command's own subcommand)."""
    parser = build_parser(list(names))
    for name in names:
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = subparsers.choices[name]
    return parser


COMMANDS = [("models", (ModelsConfig,)), ("bench", (BenchConfig,)), ("evaluate", (EvaluationConfig,)),
            ("serve", (ServerConfig, GuardConfig)), ("synth", (SynthConfig,)), ("experiments", (ExperimentsConfig,)),
            ("import", (ImportConfig,)), ("export", (ImportConfig,)), ("gpu-check", (GpuCheckConfig,)),
            ("release", (BuildConfig,)), ("train segmenter", (SegmenterConfig, UNetConfig)),
            ("train classifier", (ClassifierConfig, StageOptions)), ("demo", (DemoPageSettings,))]


@pytest.mark.parametrize(("command", "classes"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_setting_of_a_dermassist_command_is_set_by_the_flag_its_messages_name(command, classes) -> None:
    _check(_options(_command(*command.split())), classes)


def test_the_demo_sets_the_servers_settings_by_the_flags_serve_names() -> None:
    demo, serve = _options(_command("demo")), _options(_command("serve"))
    for name in SERVER_FIELDS:
        flag = flag_of(ServerConfig, name)
        assert demo[flag] == serve[flag] == name
    assert demo["--host"] == "demo_host" and serve["--host"] == "host"


def test_every_load_test_setting_is_set_by_the_flag_its_messages_name() -> None:
    _check(_options(loadtest_parser()), (RunConfig, ScenarioConfig))


def _check(options: dict[str, str], classes) -> None:
    wrong = []
    for cls in classes:
        for f in fields(cls):
            flag = flag_of(cls, f.name)
            setting = [o for o, dest in options.items() if dest == f.name]
            if flag is None and setting:
                wrong.append(f"{cls.__name__}.{f.name} is said to have no flag, but {setting} set it")
            elif flag is not None and options.get(flag) != f.name:
                wrong.append(f"{cls.__name__}.{f.name}: messages name {flag}, the command's flags for it are {setting}")
    assert wrong == []


def test_messages_name_the_flag_an_operator_typed_or_the_variable_alone() -> None:
    assert setting_names(BenchConfig, "requests_per_level") == "--requests / DERMASSIST_BENCH_REQUESTS_PER_LEVEL"
    assert setting_names(ScenarioConfig, "retries") == "LOADTEST_RETRIES"
    assert setting_names(ServerConfig, "http_port") == "--http-port / DERMASSIST_HTTP_PORT"
    assert setting_names(ClassifierConfig, "learning_rate") == "--lr / DERMASSIST_CLS_LR"
    assert setting_names(DemoPageSettings, "demo_port") == "--port / DERMASSIST_DEMO_PORT"
