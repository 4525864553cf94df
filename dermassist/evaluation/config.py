"""The settings of one ``dermassist evaluate`` run and the types its parts share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.readers.common import IMAGE_SUFFIXES

from ..base.errors import DermAssistError
from ..base.settings import Settings
from ..remote import RemoteSettings

__all__ = ["IMAGE_SUFFIXES", "Answers", "EvaluationConfig", "EvaluationError"]  # IMAGE_SUFFIXES: the readers' one list


class EvaluationError(DermAssistError):
    """The evaluation cannot run: no images, a bad split manifest, or a server that cannot be reached."""


@dataclass(frozen=True)
class EvaluationConfig(Settings, RemoteSettings):
    """What to evaluate and where the report goes; validated on construction (``resolve``: flags >
    DERMASSIST_EVALUATE_* > defaults)."""

    env_prefix = "DERMASSIST_EVALUATE_"
    config_error = EvaluationError

    data: Path
    name: str = ""
    out: Path = Path("reports/evaluate")
    repository: Path | None = None
    split_manifest: Path | None = None
    split: str = "test"
    ood: Path | None = None

    def __post_init__(self) -> None:
        if not Path(self.data).is_dir():
            raise EvaluationError(f"--data {self.data} is not a folder; expected a dataset in an accepted layout")
        if self.ood is not None and not Path(self.ood).is_dir():
            raise EvaluationError(f"--ood {self.ood} is not a folder; expected a folder of non-dermoscopic images")
        if self.split_manifest is not None and not Path(self.split_manifest).is_file():
            raise EvaluationError(f"--split-manifest {self.split_manifest} does not exist; expected a split JSON "
                                  "written by training (e.g. training/release/splits/classifier_split.json)")
        if self.name and (Path(self.name).name != self.name or self.name in (".", "..") or "\\" in self.name):
            raise EvaluationError(f"--name {self.name!r} is not a plain folder name; expected a name without / or \\ "
                                  "that is not . or .. (the report goes to OUT/NAME/): pass e.g. --name site_a, and "
                                  "--out for the folder above it")
        if self.url:  # refused before anything is read, sent or cleared (a scheme, no port, a bad port)
            from dermassist_client import ClientConfig, ClientConfigError

            try:
                ClientConfig(url=self.url)
            except ClientConfigError as e:
                raise EvaluationError(f"--url {self.url!r} is not the address of a DermAssist: {e}; expected the HOST:PORT "
                                      "of its gRPC port, without http:// or grpc:// (e.g. --url 10.0.0.5:8001): pass "
                                      "--url HOST:PORT") from e
        if not self.name:  # the folder's own name, also for `--data .`
            object.__setattr__(self, "name", Path(self.data).resolve().name
                               + (f"_{self.split}" if self.split_manifest else ""))
        self.check_remote(EvaluationError, "they are for a running DermAssist served over TLS (the embedded server "
                                        "started without --url is local plaintext)")


@dataclass
class Answers:
    """What the service said about each image that it answered, and which images it refused."""

    paths: list[Path] = field(default_factory=list)
    results: list = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def shown_path(path: Path) -> str:
    """A path as a report shows it: relative to the working folder when it lies under it (no machine's own paths)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
