"""The model's life cycle: MLP.from_widths (He and Glorot as PyTorch defines them), fit and
predict, state dicts with PyTorch's keys (loaded into torch.nn.Sequential when torch is
installed), and save / load in a format that cannot run code, refusing damaged files."""

from __future__ import annotations

import io
import json
import os
import zipfile

import backprop_core as bc
import numpy as np
import pytest

DTYPES = [np.float64, np.float32]


def params(m: bc.MLP) -> list[np.ndarray]:
    return list(m.weights) + list(m.biases)


def assert_same_model(a: bc.MLP, b: bc.MLP) -> None:
    assert a.dims == b.dims and a.dtype == b.dtype
    for k, (p, q) in enumerate(zip(params(a), params(b))):
        assert p.shape == q.shape and p.dtype == q.dtype, f"parameter {k}"
        assert np.array_equal(p, q), f"parameter {k}"


# ----------------------------------------------------------------------------- from_widths


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_widths_is_the_documented_formula(dtype: type) -> None:
    widths = [3, 7, 5, 2]
    he = bc.MLP.from_widths(widths, init="he", seed=11, dtype=dtype)
    glorot = bc.MLP.from_widths(widths, init="glorot", seed=11, dtype=dtype)
    rng_he, rng_gl = np.random.default_rng(11), np.random.default_rng(11)
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        want_he = rng_he.standard_normal((o, i)) * np.sqrt(2 / i)
        a = np.sqrt(6 / (i + o))
        want_gl = rng_gl.uniform(-a, a, (o, i))
        assert np.array_equal(he.weights[k], want_he.astype(dtype)), f"he layer {k}"
        assert np.array_equal(glorot.weights[k], want_gl.astype(dtype)), f"glorot layer {k}"
        for m in (he, glorot):
            assert m.biases[k].shape == (o, 1) and not m.biases[k].any()
            assert m.weights[k].dtype == dtype
    assert he.dims == widths and he.dtype == dtype


def test_from_widths_seeded() -> None:
    a = bc.MLP.from_widths([4, 9, 3], seed=5)
    assert_same_model(a, bc.MLP.from_widths([4, 9, 3], seed=5))
    assert not np.array_equal(a.weights[0], bc.MLP.from_widths([4, 9, 3], seed=6).weights[0])
    f32 = bc.MLP.from_widths([4, 9, 3], seed=5, dtype=np.float32)
    for p, q in zip(params(a), params(f32)):
        assert np.array_equal(p.astype(np.float32), q)  # the float64 draws, rounded


def test_from_widths_scales() -> None:
    """Large layers: the sample statistics are the formulas' (He: std sqrt(2 / fan_in), fan_in
    the columns; Glorot: within +-sqrt(6 / (fan_in + fan_out)), variance a^2 / 3)."""
    he = bc.MLP.from_widths([300, 500, 20], init="he", seed=3).weights
    assert he[0].std() == pytest.approx(np.sqrt(2 / 300), rel=0.01)
    assert he[1].std() == pytest.approx(np.sqrt(2 / 500), rel=0.03)
    assert abs(he[0].mean()) < 0.01 * np.sqrt(2 / 300)
    gl = bc.MLP.from_widths([300, 500, 20], init="glorot", seed=3).weights
    for w, (i, o) in zip(gl, [(300, 500), (500, 20)]):
        a = np.sqrt(6 / (i + o))
        assert np.abs(w).max() <= a and np.abs(w).max() > 0.999 * a
        assert w.var() == pytest.approx(a * a / 3, rel=0.03)


def test_from_widths_matches_torch_init_scales() -> None:
    """The same distributions as torch.nn.init.kaiming_normal_(nonlinearity='relu') and
    xavier_uniform_ on a layer of the same shape (different generators: compared by statistics;
    fan_in and fan_out differ by 4x, so a swapped fan would fail)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    o, i = 800, 200
    t = torch.empty(o, i, dtype=torch.float64)
    ours = bc.MLP.from_widths([i, o], init="he", seed=0).weights[0]
    torch.nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert ours.std() == pytest.approx(t.std().item(), rel=0.01)
    ours = bc.MLP.from_widths([i, o], init="glorot", seed=0).weights[0]
    torch.nn.init.xavier_uniform_(t)
    assert np.abs(ours).max() == pytest.approx(t.abs().max().item(), rel=1e-3)
    assert ours.std() == pytest.approx(t.std().item(), rel=0.01)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(widths=[3]), ValueError, "widths: expected at least two"),
        (dict(widths=[3, 0, 1]), ValueError, "widths: expected ints >= 1"),
        (dict(widths=[3, 2.0, 1]), ValueError, "widths: expected ints >= 1"),
        (dict(widths=[3, True, 1]), ValueError, "widths: expected ints >= 1"),
        (dict(widths=3), TypeError, "widths: expected a list or tuple of ints, got int"),
        (dict(widths="31"), TypeError, "widths: expected a list or tuple"),
        (dict(widths=[3, 1], init="kaiming"), ValueError, "init: expected one of"),
        (dict(widths=[3, 1], seed=-1), TypeError, "seed: expected an int >= 0"),
        (dict(widths=[3, 1], seed=1.5), TypeError, "seed: expected an int >= 0"),
        (dict(widths=[3, 1], dtype=np.int64), TypeError, "dtype: expected float32 or float64"),
        (dict(widths=[3, 1], dtype="float16"), TypeError, "dtype: expected float32 or float64"),
    ],
)
def test_from_widths_errors(kwargs: dict, error: type, match: str) -> None:
    widths = kwargs.pop("widths")
    with pytest.raises(error, match=match):
        bc.MLP.from_widths(widths, **kwargs)


# ----------------------------------------------------------------------------- fit, predict


def test_fit_and_predict_delegate() -> None:
    x = np.linspace(-1, 1, 64).reshape(1, -1)
    y = np.sin(3 * x)
    a, b = bc.MLP.from_widths([1, 16, 1], seed=2), bc.MLP.from_widths([1, 16, 1], seed=2)
    options = dict(optimizer="adam", learning_rate=0.01, epochs=30, batch_size=16, seed=4)
    history = a.fit(x, y, **options)
    expected = bc.fit(b, x, y, **options)
    assert history == expected and history.epochs == 30
    assert_same_model(a, b)
    assert np.array_equal(a.predict(x), a.forward(x).net_output)
    assert a.predict(x).shape == (1, 64)


# ----------------------------------------------------------------------------- state dicts


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_layout_and_round_trip(dtype: type) -> None:
    m = bc.MLP.from_widths([3, 6, 5, 2], init="glorot", seed=1, dtype=dtype)
    m.biases[1][:] = np.arange(5, dtype=dtype).reshape(5, 1)
    d = m.state_dict()
    assert list(d) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [v.shape for v in d.values()] == [(6, 3), (6,), (5, 6), (5,), (2, 5), (2,)]
    assert all(v.dtype == dtype for v in d.values())
    assert np.array_equal(d["2.bias"], np.arange(5))
    d["0.weight"][:] = 0  # a copy: the model keeps its weights
    assert m.weights[0].any()
    back = bc.MLP.from_state_dict(m.state_dict())
    assert_same_model(back, m)  # biases as columns, as from_widths makes them
    # key order does not matter
    shuffled = dict(reversed(list(m.state_dict().items())))
    assert_same_model(bc.MLP.from_state_dict(shuffled), m)


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda d: d.pop("2.bias"), ValueError, "key '2.bias' is missing"),
        (lambda d: d.update({"1.weight": np.ones((2, 2))}), ValueError, r"positions \[0, 1, 2\]"),
        (lambda d: d.update({"fc.weight": np.ones(1)}), ValueError, "unexpected key 'fc.weight'"),
        (lambda d: d.update({"4.weight": d.pop("2.weight"), "4.bias": d.pop("2.bias")}),
         ValueError, r"positions \[0, 4\]; expected \[0, 2\]"),
        (lambda d: d.update({"0.bias": np.ones((4, 1))}), ValueError,
         r"state_dict\['0.bias'\]: expected shape \(4,\)"),
        (lambda d: d.update({"2.weight": np.ones((2, 5))}), ValueError,
         r"state_dict\['2.weight'\]: shape \(2, 5\) takes 5 inputs, but '0.weight' \(4, 3\)"),
        (lambda d: d.update({"0.weight": np.ones(12)}), ValueError, "expected 2 dimensions"),
        (lambda d: d.update({"0.bias": np.ones(4, np.float32)}), TypeError, "one dtype"),
        (lambda d: d.update({"0.bias": np.ones(4, int)}), TypeError,
         r"state_dict\['0.bias'\]: expected float32 or float64, got dtype int64"),
        (lambda d: d.clear(), ValueError, "empty"),
    ],
)
def test_from_state_dict_errors(edit, error: type, match: str) -> None:  # type: ignore[no-untyped-def]
    d = bc.MLP.from_widths([3, 4, 2], seed=0).state_dict()
    edit(d)
    with pytest.raises(error, match=match):
        bc.MLP.from_state_dict(d)


def test_from_state_dict_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="state_dict: expected a mapping"):
        bc.MLP.from_state_dict([np.ones((2, 2))])


def torch_sequential(torch, widths: list[int], dtype):  # type: ignore[no-untyped-def]
    layers: list = []
    for k, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [torch.nn.Linear(i, o, dtype=dtype)] + ([torch.nn.ReLU()] if k < len(widths) - 2 else [])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_into_torch_and_back(dtype: type) -> None:
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    widths = [4, 16, 8, 3]
    x = np.random.default_rng(0).standard_normal((4, 50)).astype(dtype)

    # ours -> torch: load_state_dict(strict) accepts the keys and shapes; the same outputs
    ours = bc.MLP.from_widths(widths, seed=7, dtype=dtype)
    ours.biases[0][:] = 0.1  # nonzero biases, so the bias keys are tested
    net = torch_sequential(torch, widths, tdtype)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    with torch.no_grad():
        out = net(torch.from_numpy(x.T.copy())).numpy().T
    np.testing.assert_allclose(out, ours.predict(x), rtol=rtol, atol=rtol * np.abs(out).max())

    # torch -> ours: PyTorch's own initialisation, its state_dict given as is (tensors)
    torch.manual_seed(3)
    net = torch_sequential(torch, widths, tdtype)
    back = bc.MLP.from_state_dict(net.state_dict())
    assert back.dtype == dtype and back.dims == widths
    with torch.no_grad():
        out = net(torch.from_numpy(x.T.copy())).numpy().T
    np.testing.assert_allclose(back.predict(x), out, rtol=rtol, atol=rtol * np.abs(out).max())
    # and round trip through torch: bit for bit
    net.load_state_dict({k: torch.from_numpy(v) for k, v in back.state_dict().items()})
    assert_same_model(bc.MLP.from_state_dict(net.state_dict()), back)


def test_from_state_dict_tensor_that_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    net = torch_sequential(torch, [2, 3, 1], torch.float64)
    with pytest.raises(TypeError, match=r"state_dict\['0.weight'\]: cannot be read as an array"):
        bc.MLP.from_state_dict(dict(net.named_parameters()))


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_round_trip(tmp_path, dtype: type) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    W = [rng.standard_normal((5, 3)), rng.standard_normal((2, 5))]
    b = [rng.standard_normal(5), rng.standard_normal((2, 1))]  # a flat bias and a column
    m = bc.MLP([w.astype(dtype) for w in W], [v.astype(dtype) for v in b])
    path = tmp_path / "model.bin"  # the name as given: no suffix appended
    m.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]  # no temporary file left
    back = bc.MLP.load(path)
    assert_same_model(back, m)
    assert [v.shape for v in back.biases] == [(5,), (2, 1)]
    assert bc.MLP.load(str(path)).dims == [3, 5, 2]
    # plain numpy reads it, without pickle: the state dict and the header
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
        assert header == {"format": "backprop_core.MLP", "version": 1,
                          "dtype": np.dtype(dtype).name, "dims": [3, 5, 2],
                          "bias_shapes": [[5], [2, 1]]}
        for k, v in m.state_dict().items():
            assert np.array_equal(z[k], v) and z[k].dtype == dtype
    # a binary file object works too
    buf = io.BytesIO()
    m.save(buf)
    assert_same_model(bc.MLP.load(io.BytesIO(buf.getvalue())), m)
    assert buf.getvalue() == path.read_bytes()


def test_save_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = bc.MLP.from_widths([2, 3, 1], seed=0)
    path = tmp_path / "m.npz"
    m.save(path)
    before = path.read_bytes()
    with pytest.raises(FileNotFoundError):
        m.save(tmp_path / "missing" / "m.npz")

    class Failing(bc.MLP):
        @property
        def weights(self):  # type: ignore[no-untyped-def,override]
            raise KeyboardInterrupt  # as if interrupted while the file is written

    broken = Failing.from_widths([2, 3, 1], seed=1)
    with pytest.raises(KeyboardInterrupt):
        broken.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def model_bytes(dtype: type = np.float64) -> tuple[bc.MLP, bytes]:
    m = bc.MLP.from_widths([3, 4, 2], seed=1, dtype=dtype)
    m.biases[0][:] = 0.5
    buf = io.BytesIO()
    m.save(buf)
    return m, buf.getvalue()


def test_truncated_files_are_refused() -> None:
    m, data = model_bytes()
    for n in range(len(data)):
        with pytest.raises(ValueError, match="not a valid backprop_core model file"):
            bc.MLP.load(io.BytesIO(data[:n]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_changed_bytes_are_refused_or_harmless(dtype: type) -> None:
    """Every byte of the file changed in turn (its lowest bit, its highest, all 8): the load fails with ValueError (the zip's CRC-32s,
    its structure, or our checks) or gives the very same model (bits zipfile does not read, such
    as the local headers' copies of the CRC). Never another model, never another exception."""
    m, data = model_bytes(dtype)
    refused = harmless = 0
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(data)
            changed[i] ^= flip
            try:
                back = bc.MLP.load(io.BytesIO(bytes(changed)))
            except ValueError as e:
                assert "not a valid backprop_core model file" in str(e) or "version" in str(e)
                refused += 1
                continue
            assert_same_model(back, m)
            harmless += 1
    assert refused > 0.6 * 3 * len(data)  # the data itself is covered: most flips are caught
    assert refused + harmless == 3 * len(data)


def write_npz(path, arrays: dict) -> None:  # type: ignore[no-untyped-def]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def header_bytes(**fields) -> np.ndarray:  # type: ignore[no-untyped-def]
    h = {"format": "backprop_core.MLP", "version": 1, "dtype": "float64", "dims": [3, 4, 2],
         "bias_shapes": [[4, 1], [2, 1]]}
    h.update(fields)
    return np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)


def good_arrays() -> dict:
    m = bc.MLP.from_widths([3, 4, 2], seed=1)
    return {"header": header_bytes(), **m.state_dict()}


def edited(**changes) -> dict:  # type: ignore[no-untyped-def]
    a = good_arrays()
    for k, v in changes.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    return a


@pytest.mark.parametrize(
    "arrays, match",
    [
        (edited(header=None), "no 'header'"),
        (edited(header=np.frombuffer(b"\xff\xfe", dtype=np.uint8)), "'header' is not JSON"),
        (edited(header=np.frombuffer(b"{not json", dtype=np.uint8)), "'header' is not JSON"),
        (edited(header=np.frombuffer(b"[1, 2]", dtype=np.uint8)), "'header' does not name the format"),
        (edited(header=np.array([1.0, 2.0])), "'header' is not UTF-8 bytes"),
        (edited(header=header_bytes(format="other")), "'header' does not name the format"),
        (edited(header=header_bytes(version="1")), "'header' has no integer version"),
        (edited(header=header_bytes(version=True)), "'header' has no integer version"),
        (edited(header=header_bytes(dims=[3, 4])), "'header' fields are missing or of the wrong type"),
        (edited(header=header_bytes(dtype="float16")), "'header' fields are missing or of the wrong type"),
        (edited(header=header_bytes(bias_shapes=[[4, 2], [2, 1]])),
         r"layer 0: bias shape \[4, 2\] in the header does not fit 4 outputs"),
        (edited(header=header_bytes(dims=[3, 5, 2])),
         r"layer 0: shapes \(4, 3\), \(4,\); the header's dims \[3, 5, 2\] need \(5, 3\)"),
        (edited(**{"2.bias": None}), r"arrays .* do not match the header's"),
        (edited(extra=np.zeros(2)), r"arrays .* do not match the header's"),
        (edited(**{"0.weight": np.zeros((4, 3), np.float32)}),
         "layer 0: dtypes float32, float64; the header says float64"),
        (edited(**{"0.bias": np.zeros(4, ">f8")}), "layer 0: dtypes float64, >f8; the header says float64"),
    ],
)
def test_malformed_files_are_refused(tmp_path, arrays: dict, match: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.npz"
    write_npz(path, arrays)
    with pytest.raises(ValueError, match=rf"m.npz: not a valid backprop_core model file: {match}"):
        bc.MLP.load(path)


def test_the_good_arrays_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The hand-written files above differ from this valid one only in what each case edits."""
    path = tmp_path / "m.npz"
    write_npz(path, good_arrays())
    assert_same_model(bc.MLP.load(path), bc.MLP.from_widths([3, 4, 2], seed=1))


@pytest.mark.parametrize("version, newer", [(2, True), (0, False), (-1, False)])
def test_unknown_versions_are_refused(tmp_path, version: int, newer: bool) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.npz"
    write_npz(path, edited(header=header_bytes(version=version)))
    with pytest.raises(ValueError, match=f"format version {version} is not supported") as e:
        bc.MLP.load(path)
    assert ("newer" in str(e.value)) == newer and "reads version 1" in str(e.value)


def test_pickled_content_is_never_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An object array (numpy pickles those) whose unpickling would create a directory: refused,
    and the directory does not appear. A pickle file, a bare .npy array and text are refused."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.mkdir, (str(marker),))

    arrays = good_arrays()
    arrays["0.bias"] = np.array([Payload()], dtype=object)
    path = tmp_path / "evil.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # numpy pickles the object array into the zip
    with pytest.raises(ValueError, match="not a valid backprop_core model file"):
        bc.MLP.load(path)
    assert not marker.exists()

    import pickle

    (tmp_path / "p").write_bytes(pickle.dumps(Payload()))
    np.save(tmp_path / "a.npy", np.ones(3))
    (tmp_path / "t").write_text("hello")
    for name, match in [("p", "pickled"), ("a.npy", "not an .npz archive"), ("t", "")]:
        with pytest.raises(ValueError, match=f"not a valid backprop_core model file: .*{match}"):
            bc.MLP.load(tmp_path / name)
    assert not marker.exists()


def test_missing_file_is_an_os_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        bc.MLP.load(tmp_path / "nothing.npz")
    with pytest.raises(IsADirectoryError):
        bc.MLP.load(tmp_path)


def test_zip_written_by_others_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "z.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.npy", b"not an npy file")
    with pytest.raises(ValueError, match="model file: 'header' is not a .npy array"):
        bc.MLP.load(path)
