"""The dtype policy, written once for every public function (native and reference).

* float32 and float64 are computed in that dtype; the result has the call's dtype.
* Arguments of different dtypes follow numpy's promotion (``np.result_type``): float32 with
  float64 computes in float64, and Python scalars are weak (``y=30.0`` keeps a float32 network
  float32). A call whose arrays are all integers computes in float64, as ``np.sin`` does.
* float16 computes in float32 (a safe cast). Everything else is rejected with ``TypeError``:
  bool, complex, object, string, datetime and longdouble arrays (longdouble cannot be held
  without an unsafe cast).
* Any other layout (transposed, strided, negative strides, Fortran order, read-only) is accepted;
  arrays that are not C-contiguous of the call's dtype are copied, never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_ACCEPTED_KINDS = "fiu"


def _check_kind(name: str, value: Any) -> None:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected real numbers, got a bool")
    if isinstance(value, (int, float)):
        return
    dtype = np.asarray(value).dtype
    if dtype.kind not in _ACCEPTED_KINDS or (dtype.kind == "f" and dtype.itemsize > 8):
        raise TypeError(
            f"{name}: expected an array of float32, float64 or integers, got dtype {dtype}"
        )


def common_dtype(named: Iterable[tuple[str, Any]]) -> np.dtype:
    """The dtype a call computes in, after checking every argument's kind."""
    values = []
    for name, value in named:
        _check_kind(name, value)
        values.append(value if isinstance(value, (int, float)) else np.asarray(value))
    if not values:
        return np.dtype(np.float64)
    dtype = np.result_type(*values)
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def as_array(value: Any, dtype: np.dtype) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype``: the same object when it already is one."""
    return np.asarray(value, dtype=dtype, order="C")


def as_arrays(values: Sequence[Any], dtype: np.dtype) -> list[np.ndarray]:
    return [as_array(v, dtype) for v in values]


def named_items(name: str, values: Any) -> list[tuple[str, Any]]:
    """``(name[k], values[k])`` for a list argument such as ``all_weights``."""
    if isinstance(values, np.ndarray) or not isinstance(values, Sequence):
        raise TypeError(f"{name}: expected a list of arrays, got {type(values).__name__}")
    return [(f"{name}[{k}]", v) for k, v in enumerate(values)]


def normalize(names: Sequence[str], values: Sequence[Any]) -> list[np.ndarray]:
    """The policy applied to one call's arguments (the native core's slow path)."""
    dtype = common_dtype(list(zip(names, values)))
    return [as_array(v, dtype) for v in values]
