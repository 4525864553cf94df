"""Server settings, command line and environment, without starting a model."""
from __future__ import annotations

import logging
import sys
import sysconfig
from pathlib import Path

import pytest

from dermassist.base.errors import ConfigError
from dermassist.base.server import locate_triton, server_command, server_environment
from dermassist.base.server_config import ServerConfig


def test_defaults_follow_the_architecture(tmp_path: Path) -> None:
    config = ServerConfig(repository=tmp_path)
    assert (config.profile, config.http_port, config.grpc_port, config.metrics_port) == ("embedded", 8000, 8001, 8002)
    assert config.grpc_address == "127.0.0.1:8001"


def test_precedence_is_cli_then_environment_then_default(tmp_path: Path) -> None:
    env = {"DERMASSIST_HTTP_PORT": "9000", "DERMASSIST_GRPC_PORT": "9001", "DERMASSIST_REPOSITORY": str(tmp_path)}
    config = ServerConfig.resolve({"grpc_port": 7001, "http_port": None}, environ=env)
    assert (config.http_port, config.grpc_port, config.metrics_port) == (9000, 7001, 8002)
    assert config.repository == tmp_path.resolve()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"profile": "tpu"}, "--profile / DERMASSIST_PROFILE must be one of"),
        ({"http_port": 0}, "--http-port / DERMASSIST_HTTP_PORT must be between"),
        ({"grpc_port": 8000}, "ports must differ"),
        ({"startup_timeout_s": 0}, "--startup-timeout-s / DERMASSIST_STARTUP_TIMEOUT_S must be positive"),
        ({"model_control_mode": "poll"}, "DERMASSIST_MODEL_CONTROL_MODE must be one of"),  # no flag sets it
    ],
)
def test_invalid_settings_are_refused_with_a_message(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig(repository=tmp_path, **kwargs)


def test_missing_repository_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass --repository / DERMASSIST_REPOSITORY .*make models"):
        ServerConfig(repository=tmp_path / "nope")


def test_a_repository_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(ConfigError, match="is a file, not a folder; pass --repository / DERMASSIST_REPOSITORY") as err:
        ServerConfig.resolve({"repository": str(passwd)}, environ={})
    assert "does not exist" not in str(err.value)


@pytest.mark.parametrize("name", ["Modèles IA", "models 2026"])
def test_a_repository_path_tritonserver_cannot_serve_from_is_refused_at_once(tmp_path: Path, name: str) -> None:
    """2.51 hung for its whole start-up timeout on a space (its stubs' command line is split on spaces) and failed the
    Python steps' load on a non-ASCII letter, the cause buried in its log."""
    folder = tmp_path / name / "model_repository"
    folder.mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"in its path, which tritonserver 2.51 cannot serve from .* move or copy it to "
                                          r"a path of plain ASCII without spaces, and pass that to --repository"):
        ServerConfig.resolve({"repository": str(folder)}, environ={})
    plain = tmp_path / "models" / "model_repository"
    plain.mkdir(parents=True)
    assert ServerConfig.resolve({"repository": str(plain)}, environ={}).repository == plain.resolve()


@pytest.mark.parametrize(("variable", "raw", "message"), [
    ("DERMASSIST_HTTP_PORT", "-5", "--http-port / DERMASSIST_HTTP_PORT must be between 1 and 65535, got -5"),
    ("DERMASSIST_METRICS_PORT", "70000", "--metrics-port / DERMASSIST_METRICS_PORT must be between 1 and 65535, got 70000"),
    ("DERMASSIST_STARTUP_TIMEOUT_S", "-1", "--startup-timeout-s / DERMASSIST_STARTUP_TIMEOUT_S must be positive, got -1"),
])
def test_a_value_out_of_range_names_its_flag_and_variable(tmp_path: Path, variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        ServerConfig.resolve({}, environ={"DERMASSIST_REPOSITORY": str(tmp_path), variable: raw})
    assert str(err.value).startswith(message)


def _serve_args(argv: list[str]) -> dict:
    import argparse

    from dermassist.commands.serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_a_key_file_on_the_command_line_wins_over_the_key_in_the_environment(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cli_key = tmp_path / "cli.key"
    cli_key.write_text("key-from-the-cli-file\n")
    env = {"DERMASSIST_ADMIN_KEY": "envkey"}
    with caplog.at_level(logging.INFO, logger="dermassist.base.server_config"):
        config = ServerConfig.resolve(_serve_args(["--repository", str(tmp_path), "--admin-key-file", str(cli_key)]), env)
    assert config.admin_key == "key-from-the-cli-file" and not config.admin_key_is_generated
    assert f"admin key from the file {cli_key} (--admin-key-file); DERMASSIST_ADMIN_KEY is set too and is ignored" \
        in caplog.messages
    assert "envkey" not in caplog.text and "key-from-the-cli-file" not in caplog.text


@pytest.mark.parametrize(("env_names", "overrides", "expected", "logged"), [
    # both variables: the documented order, DERMASSIST_ADMIN_KEY first
    (("DERMASSIST_ADMIN_KEY", "DERMASSIST_ADMIN_KEY_FILE"), {}, "envkey",
     "admin key from DERMASSIST_ADMIN_KEY; DERMASSIST_ADMIN_KEY_FILE is set too and is ignored"),
    (("DERMASSIST_ADMIN_KEY",), {}, "envkey", "admin key from DERMASSIST_ADMIN_KEY"),
    (("DERMASSIST_ADMIN_KEY_FILE",), {}, "filekey", "admin key from the file {file} (DERMASSIST_ADMIN_KEY_FILE)"),
    ((), {"admin_key_file": "{file}"}, "filekey", "admin key from the file {file} (--admin-key-file)"),
])
def test_the_admin_key_source_is_logged_and_the_environment_keeps_its_order(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, env_names: tuple[str, ...], overrides: dict, expected: str,
        logged: str) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text("filekey\n")
    values = {"DERMASSIST_ADMIN_KEY": "envkey", "DERMASSIST_ADMIN_KEY_FILE": str(key_file)}
    env = {"DERMASSIST_REPOSITORY": str(tmp_path), **{name: values[name] for name in env_names}}
    overrides = {k: v.format(file=key_file) for k, v in overrides.items()}
    with caplog.at_level(logging.INFO, logger="dermassist.base.server_config"):
        assert ServerConfig.resolve(overrides, env).admin_key == expected
    assert caplog.messages == [logged.format(file=key_file)]


def test_an_empty_key_variable_leaves_the_file_in_charge(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text("filekey\n")
    env = {"DERMASSIST_REPOSITORY": str(tmp_path), "DERMASSIST_ADMIN_KEY": "", "DERMASSIST_ADMIN_KEY_FILE": str(key_file)}
    with caplog.at_level(logging.INFO, logger="dermassist.base.server_config"):
        assert ServerConfig.resolve({}, env).admin_key == "filekey"
    assert caplog.messages == [f"admin key from the file {key_file} (DERMASSIST_ADMIN_KEY_FILE)"]


def test_no_key_configured_is_not_logged_as_a_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dermassist.base.server_config"):
        assert ServerConfig.resolve({"repository": tmp_path}, {}).admin_key_is_generated
    assert caplog.messages == []  # `serve` says the restricted APIs are closed


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match="DERMASSIST_HTTP_PORT must be of type int"):
        ServerConfig.resolve({}, environ={"DERMASSIST_HTTP_PORT": "eighty"})


def test_command_line_selects_profile_and_ports(tmp_path: Path) -> None:
    install = locate_triton()
    assert install.binary.is_file() and install.stub.is_file()
    embedded = server_command(install, ServerConfig(repository=tmp_path, http_port=1, grpc_port=2, metrics_port=3), tmp_path)
    assert "--model-config-name=embedded" in embedded
    expected = {"--strict-readiness=true", "--exit-on-error=true", "--http-port=1", "--grpc-port=2", "--metrics-port=3"}
    assert expected <= set(embedded)
    gpu = server_command(install, ServerConfig(repository=tmp_path, profile="gpu"), tmp_path)
    assert not any(arg.startswith("--model-config-name") for arg in gpu)


def test_each_start_names_its_shared_memory_and_only_those_regions_are_removed(tmp_path: Path) -> None:
    from dermassist.base.errors import ServerError
    from dermassist.base.server import remove_shm_regions, shm_prefix

    first, second = shm_prefix(), shm_prefix()
    assert first != second and first.startswith("dermassist-")
    cmd = server_command(locate_triton(), ServerConfig(repository=tmp_path), tmp_path, first)
    assert f"--backend-config=python,shm-region-prefix-name={first}" in cmd
    assert not any("shm-region-prefix" in a for a in server_command(locate_triton(), ServerConfig(repository=tmp_path), tmp_path))
    for name in (f"{first}region_0", f"{first}region_1", f"{second}region_0", "triton_python_backend_shm_region_7"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_shm_regions(first, tmp_path) == [tmp_path / f"{first}region_0", tmp_path / f"{first}region_1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{second}region_0", "triton_python_backend_shm_region_7"]
    with pytest.raises(ServerError, match="without a name prefix"):
        remove_shm_regions("", tmp_path)


def test_a_server_behind_the_guard_restricts_inference_to_its_key_and_the_key_never_shows(tmp_path: Path) -> None:
    """Privacy audit, M5: a local user called inference on tritonserver's loopback ports, around the audited front."""
    from dermassist.base.server import redact

    config = ServerConfig(repository=tmp_path, admin_key="k3y")
    plain = server_command(locate_triton(), config, tmp_path)
    behind = server_command(locate_triton(), config, tmp_path, restrict_inference=True)
    restricted = [a for a in behind if a.startswith(("--grpc-restricted-protocol=", "--http-restricted-api="))]
    assert len(restricted) == 2 and all(a.split("=", 1)[1].split(":")[0].split(",")[-1] == "inference" for a in restricted)
    assert all(a.endswith(":admin-key=k3y") for a in restricted)
    assert not any("inference" in a for a in plain if a.startswith(("--grpc-restricted", "--http-restricted")))
    assert "k3y" not in " ".join(redact(behind))


def test_the_shared_memory_regions_of_a_start_are_made_private(tmp_path: Path) -> None:
    """Privacy audit, M4: the Python backend's regions were 0644 and held the decoded pixels of the last requests."""
    import os
    import stat

    from dermassist.base.server import private_shm_regions

    for name, mode in (("dermassist-1-ab-region_0", 0o644), ("dermassist-1-ab-region_1", 0o600),
                       ("dermassist-2-cd-region_0", 0o644)):
        (tmp_path / name).write_bytes(b"pixels")
        os.chmod(tmp_path / name, mode)
    assert private_shm_regions("dermassist-1-ab-", tmp_path) == [tmp_path / "dermassist-1-ab-region_0"]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"dermassist-1-ab-region_0": 0o600, "dermassist-1-ab-region_1": 0o600,
                     "dermassist-2-cd-region_0": 0o644}  # another start's regions are left alone
    assert private_shm_regions("", tmp_path) == []


def test_environment_puts_this_venv_and_libpython_first() -> None:
    install = locate_triton()
    env = server_environment(install, base={"PATH": "/usr/bin"})
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    libdirs = env["LD_LIBRARY_PATH"].split(":")
    assert libdirs[0] == sysconfig.get_config_var("LIBDIR") and str(install.libs) in libdirs


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8000/v2/health/ready"),
    ("0.0.0.0", "http://127.0.0.1:8000/v2/health/ready"),  # every address: loopback is one of them
    ("10.20.30.40", "http://10.20.30.40:8000/v2/health/ready"),  # one interface: loopback is not served
    ("::", "http://[::1]:8000/v2/health/ready"),
    ("fd00::5", "http://[fd00::5]:8000/v2/health/ready"),
])
def test_readiness_is_polled_where_the_server_listens(tmp_path: Path, host: str, url: str) -> None:
    assert ServerConfig(repository=tmp_path, host=host, http_port=8000).ready_url == url
