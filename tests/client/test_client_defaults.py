"""Each client default is written once: ClientConfig's field defaults, and the demo page's address and retries in
config."""
from __future__ import annotations

import argparse
import inspect
from dataclasses import fields
from typing import Any

import pytest

import dermassist_client.client as client_module
from dermassist_client import AsyncDermAssistClient, ClientConfig, DermAssistClient
from dermassist_client.cli import build_parser
from dermassist_client.config import DEMO_HOST, DEMO_PORT, DEMO_RETRIES, config_default

URL = "127.0.0.1:1"


def test_a_client_built_without_timeout_or_retries_leaves_them_to_client_config(monkeypatch) -> None:
    """The constructor passes on only what it was given, so ClientConfig's own defaults are the ones used."""
    given: list[dict[str, Any]] = []

    def recording(**kwargs: Any) -> ClientConfig:
        given.append(kwargs)
        return ClientConfig(**kwargs)

    monkeypatch.setattr(client_module, "ClientConfig", recording)
    DermAssistClient(URL)
    AsyncDermAssistClient(URL, retries=0)
    assert given[0] == {"url": URL, "protocol": "grpc"}
    assert given[1] == {"url": URL, "protocol": "grpc", "retries": 0}


@pytest.mark.parametrize("cls", [DermAssistClient, AsyncDermAssistClient])
def test_the_constructor_takes_none_for_defaults_and_keeps_its_positional_and_keyword_forms(cls) -> None:
    assert cls(URL).config == ClientConfig(url=URL)
    assert cls(URL, timeout=None, retries=None).config == ClientConfig(url=URL)
    positional = cls(URL, "http", 5.0, 0).config
    assert (positional.protocol, positional.timeout_s, positional.retries) == ("http", 5.0, 0)
    keyword = cls(URL, protocol="http", timeout=7, retries=2, max_batch_size=4).config
    assert (keyword.timeout_s, keyword.retries, keyword.max_batch_size) == (7, 2, 4)
    signature = inspect.signature(cls.__init__).parameters
    assert signature["timeout"].default is None and signature["retries"].default is None


def test_config_default_reads_the_field_defaults_and_names_the_fields_it_has() -> None:
    defaults = {f.name: f.default for f in fields(ClientConfig) if f.name != "url"}
    assert {name: config_default(name) for name in defaults} == defaults
    with pytest.raises(KeyError, match="ClientConfig has no field 'url' with a default; expected one of protocol, "):
        config_default("url")


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


@pytest.mark.parametrize("command", ["analyze", "demo", "dicom-listen"])
def test_the_command_line_takes_its_connection_defaults_and_their_help_from_client_config(command: str) -> None:
    sub = _subparser(build_parser(), command)
    actions = {a.dest: a for a in sub._actions}
    retries = DEMO_RETRIES if command == "demo" else config_default("retries")  # the page: one retry, said soon
    assert actions["timeout"].default == config_default("timeout_s")
    assert actions["retries"].default == retries
    assert actions["protocol"].default == config_default("protocol")
    text = " ".join(sub.format_help().split())
    assert f"(default {config_default('timeout_s'):g})" in text and f"(default {retries}" in text
    assert actions["model_version"].default == config_default("model_version")  # the server's latest


@pytest.mark.parametrize("command", ["analyze", "dicom-listen"])
def test_the_command_line_pins_a_model_version_and_refuses_a_word(command: str, tmp_path, capsys) -> None:
    """Neither command could pin a version; the SDK took 'latest' and blamed every picture for the server's refusal."""
    from dermassist_client.cli import main
    from dermassist_client.config import connection_options

    rest = ["x.jpg"] if command == "analyze" else ["--spool", str(tmp_path / "spool")]
    args = build_parser().parse_args([command, "--model-version", "7", *rest])
    assert connection_options(args)["model_version"] == "7"
    assert main([command, "--model-version", "latest", *rest]) == 2
    assert "model_version must be empty (the server's latest) or a version number above 0" in capsys.readouterr().err


def test_both_demo_commands_and_launch_demo_bind_the_one_default_page_address() -> None:
    from dermassist.commands.demo import add_arguments

    client_demo = {a.dest: a.default for a in _subparser(build_parser(), "demo")._actions}
    assert (client_demo["host"], client_demo["port"]) == (DEMO_HOST, DEMO_PORT)
    server = argparse.ArgumentParser()
    add_arguments(server)
    from dermassist.commands.demo import page_address

    # no flag and no DERMASSIST_DEMO_* variable: the client's defaults (the flags default to None, so the variables
    # can come between them)
    assert page_address(server.parse_args([]), environ={}) == (DEMO_HOST, DEMO_PORT)
    assert page_address(server.parse_args([]), environ={"DERMASSIST_DEMO_PORT": "7861"}) == (DEMO_HOST, 7861)
    assert page_address(server.parse_args(["--port", "7862"]), environ={"DERMASSIST_DEMO_PORT": "7861"})[1] == 7862
    assert f"default {DEMO_PORT})" in server.format_help()
    from dermassist_client.demo import build_demo, launch_demo

    page = inspect.signature(launch_demo).parameters
    assert (page["host"].default, page["port"].default) == (DEMO_HOST, DEMO_PORT)
    assert page["timeout"].default is None and inspect.signature(build_demo).parameters["timeout"].default is None


def test_the_demo_page_functions_take_the_one_demo_retries_and_client_configs_protocol() -> None:
    """build_demo and launch_demo default to DEMO_RETRIES (not a second 1, nor ClientConfig's 3) and to ClientConfig's
    protocol; ``dermassist-client demo --retries`` defaults to the same DEMO_RETRIES."""
    from dermassist_client.demo import build_demo, launch_demo

    for function in (build_demo, launch_demo):
        parameters = inspect.signature(function).parameters
        assert parameters["retries"].default == DEMO_RETRIES, function.__name__
        assert parameters["protocol"].default == config_default("protocol"), function.__name__
    assert build_parser().parse_args(["demo"]).retries == DEMO_RETRIES


def test_the_sdk_reference_lists_every_client_config_field_with_its_default() -> None:
    """docs/sdk.md's settings table names every ClientConfig field once, with the default the code has."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    table = text.split("## Settings: `ClientConfig`", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    assert list(rows) == [f.name for f in fields(ClientConfig)]
    for name, documented in rows.items():
        if name == "url":
            assert documented == "(required)"
            continue
        assert documented == f"`{config_default(name)}`", name


def test_the_retry_waits_the_docs_state_follow_the_backoff() -> None:
    """docs/sdk.md says how long the default retries wait, and how long ten do (riding through a restart)."""
    from pathlib import Path

    from dermassist_client.config import ClientConfig
    from dermassist_client.retry import backoff_s

    docs = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    default = ClientConfig(url="h:1")
    waits = [backoff_s(default, attempt) for attempt in range(default.retries)]
    assert " + ".join(f"{w:g}" for w in waits) in docs and f"about {sum(waits):.1f} s after" in docs
    ten = sum(backoff_s(default, attempt) for attempt in range(10))
    assert f"`--retries 10`: {ten:.1f} s of waits in all" in docs
