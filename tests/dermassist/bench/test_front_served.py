"""The front's rows on the real embedded Triton (tiny models): a guard before it for every level, a second one over
TLS with a certificate made at run time, and every inference through either front audited. No timing asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dermassist.bench.front import AUDIT_FILE, TLS_AUDIT_FILE, measure_behind_guard

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def images(shared_data: Path) -> list[bytes]:
    folder = shared_data / "ham10000_sample" / "HAM10000_images_part_1"
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:2]]


def test_the_front_is_measured_at_each_level_and_over_tls(triton_server, images: list[bytes], tmp_path: Path) -> None:
    for trail in (AUDIT_FILE, TLS_AUDIT_FILE):  # an earlier run's lines: they grew across runs
        (tmp_path / trail).write_text('{"an earlier run": 1}\n' * 5)
    costs = measure_behind_guard(triton_server, images, (1, 2), 3, tmp_path)
    assert [(r.concurrency, r.requests, r.tls) for r in costs.rows] == [(1, 3, False), (2, 3, False), (1, 3, True)]
    assert all(min(r.direct_p50_ms, r.direct_p95_ms, r.front_p50_ms, r.front_p95_ms) > 0 for r in costs.rows)
    assert "throwaway CA and server certificate made at run time" in costs.tls_note
    plaintext = [json.loads(line) for line in (tmp_path / AUDIT_FILE).read_text().splitlines()]
    over_tls = [json.loads(line) for line in (tmp_path / TLS_AUDIT_FILE).read_text().splitlines()]
    assert len(plaintext) == costs.requests == 6 and len(over_tls) == 3
    assert triton_server.running  # the guards came and went; the server they stood before stays up
