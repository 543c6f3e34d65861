"""backprop_core.sklearn's estimators (skipped without scikit-learn): scikit-learn's own estimator
checks, the same training as scikit-learn's MLPRegressor / MLPClassifier from the same weights,
partial_fit's clock, Pipeline and GridSearchCV(n_jobs=2), and digits at >= 95%."""

from __future__ import annotations

import doctest
import pickle
import re
import warnings
from pathlib import Path

import backprop_core as bc
import numpy as np
import pytest

pytest.importorskip("sklearn", reason="backprop_core.sklearn needs scikit-learn (the extra)")

from backprop_core.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

# No check is expected to fail: none is listed here. ConvergenceWarning is ignored because the
# checks fit with the default max_iter=200 on small data and scikit-learn warns, as its own
# MLPs do, when those epochs run out; the checks themselves treat it as a warning, not a failure.
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [MLPRegressor(), MLPClassifier()],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scikit_learn_estimator_checks(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


def quiet(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: wanted here
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- as scikit-learn


def same_start(ours, theirs, X, y):  # type: ignore[no-untyped-def]
    """Both set up by a one-epoch fit, then given the same weights (scikit-learn's init)."""
    quiet(theirs.set_params(max_iter=1).fit, X, y)
    quiet(ours.set_params(max_iter=1).fit, X, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_ = [b.copy() for b in theirs.intercepts_]
    ours.loss_curve_, theirs.loss_curve_ = [], []
    theirs.t_ = ours.t_ = 0


def assert_same_network(ours, theirs, rtol: float) -> None:  # type: ignore[no-untyped-def]
    for k, (a, e) in enumerate(zip(ours.coefs_ + ours.intercepts_,
                                   theirs.coefs_ + theirs.intercepts_)):
        assert a.shape == e.shape, f"parameter {k}"
        err = np.max(np.abs(a - e)) / np.max(np.abs(e))
        assert err <= rtol, f"parameter {k}: {err:.3g} relative to its largest entry"


SOLVERS = {
    "sgd-nesterov-l2": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, alpha=1e-3,
                            learning_rate_init=0.05),
    "sgd-momentum": dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, alpha=0.0,
                         learning_rate_init=0.05),
    # scikit-learn's epsilon sits elsewhere; with a negligible one the two Adams agree
    "adam-l2": dict(solver="adam", alpha=1e-3, epsilon=1e-300, learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs", alpha=1e-3, tol=1e-12),
}


@pytest.mark.parametrize("case", list(SOLVERS))
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_trains_as_scikit_learn(case: str, kind: str) -> None:
    """Warm-started from scikit-learn's weights, unshuffled (scikit-learn's shuffles are its
    own): the same weights after 40 epochs, the same loss curve, n_iter_ and t_."""
    nn = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4))
    if kind == "regressor":
        y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]])  # two outputs
        ours, theirs = MLPRegressor(), nn.MLPRegressor()
    else:
        y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] * X[:, 2] > 0)]
        ours, theirs = MLPClassifier(), nn.MLPClassifier()
    common = dict(hidden_layer_sizes=(16, 8), batch_size=30, shuffle=False, random_state=1,
                  warm_start=True, tol=0.0, n_iter_no_change=10**6)
    common.update(SOLVERS[case])
    ours.set_params(**common)
    theirs.set_params(**common)
    same_start(ours, theirs, X, y)
    quiet(theirs.set_params(max_iter=40).fit, X, y)
    quiet(ours.set_params(max_iter=40).fit, X, y)
    assert_same_network(ours, theirs, 1e-9)
    assert ours.n_iter_ == theirs.n_iter_
    if case != "lbfgs":
        assert ours.n_iter_ == 40 and ours.t_ == theirs.t_ == 40 * 90
        # scikit-learn's reported squared loss also divides by n_outputs (2 here), ours not
        scale = 2 if kind == "regressor" else 1
        data_loss = np.array(ours.loss_curve_) - np.array(theirs.loss_curve_)
        if case.endswith("l2"):  # the penalty is not divided: compare where it is zero
            assert kind == "classifier" or np.all(data_loss > 0)
        else:
            np.testing.assert_allclose(ours.loss_curve_, np.array(theirs.loss_curve_) * scale,
                                       rtol=1e-9)
    if kind == "classifier":
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-8)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8, atol=1e-10)


def test_partial_fit_keeps_the_invscaling_clock() -> None:
    """SGD without momentum has no optimizer state, so partial_fit must equal scikit-learn's call
    for call, including the invscaling rate lr0 / (t_ + 1)^power_t and t_ itself."""
    nn = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 3))
    y = X[:, 0] - 2 * X[:, 1] * X[:, 2]
    params = dict(hidden_layer_sizes=(10,), solver="sgd", momentum=0.0, learning_rate="invscaling",
                  power_t=0.3, learning_rate_init=0.1, batch_size=20, shuffle=False, alpha=1e-4)
    ours, theirs = MLPRegressor(**params), nn.MLPRegressor(**params)
    theirs.partial_fit(X, y)
    ours.partial_fit(X, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_ = [b.copy() for b in theirs.intercepts_]
    for _ in range(5):
        theirs.partial_fit(X, y)
        ours.partial_fit(X, y)
        assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_ == 1
        assert_same_network(ours, theirs, 1e-10)
    assert ours.t_ == 6 * 60


# ----------------------------------------------------------------------------- behaviour


def test_layout_and_binary_classification() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 5))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    c = MLPClassifier(hidden_layer_sizes=(7, 6), random_state=0, learning_rate_init=0.01)
    c = quiet(c.fit, X, y)
    assert [w.shape for w in c.coefs_] == [(5, 7), (7, 6), (6, 2)]  # two softmax outputs
    assert [b.shape for b in c.intercepts_] == [(7,), (6,), (2,)]
    assert c.n_outputs_ == 2 and c.n_layers_ == 4 and c.out_activation_ == "softmax"
    assert list(c.classes_) == ["no", "yes"]
    m = c.to_mlp()
    assert all(np.array_equal(w, cw.T) for w, cw in zip(m.weights, c.coefs_))
    logits = m.predict(X.T).T
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(c.predict_proba(X), p, rtol=1e-13)
    # a logistic output on the difference of the two logits: the same probabilities
    np.testing.assert_allclose(c.predict_proba(X)[:, 1],
                               1 / (1 + np.exp(logits[:, 0] - logits[:, 1])), rtol=1e-12)
    np.testing.assert_allclose(c.predict_log_proba(X), np.log(p), rtol=1e-12, atol=1e-14)
    assert c.score(X, y) >= 0.95
    assert np.array_equal(c.predict(X), c.classes_[np.argmax(logits, axis=1)])


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 3)).astype(np.float32)
    r = quiet(MLPRegressor(hidden_layer_sizes=(8,), random_state=0).fit, X, X[:, 0] * 2)
    assert all(c.dtype == np.float32 for c in r.coefs_ + r.intercepts_)
    assert r.predict(X).dtype == np.float32 and r.predict(X).shape == (50,)


def test_pickle_and_clone() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 3))
    r = quiet(MLPRegressor(hidden_layer_sizes=(6,), random_state=0).fit, X, X[:, 0])
    data = pickle.dumps(r)
    assert b"backprop_core._" not in data  # plain arrays only: no model, no native handle
    back = pickle.loads(data)
    assert np.array_equal(back.predict(X), r.predict(X))
    c = clone(r)
    assert not hasattr(c, "coefs_") and c.get_params() == r.get_params()


def test_same_random_state_same_fit_and_every_fit_redraws() -> None:
    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 3))
    fit = lambda rs: quiet(MLPRegressor(hidden_layer_sizes=(6,), random_state=rs).fit, X, X[:, 0])  # noqa: E731
    assert np.array_equal(fit(3).coefs_[0], fit(3).coefs_[0])
    assert not np.array_equal(fit(3).coefs_[0], fit(4).coefs_[0])
    state = np.random.RandomState(0)
    est = MLPRegressor(hidden_layer_sizes=(6,), random_state=state)
    first = quiet(est.fit, X, X[:, 0]).coefs_[0].copy()
    assert not np.array_equal(quiet(est.fit, X, X[:, 0]).coefs_[0], first)  # state consumed


def test_early_stopping_and_verbose(capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((100, 2))
    y = np.sin(2 * X[:, 0])
    r = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3,
                     learning_rate_init=0.05, random_state=0, max_iter=500, verbose=True)
    r.fit(X, y)
    assert r.n_iter_ < 500 and len(r.validation_loss_curve_) == r.n_iter_
    assert r.best_loss_ is None and len(r.loss_curve_) == r.n_iter_
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == r.n_iter_
    assert lines[0] == f"Iteration 1, loss = {r.loss_curve_[0]:.8f}"


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_is_the_native_fit_with_the_documented_seeds(solver: str) -> None:
    """The estimator is bc.fit on MLP.from_widths(init="glorot"), seeded by the two documented
    draws of check_random_state(random_state): the same bits, early stopping included."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((120, 2))
    y = np.sin(2 * X[:, 0]) * X[:, 1]
    est = MLPRegressor(hidden_layer_sizes=(16, 4), solver=solver, early_stopping=True,
                       n_iter_no_change=4, learning_rate_init=0.02, batch_size=25,
                       random_state=5, max_iter=300)
    est.fit(X, y)
    init_seed, seed = (int(s) for s in np.random.RandomState(5).randint(0, 2**31 - 1, size=2))
    model = bc.MLP.from_widths([2, 16, 4, 1], init="glorot", seed=init_seed)
    kw = dict(momentum=0.9, nesterov=True) if solver == "sgd" else {}
    history = bc.fit(model, X.T, y[None, :], optimizer=solver, learning_rate=0.02, alpha=1e-4,
                     batch_size=25, epochs=300, seed=seed, early_stopping=True,
                     validation_fraction=0.1, n_iter_no_change=4, tol=1e-4,
                     relu_grad_at_zero=0.0, **kw)
    assert history.stop_reason == "no_improvement" and est.n_iter_ == history.epochs < 300
    assert est.loss_curve_ == history.loss
    assert est.validation_loss_curve_ == history.validation_loss
    for c, w in zip(est.coefs_, model.weights):
        assert np.array_equal(c, w.T)


def test_errors() -> None:
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match="activation: expected 'relu'.*got 'tanh'"):
        MLPClassifier(activation="tanh").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes: expected an int or a sequence"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="solver: expected one of"):
        MLPRegressor(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="momentum: expected a real number in"):
        MLPRegressor(momentum=True).fit(X, y)
    est = MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        est.partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes; y has only one class"):
        MLPClassifier().fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y)
    c = quiet(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).partial_fit, X, y,
              classes=[0, 1, 2])
    assert c.coefs_[-1].shape == (3, 3)
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        c.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        c.predict(np.zeros((4, 3)))


# ----------------------------------------------------------------------------- in use


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


def test_digits_accuracy(digits) -> None:  # type: ignore[no-untyped-def]
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = digits
    model = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    quiet(model.fit, X_train, y_train)
    accuracy = model.score(X_test, y_test)
    assert accuracy >= 0.95, accuracy
    assert model[-1].n_iter_ >= 10 and model[-1].coefs_[0].shape == (64, 100)


def test_grid_search_in_two_processes(digits) -> None:  # type: ignore[no-untyped-def]
    """GridSearchCV(n_jobs=2) pickles the estimators into worker processes: the scores equal a
    single-process search's, bit for bit (the fits are deterministic)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    X_train, _, y_train, _ = digits
    pipe = Pipeline([("scale", MinMaxScaler()),
                     ("mlp", MLPClassifier(hidden_layer_sizes=(32,), max_iter=30,
                                           random_state=0))])
    grid = {"mlp__alpha": [1e-4, 1e-1], "mlp__learning_rate_init": [1e-3, 1e-2]}
    results = []
    for n_jobs in (2, 1):
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # joblib's workers may warn about their own start-up; not ours to judge
            warnings.simplefilter("ignore", UserWarning)
            search.fit(X_train[:600], y_train[:600])
        results.append(search)
    assert np.array_equal(results[0].cv_results_["mean_test_score"],
                          results[1].cv_results_["mean_test_score"])
    assert results[0].best_params_ == results[1].best_params_
    assert results[0].best_score_ > 0.85


def test_readme_example() -> None:
    """README's scikit-learn example (a ```pycon block, run here because it needs the extra)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```pycon[ \t]*\n(.*?)^```[ \t]*$", readme, re.MULTILINE | re.DOTALL)
    assert blocks, "README.md: no ```pycon block"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, {"bc": bc, "np": np}, f"README.md pycon {i}", "README.md", 0)
        result = runner.run(test)
        assert result.failed == 0, f"README.md pycon block {i}: {result.failed} failed"
