"""The model outside training: built from layer widths, PyTorch-style state dicts, and a file
format that cannot run code. :class:`backprop_core.MLP` delegates to these functions.

Initialisation (``init=``), as PyTorch's ``torch.nn.init`` defines it, every layer alike, biases 0:

* ``"he"`` (Kaiming normal, ``kaiming_normal_(W, mode="fan_in", nonlinearity="relu")``):
  ``W_k ~ N(0, 2 / D_k)``, that is ``rng.standard_normal((D_{k+1}, D_k)) * sqrt(2 / D_k)``.
* ``"glorot"`` (Xavier uniform, ``xavier_uniform_(W, gain=1)``; scikit-learn's choice for ReLU
  networks): ``W_k ~ U(-a, a)`` with ``a = sqrt(6 / (D_k + D_{k+1}))``, that is
  ``rng.uniform(-a, a, (D_{k+1}, D_k))``.

``rng = numpy.random.default_rng(seed)`` draws the layers in order, in float64, and the result is
rounded to the requested dtype: a seed gives the same network in float32 and float64 up to that
rounding.

File format, version 1 (``MLP.save`` / ``MLP.load``): an uncompressed numpy ``.npz`` (a zip of ``.npy``
files; numpy is the only reader needed, and it is read with ``allow_pickle=False``, so a file
cannot carry code) holding

* ``header``: UTF-8 JSON as a uint8 array, ``{"format": "backprop_core.MLP", "version": 1,
  "dtype": "float32" | "float64", "dims": [D_0, ..., D_{K+1}], "bias_shapes": [[...], ...]}``;
* the state dict's arrays under its keys (``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...):
  weights (D_{k+1}, D_k), biases 1-D; ``bias_shapes`` restores the shapes the model held.

A reader refuses a newer version, and any file whose header or arrays disagree, with
``ValueError``; a damaged zip (truncated, or a byte changed: each member carries a CRC-32) too.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import IO, Any, TypeVar, Union

import numpy as np

from . import _train
from ._train_results import FitHistory

INITS = ("he", "glorot")
FORMAT = "backprop_core.MLP"
VERSION = 1
HEADER = "header"
_KEY = re.compile(r"^(\d+)\.(weight|bias)$")
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]
M = TypeVar("M", bound="ModelMethods")


def _check_dtype(dtype: Any) -> np.dtype:
    d: np.dtype | None
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d is None or d not in _DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}")
    return d


def init_parameters(
    widths: Sequence[int], *, init: str = "he", seed: int = 0, dtype: Any = np.float64
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of a ReLU MLP of the given widths (module docstring: the formulas)."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"widths: expected a list or tuple of ints, got {type(widths).__name__}")
    widths = list(widths)
    for n in widths:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"widths: expected ints >= 1, got {widths!r}")
    if len(widths) < 2:
        raise ValueError(f"widths: expected at least two widths (input, output), got {widths!r}")
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed: expected an int >= 0, got {seed!r}")
    d = _check_dtype(dtype)
    rng = np.random.default_rng(int(seed))
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        if init == "he":
            w = rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)
        else:
            a = np.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-a, a, (fan_out, fan_in))
        weights.append(w.astype(d))
        biases.append(np.zeros((fan_out, 1), dtype=d))
    return weights, biases


def make_state_dict(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """``{"0.weight": W_0, "0.bias": b_0, "2.weight": W_1, ...}``: copies, biases 1-D."""
    d: dict[str, np.ndarray] = {}
    for k, (w, b) in enumerate(zip(weights, biases)):
        d[f"{2 * k}.weight"] = np.array(w, copy=True)
        d[f"{2 * k}.bias"] = np.array(b, copy=True).reshape(-1)
    return d


def _as_array(key: str, value: Any) -> np.ndarray:
    try:
        a = np.asarray(value)
    except (RuntimeError, TypeError, ValueError) as e:  # e.g. a tensor that requires grad
        raise TypeError(f"state_dict[{key!r}]: cannot be read as an array ({e})") from None
    if a.dtype not in _DTYPES:
        raise TypeError(f"state_dict[{key!r}]: expected float32 or float64, got dtype {a.dtype}")
    return a


def parameters_from_state_dict(d: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases (as columns) from a state dict of ``nn.Sequential(Linear, ReLU, ...,
    Linear)``: keys ``"{2k}.weight"`` of shape (D_{k+1}, D_k) and ``"{2k}.bias"`` of shape
    (D_{k+1},), k = 0 .. K; numpy arrays or anything ``numpy.asarray`` reads (CPU tensors)."""
    if not isinstance(d, Mapping):
        raise TypeError(f"state_dict: expected a mapping (dict) of arrays, got {type(d).__name__}")
    found: dict[int, dict[str, Any]] = {}
    for key, value in d.items():
        m = _KEY.match(key) if isinstance(key, str) else None
        if m is None:
            raise ValueError(
                f"state_dict: unexpected key {key!r}; expected the keys of nn.Sequential(Linear, "
                "ReLU, ..., Linear): '0.weight', '0.bias', '2.weight', ..."
            )
        found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not found:
        raise ValueError("state_dict: empty; expected '0.weight', '0.bias', ...")
    layers = sorted(found)
    expected = list(range(0, 2 * len(layers), 2))
    if layers != expected:
        raise ValueError(
            f"state_dict: Linear layers at positions {layers}; expected {expected} (Linear and "
            "ReLU alternating, starting and ending with Linear)"
        )
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for i in layers:
        for part in ("weight", "bias"):
            if part not in found[i]:
                raise ValueError(f"state_dict: key '{i}.{part}' is missing")
        w = _as_array(f"{i}.weight", found[i]["weight"])
        b = _as_array(f"{i}.bias", found[i]["bias"])
        if w.ndim != 2:
            raise ValueError(f"state_dict['{i}.weight']: expected 2 dimensions, got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"state_dict['{i}.bias']: expected shape ({w.shape[0]},) (the rows of "
                f"'{i}.weight', {w.shape}), got {b.shape}"
            )
        if weights and w.shape[1] != weights[-1].shape[0]:
            raise ValueError(
                f"state_dict['{i}.weight']: shape {w.shape} takes {w.shape[1]} inputs, but "
                f"'{i - 2}.weight' {weights[-1].shape} gives {weights[-1].shape[0]}"
            )
        if w.dtype != b.dtype or (weights and w.dtype != weights[0].dtype):
            raise TypeError(
                f"state_dict: every array must have one dtype; '{i}.weight' is {w.dtype}, "
                f"'{i}.bias' is {b.dtype}, '0.weight' is {(weights or [w])[0].dtype}"
            )
        weights.append(np.array(w, copy=True))
        biases.append(np.array(b, copy=True).reshape(-1, 1))
    return weights, biases


# ----------------------------------------------------------------------------- files


def write_file(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], path: PathOrFile) -> None:
    """Write the model to ``path`` (module docstring: the format). A path is written whole or not
    at all (a temporary file in the same directory, then renamed over it)."""
    arrays = make_state_dict(weights, biases)
    dims = [int(weights[0].shape[1])] + [int(w.shape[0]) for w in weights]
    header = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": str(np.dtype(weights[0].dtype)),
        "dims": dims,
        "bias_shapes": [list(b.shape) for b in biases],
    }
    payload: dict[str, Any] = {HEADER: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    payload.update(arrays)
    if hasattr(path, "write"):
        np.savez(path, **payload)
        return
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".backprop_core-", suffix=".npz",
                               dir=os.path.dirname(os.path.abspath(target)))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)  # to an open file: no ".npz" appended to the name
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


class _Malformed(Exception):
    """The file is readable but is not what a model file must be."""


class _Unsupported(Exception):
    """A model file of a format version this reader does not know."""


def _read_header(raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Malformed(f"'header' is not UTF-8 bytes (dtype {raw.dtype}, shape {raw.shape})")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Malformed(f"'header' is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Malformed(f"'header' does not name the format {FORMAT!r}")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _Malformed(f"'header' has no integer version (got {version!r})")
    if version != VERSION:
        newer = " (written by a newer backprop_core?)" if version > VERSION else ""
        raise _Unsupported(
            f"format version {version} is not supported{newer}: this backprop_core reads "
            f"version {VERSION}"
        )
    dims, shapes = header.get("dims"), header.get("bias_shapes")
    if (
        header.get("dtype") not in ("float32", "float64")
        or not isinstance(dims, list)
        or len(dims) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in dims)
        or not isinstance(shapes, list)
        or len(shapes) != len(dims) - 1
        or not all(isinstance(s, list) and all(isinstance(n, int) for n in s) for s in shapes)
    ):
        raise _Malformed(f"'header' fields are missing or of the wrong type: {header!r}")
    return header


def _member(z: Any, key: str) -> np.ndarray:
    a = z[key]
    if not isinstance(a, np.ndarray):  # numpy returns a member that is not .npy as raw bytes
        raise _Malformed(f"{key!r} is not a .npy array")
    return a


def read_file(path: PathOrFile) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read a file written by :func:`write_file`: weights and biases (in their saved shapes)."""
    name = getattr(path, "name", "<file>") if hasattr(path, "read") else os.fspath(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array
            raise _Malformed("not an .npz archive")
        with z:
            files = set(z.files)
            if HEADER not in files:
                raise _Malformed("no 'header'")
            header = _read_header(_member(z, HEADER))
            dims, dtype = header["dims"], np.dtype(header["dtype"])
            K = len(dims) - 1
            expected = {HEADER} | {f"{2 * k}.{p}" for k in range(K) for p in ("weight", "bias")}
            if files != expected:
                raise _Malformed(f"arrays {sorted(files - {HEADER})} do not match the "
                                 f"header's {sorted(expected - {HEADER})}")
            weights, biases = [], []
            for k in range(K):
                w, b = _member(z, f"{2 * k}.weight"), _member(z, f"{2 * k}.bias")
                shape = tuple(header["bias_shapes"][k])
                if w.dtype != dtype or b.dtype != dtype:
                    raise _Malformed(f"layer {k}: dtypes {w.dtype}, {b.dtype}; the header "
                                     f"says {dtype}")
                if w.shape != (dims[k + 1], dims[k]) or b.shape != (dims[k + 1],):
                    raise _Malformed(f"layer {k}: shapes {w.shape}, {b.shape}; the header's "
                                     f"dims {dims} need {(dims[k + 1], dims[k])}, "
                                     f"{(dims[k + 1],)}")
                if int(np.prod(shape)) != dims[k + 1] or len(shape) not in (1, 2) or (
                        len(shape) == 2 and shape[1] != 1):
                    raise _Malformed(f"layer {k}: bias shape {list(shape)} in the header does "
                                     f"not fit {dims[k + 1]} outputs")
                weights.append(w)
                biases.append(b.reshape(shape))
    except _Unsupported as e:
        raise ValueError(f"{name!s}: {e}") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (_Malformed, zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError,
            NotImplementedError, RuntimeError, struct.error) as e:  # zipfile's and numpy's
        why = str(e) if isinstance(e, _Malformed) else f"{type(e).__name__}: {e}"
        raise ValueError(f"{name!s}: not a valid backprop_core model file: {why}") from None
    return weights, biases


# ----------------------------------------------------------------------------- on the model


class ModelMethods:
    """What :class:`backprop_core.MLP` inherits from here: construction from widths, ``fit``,
    ``predict``, state dicts and files, each delegating to the functions above (or to
    :func:`backprop_core.fit`). The subclass provides ``weights``, ``biases``, ``forward`` and a
    constructor ``cls(all_weights, all_biases)``."""

    __slots__ = ()

    # Provided by the model (declared here for type checkers).
    def __init__(self, all_weights: Sequence[Any], all_biases: Sequence[Any]) -> None:
        raise NotImplementedError

    @property
    def weights(self) -> list[np.ndarray]:
        raise NotImplementedError

    @property
    def biases(self) -> list[np.ndarray]:
        raise NotImplementedError

    def forward(self, net_input: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def from_widths(
        cls: type[M],
        widths: Sequence[int],
        *,
        init: str = "he",
        seed: int = 0,
        dtype: Any = np.float64,
    ) -> M:
        """A new model of the given widths, initialised as PyTorch's ``torch.nn.init`` does.

        Parameters
        ----------
        widths : list of int
            ``[D_0, D_1, ..., D_{K+1}]``: inputs, hidden widths, outputs.
        init : {"he", "glorot"}, default "he"
            ``"he"`` (Kaiming normal, fan-in, ReLU gain): ``W_k ~ N(0, 2 / D_k)``;
            ``"glorot"`` (Xavier uniform): ``W_k ~ U(-a, a)``, ``a = sqrt(6 / (D_k + D_{k+1}))``.
            Every layer alike; biases 0, of shape (D_{k+1}, 1).
        seed : int, default 0
            Seed of ``numpy.random.default_rng``, which draws the layers in order in float64.
        dtype : {float64, float32}, default float64
            The model's dtype (the float64 draws rounded to it).

        Returns
        -------
        MLP
        """
        return cls(*init_parameters(widths, init=init, seed=seed, dtype=dtype))

    def fit(self, net_input: Any, y: Any, **options: Any) -> FitHistory:
        """Train in place: :func:`backprop_core.fit` (its keyword options) on this model.

        Parameters
        ----------
        net_input : array_like, shape (D_0, N)
            Samples as columns.
        y : array_like
            Targets, or class labels for ``loss="cross_entropy"``.
        **options
            :func:`backprop_core.fit`'s keyword options.

        Returns
        -------
        FitHistory
        """
        return _train.fit(self, net_input, y, **options)

    def predict(self, net_input: Any) -> np.ndarray:
        """The network's output ``f_K``, shape (D_{K+1}, N): for a model trained with
        ``loss="cross_entropy"``, the logits (``argmax`` over axis 0 gives the classes).

        Parameters
        ----------
        net_input : array_like, shape (D_0, N)
            Samples as columns, of the model's dtype.

        Returns
        -------
        ndarray
        """
        out: np.ndarray = self.forward(net_input).net_output
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under the keys of PyTorch's
        ``nn.Sequential(Linear, ReLU, ..., Linear)``: ``"0.weight"`` (D_1, D_0), ``"0.bias"``
        (D_1,), ``"2.weight"``, ... (biases 1-D).

        Returns
        -------
        dict of str to ndarray
        """
        return make_state_dict(self.weights, self.biases)

    @classmethod
    def from_state_dict(cls: type[M], state_dict: Any) -> M:
        """A new model from :meth:`state_dict`'s layout, e.g. a PyTorch
        ``nn.Sequential(Linear, ReLU, ..., Linear).state_dict()`` (CPU tensors are read with
        ``numpy.asarray``; PyTorch is not imported). Biases become columns (D_{k+1}, 1).

        Parameters
        ----------
        state_dict : mapping of str to array_like
            ``"{2k}.weight"`` and ``"{2k}.bias"`` for k = 0 .. K, float32 or float64.

        Returns
        -------
        MLP
        """
        return cls(*parameters_from_state_dict(state_dict))

    def save(self, path: Any) -> None:
        """Write the model to a file that cannot run code when read: numpy ``.npz`` (read with
        ``allow_pickle=False``), a versioned JSON header and the :meth:`state_dict` arrays.

        Parameters
        ----------
        path : str, os.PathLike or binary file
            Written whole or not at all (the name is used as given, no suffix added).
        """
        write_file(self.weights, self.biases, path)

    @classmethod
    def load(cls: type[M], path: Any) -> M:
        """Read a model written by :meth:`save`, as it was saved.

        Parameters
        ----------
        path : str, os.PathLike or binary file

        Returns
        -------
        MLP

        Raises
        ------
        ValueError
            A file that is not a model file, damaged (truncated, changed bytes), or of a format
            version this backprop_core does not read.
        """
        return cls(*read_file(path))
