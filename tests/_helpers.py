"""One comparison helper and the tolerance table shared by every test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Native against reference, relative to the size of the terms summed (see assert_close).
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def assert_close(
    actual: Any, expected: Any, name: str, rtol: float, scale: Any = None
) -> None:
    """Shape and dtype first, then values.

    A value may differ by ``rtol * (|expected| + scale)``: ``scale`` is the sum of the magnitudes
    of the terms that were added to make the value (a sum over samples or a matrix product), the
    quantity rounding error is proportional to, so cancellation in a sum does not fail a correct
    implementation that adds in another order. Without ``scale`` the test is plainly relative.
    Below the smallest normal number (``finfo.tiny``) rounding is absolute, not relative, so
    differences under ``tiny`` always pass.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: judged below
        bound = rtol * (np.abs(expected) + (0 if scale is None else np.abs(scale)))
        bound = bound + np.finfo(expected.dtype).tiny if expected.dtype.kind == "f" else bound
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    same_nonfinite = ~np.isfinite(expected) & (
        (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    )
    bad = ~((err <= bound) | same_nonfinite)
    err = np.where(np.isnan(err), np.inf, err)
    assert not bad.any(), (
        f"{name}: {bad.sum()} of {bad.size} values differ; worst at {np.argmax(err * bad)}: "
        f"{actual.ravel()[np.argmax(err * bad)]!r} vs {expected.ravel()[np.argmax(err * bad)]!r}"
    )


def assert_all_close(
    actual: Sequence[Any], expected: Sequence[Any], name: str, rtol: float, scales: Any = None
) -> None:
    assert len(actual) == len(expected), f"{name}: {len(actual)} arrays != {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, f"{name}[{k}]", rtol, None if scales is None else scales[k])


def central_difference(loss: Any, params: np.ndarray, step: float) -> np.ndarray:
    """d loss / d params by central differences, one entry at a time on a float64 copy."""
    params = np.array(params, dtype=np.float64)
    grad = np.empty_like(params)
    for i in np.ndindex(params.shape):
        saved = params[i]
        params[i] = saved + step
        up = loss(params)
        params[i] = saved - step
        down = loss(params)
        params[i] = saved
        grad[i] = (up - down) / (2 * step)
    return grad
