"""Throughput of AsyncDermAssistClient (N requests in flight) vs DermAssistClient (one after another).

Run from the repository root (it needs the project environment to start a server with the tiny
test models unless ``--url`` names a running one):

    .venv/bin/python client/benchmarks/throughput.py --images 64 --in-flight 32
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAM_DIR = ROOT.parent / "shared" / "data" / "ham10000_sample" / "HAM10000_images_part_1"


@contextlib.contextmanager
def tiny_server():
    """A real embedded Triton serving the tiny test models; yields its gRPC address."""
    sys.path.insert(0, str(ROOT))
    from dermassist.base.server import embedded_server
    from tests.conftest import export_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        with embedded_server(export_tiny_models(Path(tmp) / "repository")) as server:
            yield server.config.grpc_address


def run_sync(url: str, images: list[bytes]) -> float:
    """Seconds for the blocking client to analyze every image, one request after another."""
    from dermassist_client import DermAssistClient

    with DermAssistClient(url, timeout=600) as client:
        started = time.perf_counter()
        for image in images:
            client.analyze(image)
        return time.perf_counter() - started


async def run_async(url: str, images: list[bytes], in_flight: int) -> float:
    """Seconds for the asyncio client to analyze every image with ``in_flight`` requests outstanding."""
    from dermassist_client import AsyncDermAssistClient

    gate = asyncio.Semaphore(in_flight)
    async with AsyncDermAssistClient(url, timeout=600) as client:
        async def one(image: bytes) -> None:
            async with gate:
                await client.analyze(image)

        await client.analyze(images[0])
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in images))
        return time.perf_counter() - started


def main() -> None:
    """Measure both and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gRPC HOST:PORT of a running server (default: start one with the tiny models)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="alternate sync/async this many times; best kept")
    args = parser.parse_args()
    paths = sorted(HAM_DIR.glob("*.jpg"))
    images = [paths[i % len(paths)].read_bytes() for i in range(args.images)]
    with (contextlib.nullcontext(args.url) if args.url else tiny_server()) as url:
        run_sync(url, images[:2])
        sync_s, async_s = [], []
        for _ in range(args.repeats):
            sync_s.append(run_sync(url, images))
            async_s.append(asyncio.run(run_async(url, images, args.in_flight)))
    best_sync, best_async = min(sync_s), min(async_s)
    print(json.dumps({
        "images": args.images, "in_flight": args.in_flight,
        "sync_s": [round(s, 2) for s in sync_s], "async_s": [round(s, 2) for s in async_s],
        "sync_images_per_s": round(args.images / best_sync, 2),
        "async_images_per_s": round(args.images / best_async, 2),
        "speedup": round(best_sync / best_async, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
