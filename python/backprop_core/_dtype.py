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
* Masked arrays (``numpy.ma.MaskedArray``) are refused with ``TypeError``: converting one would
  silently drop its mask, and computing with masked entries is not defined here. Pass
  ``a.filled(value)`` or ``np.ma.getdata(a)`` to say what the masked entries mean.
* A conversion whose result could not exist (more bytes than the address space holds, as a
  broadcast int8 view converted to float64 can ask for) raises ``MemoryError``, as an allocation
  that fails does, not numpy's ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_ACCEPTED_KINDS = "fiu"
_MAX_BYTES = np.iinfo(np.intp).max  # numpy's limit on an array's size in bytes


def _refuse_masked(name: str, value: Any) -> None:
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: masked arrays are not accepted (converting would drop the mask); pass "
            f"{name}.filled(value) or np.ma.getdata({name}) to say what the masked entries are"
        )


def _check_kind(name: str, value: Any) -> None:
    _refuse_masked(name, value)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected real numbers, got a bool")
    if isinstance(value, int) and not -(2**1023) < value < 2**1024:  # no float can hold it
        raise OverflowError(f"{name}: an integer of {value.bit_length()} bits is too large for a float")
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


def as_array(value: Any, dtype: np.dtype, name: str = "an argument") -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype``: the same object when it already is one.

    ``MemoryError`` when the result could not exist: numpy says ``ValueError("array is too
    big")``, but the request is well formed, only too large, as a failed allocation is."""
    _refuse_masked(name, value)
    a = np.asarray(value)  # no copy of an array; the array of an array-like, as it is
    dtype = np.dtype(dtype)
    if a.size * dtype.itemsize > _MAX_BYTES:  # Python ints: no wrap-around
        raise MemoryError(
            f"{name}: cannot convert an array of shape {a.shape} and dtype {a.dtype} to {dtype}: "
            f"{a.size * dtype.itemsize} bytes is more than an array can hold"
        )
    # C-contiguous and aligned (np.asarray keeps a misaligned array as it is)
    return np.require(np.asarray(a, dtype=dtype, order="C"), requirements=["C", "A"])


def as_arrays(values: Sequence[Any], dtype: np.dtype, name: str = "a list") -> list[np.ndarray]:
    """``as_array`` of every item, named ``name[k]`` in errors."""
    return [as_array(v, dtype, f"{name}[{k}]") for k, v in enumerate(values)]


def named_items(name: str, values: Any) -> list[tuple[str, Any]]:
    """``(name[k], values[k])`` for a list argument such as ``all_weights``."""
    if isinstance(values, np.ndarray) or not isinstance(values, Sequence):
        raise TypeError(f"{name}: expected a list of arrays, got {type(values).__name__}")
    return [(f"{name}[{k}]", v) for k, v in enumerate(values)]


def normalize(names: Sequence[str], values: Sequence[Any]) -> list[np.ndarray]:
    """The policy applied to one call's arguments (the native core's slow path)."""
    dtype = common_dtype(list(zip(names, values)))
    return [as_array(v, dtype, name) for name, v in zip(names, values)]
