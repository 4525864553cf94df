"""What an operator audit found in Triton's metrics: counters only, no latency quantiles, so Prometheus could give
no p95 (finding 9)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dermassist.base.server import locate_triton, server_command
from dermassist.base.server_config import ServerConfig

# --- 9. latency quantiles ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["embedded", "gpu"])
def test_tritonserver_is_started_with_latency_summaries(tmp_path: Path, profile: str) -> None:
    cmd = server_command(locate_triton(), ServerConfig(repository=tmp_path, profile=profile), tmp_path)
    # Triton 2.51's form, --metrics-config=<setting>=<value>: one argument, so no value can be taken for a flag
    assert [a for a in cmd if a.startswith("--metrics-config")] == ["--metrics-config=summary_latencies=true"]
    assert cmd.index("--metrics-config=summary_latencies=true") > cmd.index(f"--metrics-port={ServerConfig().metrics_port}")
