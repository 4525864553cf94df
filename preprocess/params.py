"""Typed settings of a Python-backend step: a Triton ``parameters`` entry > the version's tuned artifact >
the dataclass default. One reader for every step, so each default is written once (in its dataclass)."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .errors import PreprocessError, StepSettingsError

TUNED_FILENAME = "tuned.json"
# The fix every refusal of a step's settings ends with, where mending the value by hand is not what is wanted.
EXPORT_AGAIN = "export the version again (`dermassist models`)"
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
T = TypeVar("T")


def _cast(name: str, raw: Any, kind: str, where: str) -> Any:
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() not in _TRUE + _FALSE:
                raise ValueError(raw)
            return str(raw).lower() in _TRUE
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except (TypeError, ValueError) as e:
        article = "an" if kind == "int" else "a"
        allowed = f"; use one of {', '.join(_TRUE + _FALSE)} (any case)" if kind == "bool" else ""
        raise StepSettingsError(f"{where}: {name} must be {article} {kind}, got {raw!r}{allowed}; fix the value where "
                                 f"it is set, or {EXPORT_AGAIN}") from e
    return raw


def config_parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    """The string values of a Triton model config's ``parameters`` (as the Python backend hands it over)."""
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


def thread_parameter(parameters: Mapping[str, str], name: str) -> int:
    """A thread count from a config's ``parameters`` (0 when unset: the library's own choice); a value that is not a
    count >= 0 is refused by name, so the model's load failure says which parameter to fix."""
    raw = parameters.get(name, "")
    count = _cast(name, raw, "int", "config parameter") if raw != "" else 0
    if count < 0:
        raise StepSettingsError(f"config parameter: {name} must be a thread count >= 0 (0: the library's choice), "
                                 f"got {raw!r}")
    return count


def bool_parameter(parameters: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no switch from a config's ``parameters`` (``default`` when unset or empty); a value that is not one of
    1/true/yes, 0/false/no (any case) is refused by name, so the model's load failure says which parameter to fix."""
    raw = parameters.get(name, "")
    return bool(_cast(name, raw, "bool", "config parameter")) if raw != "" else default


def choice_parameter(parameters: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` from a config's ``parameters``, matched in any case and returned as
    written in ``allowed``; "" when unset. Any other value is refused by name with the values allowed."""
    raw = parameters.get(name, "")
    if raw == "":
        return ""
    for choice in allowed:
        if raw.strip().upper() == choice.upper():
            return choice
    raise StepSettingsError(f"config parameter: {name} must be one of {', '.join(allowed)} (any case), got {raw!r}; "
                             "fix the parameter in the model's config")


OMP_WAIT_POLICIES = ("ACTIVE", "PASSIVE")  # what OpenMP's OMP_WAIT_POLICY accepts


@dataclass(frozen=True)
class ClassifierCpuSettings:
    """How the classifier runs on the CPU, from its config's ``parameters`` (each named as its field): the embedded
    adapter applies them and the reference pipeline reads them the same way, so both run the same graph."""

    optimize_for_cpu: bool = False  # freeze and optimise the TorchScript for inference
    omp_wait_policy: str = ""  # one of OMP_WAIT_POLICIES; "": OpenMP's own
    intra_op_threads: int = 0  # 0: torch's own choice

    def __post_init__(self) -> None:
        if self.omp_wait_policy not in ("", *OMP_WAIT_POLICIES):
            raise StepSettingsError(f"omp_wait_policy must be one of {', '.join(OMP_WAIT_POLICIES)} or unset, got "
                                     f"{self.omp_wait_policy!r}")
        if self.intra_op_threads < 0:
            raise StepSettingsError(f"intra_op_threads must be a thread count >= 0, got {self.intra_op_threads}")


def classifier_cpu_settings(parameters: Mapping[str, str]) -> ClassifierCpuSettings:
    """The classifier's CPU settings from a config's ``parameters``; an unset one keeps its dataclass default, and a
    bad one is refused by name (``bool_parameter``, ``choice_parameter``, ``thread_parameter``)."""
    default = ClassifierCpuSettings()
    return ClassifierCpuSettings(
        optimize_for_cpu=bool_parameter(parameters, "optimize_for_cpu", default.optimize_for_cpu),
        omp_wait_policy=choice_parameter(parameters, "omp_wait_policy", OMP_WAIT_POLICIES) or default.omp_wait_policy,
        intra_op_threads=thread_parameter(parameters, "intra_op_threads") if parameters.get("intra_op_threads", "")
        else default.intra_op_threads,
    )


def set_opencv_threads(model_config: Mapping[str, Any]) -> None:
    """Give OpenCV the thread count of the config's ``opencv_threads`` parameter, when it has one."""
    threads = thread_parameter(config_parameters(model_config), "opencv_threads")
    if threads:
        import cv2

        cv2.setNumThreads(threads)


def read_tuned(version_dir: str) -> dict[str, Any]:
    """The ``values`` of ``<version_dir>/tuned.json``, or {} when the version ships none."""
    path = os.path.join(version_dir, TUNED_FILENAME)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            values = json.load(f)["values"]
    except (OSError, ValueError, KeyError, TypeError) as e:  # KeyError, TypeError: JSON without a "values" key
        why = "its JSON has no 'values' key" if isinstance(e, (KeyError, TypeError)) else str(e)
        raise StepSettingsError(f"{path} is not a tuned-values artifact ({why}); expected {{\"values\": {{...}}}}: fix "
                                 f"the file, or {EXPORT_AGAIN}") from e
    if not isinstance(values, dict):
        raise StepSettingsError(f"{path}: 'values' must be an object, got {type(values).__name__}; fix the file, or "
                                 f"{EXPORT_AGAIN}")
    return values


def unknown_tuned_values(cls: type, tuned: Mapping[str, Any]) -> str:
    """What is wrong with tuned values that name no setting of ``cls`` (a misspelt key), or ""."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(tuned) - set(known))
    if not unknown:
        return ""
    return (f"tuned value(s) {', '.join(map(repr, unknown))} in {TUNED_FILENAME} name no setting of {cls.__name__} "
            f"(expected some of {', '.join(known)})")


CONFIG_SOURCE = "the model config's parameters"  # where a Triton ``parameters`` entry comes from, for messages


def resolve_params(cls: type[T], parameters: Mapping[str, str], tuned: Mapping[str, Any], where: str,
                   tuned_source: str = TUNED_FILENAME, config_source: str = CONFIG_SOURCE) -> T:
    """Build ``cls`` field by field: Triton parameter, else tuned artifact, else the dataclass default.

    A tuned value that names no setting is refused: a misspelt key ("refer_treshold") would otherwise serve the
    default in silence, and the default is not what the version was tuned to. A value ``cls`` refuses (out of range)
    is refused naming the step (``where``), the source of each value given (``config_source``, ``tuned_source``) and
    the fix."""
    problem = unknown_tuned_values(cls, tuned)
    if problem:
        raise StepSettingsError(f"{where}: {problem}; fix the name, or {EXPORT_AGAIN}")
    values, sources = {}, {}
    for f in fields(cls):  # type: ignore[arg-type]
        if parameters.get(f.name, "") != "":
            values[f.name] = _cast(f.name, parameters[f.name], str(f.type), where)
            sources[f.name] = config_source
        elif f.name in tuned:
            values[f.name] = _cast(f.name, tuned[f.name], str(f.type), where)
            sources[f.name] = tuned_source
    try:
        return cls(**values)
    except PreprocessError as e:
        named = {n: src for n, src in sources.items() if re.search(rf"\b{n}\b", str(e))} or sources
        given = "; ".join(f"{name} from {source}" for name, source in named.items()) or "every value its default"
        raise StepSettingsError(f"{where}: {e} ({given}); fix the value where it is set (a config parameter "
                                 f"overrides the tuned file), or {EXPORT_AGAIN}") from e


def step_params(cls: type[T], args: Mapping[str, str], model_config: Mapping[str, Any]) -> T:
    """``resolve_params`` for a Python-backend ``initialize(args)``: its config and its version folder."""
    version_dir = os.path.join(args["model_repository"], args["model_version"])
    return resolve_params(cls, config_parameters(model_config), read_tuned(version_dir), args.get("model_name", "model"),
                          tuned_source=os.path.join(version_dir, TUNED_FILENAME))


def tuned_artifact(values: Mapping[str, Any], figures: Mapping[str, Any], source: str, **extra: Any) -> str:
    """The JSON text of a tuned-values artifact (what ``read_tuned`` reads), with the figures behind them (and any
    ``extra`` keys after them)."""
    return json.dumps({"values": dict(values), "figures": dict(figures), "source": source, **extra}, indent=1) + "\n"
