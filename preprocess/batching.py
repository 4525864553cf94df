"""One batching helper for the Python-backend adapters (numpy only, after PyTriton's ``@batch``).

An adapter parses each request into a dict of row-aligned inputs (numpy arrays, or lists where rows
differ in shape) or an exception naming what is wrong with it. ``batch_execute`` runs the pure batch
function once over the rows of every good request, splits its row-aligned outputs back, and lets an
optional ``finish`` turn one request's rows into its output arrays (or refuse them). The adapter then
answers each request with its arrays or its own INVALID_ARGUMENT (``triton_responses``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .contract import TensorSpec
from .errors import PreprocessError

Rows = np.ndarray | list
Parsed = Mapping[str, Rows] | Exception
Result = dict[str, Any] | Exception


def _count(rows: Mapping[str, Rows]) -> int:
    counts = {name: len(value) for name, value in rows.items()}
    if len(set(counts.values())) != 1:
        raise PreprocessError(f"batch sizes differ between inputs: {counts}")
    return next(iter(counts.values()))


def _merge(parts: Sequence[Rows]) -> Rows:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
    return [row for part in parts for row in part]


def batch_execute(
    parsed: Sequence[Parsed],
    compute: Callable[..., Mapping[str, Rows]],
    finish: Callable[[dict[str, Rows]], dict[str, Any]] | None = None,
) -> list[Result]:
    """Run ``compute(**merged rows)`` once for every good request and hand each request its share.

    ``compute`` returns row-aligned outputs; when it raises PreprocessError over several requests, each runs alone
    again, so a bad request is refused by its own reason and the others are answered;
    ``finish`` (default: as they are) may reshape one request's rows or raise PreprocessError to refuse
    that request alone.
    """
    results: list[Result] = list(parsed)  # type: ignore[arg-type]
    good: list[tuple[int, int]] = []
    for i, p in enumerate(parsed):
        if isinstance(p, Exception):
            continue
        try:
            good.append((i, _count(p)))
        except PreprocessError as e:
            results[i] = e
    if not good:
        return results
    names = list(parsed[good[0][0]])  # type: ignore[arg-type]
    merged = {name: _merge([parsed[i][name] for i, _ in good]) for name in names}  # type: ignore[index]
    try:
        outputs = compute(**merged)
    except PreprocessError as e:
        if len(good) == 1:
            results[good[0][0]] = e
            return results
        # some request's rows were refused: run each request alone, so only the bad one is refused, by its own values
        for i, _ in good:
            results[i] = batch_execute([parsed[i]], compute, finish)[0]
        return results
    offset = 0
    for i, n in good:
        mine = {name: value[offset : offset + n] for name, value in outputs.items()}
        offset += n
        try:
            results[i] = finish(mine) if finish is not None else mine
        except PreprocessError as e:
            results[i] = e
    return results


def triton_responses(results: Sequence[Result], pb_utils: Any, model: str) -> list:
    """Triton responses: a request's output arrays, or its error as INVALID_ARGUMENT naming the step."""
    responses = []
    for result in results:
        if isinstance(result, Exception):
            error = pb_utils.TritonError(f"{model}: {result}", pb_utils.TritonError.INVALID_ARG)
            responses.append(pb_utils.InferenceResponse(error=error))
        else:
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, np.ascontiguousarray(array)) for name, array in result.items()]))
    return responses


def input_rows(request: Any, pb_utils: Any, inputs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray] | PreprocessError:
    """One request's inputs keyed as the batch function names them, each checked against its spec
    (``expect_rows``), or the PreprocessError that says which one is malformed."""
    try:
        rows = {key: expect_rows(pb_utils.get_input_tensor_by_name(request, spec.name).as_numpy(), spec.name, spec.dims)
                for key, spec in inputs.items()}
    except PreprocessError as e:
        return e
    counts = {spec.name: len(rows[key]) for key, spec in inputs.items()}
    if len(set(counts.values())) > 1:
        return PreprocessError(f"every input must hold one row per image, got {counts}: send the same number of rows "
                               "in each")
    return rows


def expect_rows(array: np.ndarray, name: str, dims: Sequence[int]) -> np.ndarray:
    """The array when its dims after the batch axis are ``dims`` (-1 matches any), else PreprocessError."""
    shape = tuple(array.shape[1:])
    if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape)):
        raise PreprocessError(f"{name} must be (N, {', '.join(map(str, dims))}), got {tuple(array.shape)}")
    return array
