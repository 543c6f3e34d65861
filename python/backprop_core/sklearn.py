"""scikit-learn estimators trained by the native loop: :class:`MLPRegressor`, :class:`MLPClassifier`.

``pip install "backprop_core[sklearn]"``. They take scikit-learn's ``MLPRegressor`` /
``MLPClassifier`` hyperparameters where those mean the same thing, samples as rows, and expose
the fitted network in scikit-learn's layout (``coefs_[k]`` of shape (n_in, n_out),
``intercepts_[k]`` of shape (n_out,)). Training runs in :func:`backprop_core.fit` (or
:func:`backprop_core.fit_lbfgs`); the fitted state is plain numpy arrays, and the native model is
rebuilt from them when needed (:meth:`to_mlp`), so the estimators pickle and clone.

Where they differ from scikit-learn's, on purpose or by what the core provides:

* ``activation="relu"`` only (the core's networks are ReLU MLPs); the ReLU derivative at 0 is 0,
  as scikit-learn's and PyTorch's.
* Binary classification uses **two softmax outputs** (the core's cross-entropy is softmax), not
  scikit-learn's one logistic output: ``coefs_[-1]`` has 2 columns and ``n_outputs_`` is 2. The
  model class is the same (a logistic output is a softmax over the logits ``(0, z)``), and
  ``predict_proba`` has the same (n_samples, 2) shape as scikit-learn's. Multilabel targets are
  not supported.
* Initialisation: weights Glorot uniform (scikit-learn's bound ``sqrt(6 / (fan_in + fan_out))``
  for ReLU) drawn by :meth:`backprop_core.MLP.from_widths`, biases 0 (scikit-learn draws them from
  the same uniform). Every ``fit`` and ``partial_fit`` calls
  ``check_random_state(random_state)`` and draws two seeds, ``rng.randint(0, 2**31 - 1,
  size=2)``: the initial weights' (:meth:`backprop_core.MLP.from_widths`), then the shuffles' and
  the held-out split's (``seed`` of :func:`backprop_core.fit`).
* Adam is PyTorch's (``lr m_hat / (sqrt(v_hat) + epsilon)``); scikit-learn's adds ``epsilon`` to
  ``sqrt(v)`` before the bias correction. SGD momentum keeps the learning rate outside the
  velocity (PyTorch's); the same as scikit-learn's while the rate is constant.
* Shuffles and the early-stopping split come from the package's own generator; early stopping
  watches the held-out **loss** (scikit-learn: the score), and ``validation_loss_curve_`` holds
  it per epoch.
* ``partial_fit`` keeps the weights, ``t_`` (the invscaling clock), the plateau counter and the
  adaptive learning rate between calls, but not the optimizer's buffers (momentum, Adam's
  moments): each call starts them afresh, where scikit-learn carries them on.
* No ``sample_weight``; sparse input is refused (``TypeError``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted, column_or_1d
except ImportError as _e:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        'backprop_core.sklearn needs scikit-learn: pip install "backprop_core[sklearn]"'
    ) from _e

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.4 and 1.5

    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


from ._model import MLP
from ._model_io import init_parameters
from ._train import fit as _native_fit
from ._train import fit_lbfgs as _native_fit_lbfgs

__all__ = ["MLPClassifier", "MLPRegressor"]

_FLOATS = (np.float64, np.float32)
_SOLVERS = ("sgd", "adam", "lbfgs")
_SCHEDULES = ("constant", "invscaling", "adaptive")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, checks, the training call, the forward pass."""

    _loss = "squared_error"

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # ------------------------------------------------------------------ parameters

    def _hidden(self) -> list[int]:
        h = self.hidden_layer_sizes
        sizes = [h] if _is_int(h) else list(h) if hasattr(h, "__iter__") else None
        if sizes is None or not all(_is_int(n) and n >= 1 for n in sizes):
            raise ValueError(
                f"hidden_layer_sizes: expected an int or a sequence of ints >= 1, got {h!r}"
            )
        return [int(n) for n in sizes]

    def _check_params(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{name}: expected {what}, got {getattr(self, name)!r}")

        need(self.activation == "relu", "activation",
             "'relu' (backprop_core's networks are ReLU MLPs)")
        need(self.solver in _SOLVERS, "solver", f"one of {_SOLVERS}")
        need(self.learning_rate in _SCHEDULES, "learning_rate", f"one of {_SCHEDULES}")
        need(self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1),
             "batch_size", "'auto' or an int >= 1")
        for name, low in (("alpha", 0.0), ("power_t", 0.0), ("tol", 0.0)):
            v = getattr(self, name)
            need(_is_real(v) and v >= low, name, f"a real number >= {low}")
        for name in ("learning_rate_init", "epsilon"):
            v = getattr(self, name)
            need(_is_real(v) and v > 0, name, "a real number > 0")
        for name in ("momentum", "beta_1", "beta_2", "validation_fraction"):
            v = getattr(self, name)
            need(_is_real(v) and 0 <= v < 1, name, "a real number in [0, 1)")
        for name in ("max_iter", "n_iter_no_change", "max_fun"):
            v = getattr(self, name)
            need(_is_int(v) and v >= 1, name, "an int >= 1")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            need(isinstance(getattr(self, name), (bool, np.bool_)), name, "a bool")
        self._hidden()

    def _check_solver(self) -> bool:
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                "stochastic.")
        return True

    # ------------------------------------------------------------------ the network

    def to_mlp(self) -> MLP:
        """The fitted network as a :class:`backprop_core.MLP` (samples as columns there).

        Returns
        -------
        backprop_core.MLP
            A new model built from copies of ``coefs_`` (transposed) and ``intercepts_``.
        """
        check_is_fitted(self, "coefs_")
        return MLP([c.T for c in self.coefs_], [b.reshape(-1, 1) for b in self.intercepts_])

    def _set_network(self, model: MLP) -> None:
        self.coefs_ = [np.ascontiguousarray(w.T) for w in model.weights]
        self.intercepts_ = [b.reshape(-1).copy() for b in model.biases]

    def _logits(self, X: Any) -> np.ndarray:
        """The network's outputs, samples as rows (n_samples, n_outputs_)."""
        check_is_fitted(self, "coefs_")
        X = _validate_data(self, X, reset=False, dtype=_FLOATS)
        X = np.asarray(X, dtype=self.coefs_[0].dtype)
        out: np.ndarray = self.to_mlp().predict(X.T).T
        return out

    # ------------------------------------------------------------------ training

    def _targets(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> Any:
        self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, first=first, incremental=incremental, classes=classes)
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=2))
        dtype = X.dtype
        Y = self._targets(y, dtype)
        n_outputs = self._n_network_outputs(Y)
        widths = [X.shape[1], *self._hidden(), n_outputs]
        if first:
            model = MLP(*init_parameters(widths, init="glorot", seed=init_seed, dtype=dtype))
            self.n_layers_ = len(widths)
            self.n_outputs_ = n_outputs
            self.t_ = 0
            self.loss_curve_: list[float] = []
            self.best_loss_: float | None = None if self.early_stopping else math.inf
            self._no_improvement_count = 0
            self._learning_rate = float(self.learning_rate_init)
        else:
            have = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if have != widths:
                raise ValueError(
                    f"the fitted network has widths {have}, but hidden_layer_sizes and this "
                    f"data need {widths} (warm_start and partial_fit keep the network)"
                )
            model = MLP([c.T.astype(dtype) for c in self.coefs_],
                        [b.reshape(-1, 1).astype(dtype) for b in self.intercepts_])
        X_cols = np.ascontiguousarray(X.T)
        if self.solver == "lbfgs":
            history = _native_fit_lbfgs(
                model, X_cols, Y, loss=self._loss, alpha=float(self.alpha),
                max_iter=int(self.max_iter), max_fun=int(self.max_fun), tol=float(self.tol),
                relu_grad_at_zero=0.0,
            )
            self._set_network(model)
            self.n_iter_ = history.epochs
            self.loss_curve_ = list(history.loss)
            self.loss_ = float(history.loss[-1]) if history.loss else math.nan
            self.validation_loss_curve_ = None
            if not history.stop_reason.upper().startswith("CONVERGENCE"):
                warnings.warn(
                    f"lbfgs failed to converge after {self.n_iter_} iterations: "
                    f"{history.stop_reason}", ConvergenceWarning, stacklevel=3)
            return self
        self._fit_stochastic(model, X_cols, Y, incremental=incremental, seed=shuffle_seed)
        return self

    def _fit_stochastic(self, model: MLP, X: np.ndarray, Y: np.ndarray, *, incremental: bool,
                        seed: int) -> None:
        N = X.shape[1]
        n_train = N - math.ceil(self.validation_fraction * N) if self.early_stopping else N
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_train))
        sgd = self.solver == "sgd"
        if incremental:  # one epoch at this call's rate; the schedule is kept here
            schedule, epochs, n_iter_no_change = "constant", 1, None
            lr = self._learning_rate if sgd else float(self.learning_rate_init)
        else:
            schedule = self.learning_rate if sgd else "constant"
            epochs, n_iter_no_change = int(self.max_iter), int(self.n_iter_no_change)
            lr = float(self.learning_rate_init)

        def report(h: Any) -> bool:
            print(f"Iteration {len(self.loss_curve_) + len(h.loss)}, loss = {h.loss[-1]:.8f}")
            return False

        options = dict(
            loss=self._loss, reduction="mean", optimizer=self.solver, learning_rate=lr,
            epochs=epochs, batch_size=batch_size, shuffle=bool(self.shuffle), seed=seed,
            momentum=float(self.momentum) if sgd else 0.0,
            nesterov=bool(self.nesterovs_momentum) and sgd and self.momentum > 0,
            beta1=float(self.beta_1), beta2=float(self.beta_2), epsilon=float(self.epsilon),
            alpha=float(self.alpha), schedule=schedule, power_t=float(self.power_t),
            early_stopping=bool(self.early_stopping),
            validation_fraction=float(self.validation_fraction),
            n_iter_no_change=n_iter_no_change, tol=float(self.tol), relu_grad_at_zero=0.0,
            callback=report if self.verbose else None,
        )
        interrupted = False
        try:
            history = _native_fit(model, X, Y, **options)
        except KeyboardInterrupt as e:  # scikit-learn's behaviour: keep what was trained
            history = e.history  # type: ignore[attr-defined]
            interrupted = True
            warnings.warn("Training interrupted by user.", stacklevel=4)
        self._set_network(model)
        self.n_iter_ = history.epochs
        self.t_ += n_train * history.epochs
        self.validation_loss_curve_ = (
            list(history.validation_loss) if self.early_stopping else None)
        for value in history.loss:  # scikit-learn's plateau bookkeeping, replayed
            self.loss_curve_.append(float(value))
            if self.best_loss_ is not None:
                if value > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                self.best_loss_ = min(self.best_loss_, float(value))
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        if incremental:
            if sgd and self.learning_rate == "invscaling":
                self._learning_rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            elif self._no_improvement_count > self.n_iter_no_change:
                if sgd and self.learning_rate == "adaptive" and self._learning_rate > 1e-6:
                    self._learning_rate /= 5
                    self._no_improvement_count = 0
        else:
            self._learning_rate = history.learning_rate
            if history.stop_reason == "no_improvement":
                self._no_improvement_count = 0
            if history.stop_reason == "epochs" and not interrupted:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                    "the optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A ReLU multi-layer perceptron regressor trained by backprop_core's native loop.

    scikit-learn's ``MLPRegressor`` interface (the module docstring lists the differences).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers.
    activation : {"relu"}, default "relu"
        Only ReLU.
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        Adam (PyTorch's epsilon), SGD with momentum, or full-batch L-BFGS (scipy).
    alpha : float, default 0.0001
        L2 penalty ``alpha / 2 sum ||W||^2`` on the weights, divided by the batch size.
    batch_size : int or "auto", default "auto"
        Minibatch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule (SGD only).
    learning_rate_init : float, default 0.001
        The initial learning rate.
    power_t : float, default 0.5
        The exponent of "invscaling".
    max_iter : int, default 200
        Epochs at most (L-BFGS: iterations).
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, RandomState or None, default None
        Seeds the initial weights and the shuffles.
    tol : float, default 1e-4
        The plateau rule's least improvement (L-BFGS: the gradient tolerance).
    verbose : bool, default False
        Print the loss of each epoch.
    warm_start : bool, default False
        Start ``fit`` from the fitted weights.
    momentum : float, default 0.9
        SGD momentum.
    nesterovs_momentum : bool, default True
        Nesterov momentum (SGD with momentum > 0).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the samples and keep the epoch of least held-out loss.
    validation_fraction : float, default 0.1
        The held-out fraction.
    beta_1, beta_2, epsilon : float
        Adam's parameters.
    n_iter_no_change : int, default 10
        Epochs without an improvement of ``tol`` before stopping (or, "adaptive", dividing the
        learning rate by 5).
    max_fun : int, default 15000
        L-BFGS: objective evaluations at most.

    Attributes
    ----------
    coefs_ : list of ndarray
        ``coefs_[k]`` of shape (n_in, n_out).
    intercepts_ : list of ndarray
        ``intercepts_[k]`` of shape (n_out,).
    loss_ : float
        The training loss of the last epoch.
    loss_curve_ : list of float
        The training loss of each epoch (L-BFGS: of each iteration): ``0.5 sum (f - y)^2`` over
        the samples and outputs divided by n_samples, plus the L2 term (scikit-learn also divides
        the squared errors by n_outputs in its reported loss, not in its gradients).
    best_loss_ : float or None
        The least training loss (None with early stopping).
    validation_loss_curve_ : list of float or None
        With early stopping, the held-out loss of each epoch.
    n_iter_ : int
        Epochs run by the last call.
    t_ : int
        Training samples seen.
    n_features_in_ : int
        Features seen by ``fit``.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Outputs.
    out_activation_ : str
        "identity".
    """

    def _validate_input(self, X: Any, y: Any, *, first: bool, incremental: bool,
                        classes: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=_FLOATS,
                              reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self.out_activation_ = "identity"
        return X, y

    def _targets(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(y, dtype=dtype).reshape(len(y), -1).T)

    def _n_network_outputs(self, Y: np.ndarray) -> int:
        return int(Y.shape[0])

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Fit the network to samples ``X`` (rows) and targets ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)  # type: ignore[no-any-return]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over ``X`` and ``y`` from the current weights (SGD and Adam only).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True)  # type: ignore[no-any-return]

    def predict(self, X: Any) -> np.ndarray:
        """The network's outputs.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        out = self._logits(X)
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True}


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A ReLU multi-layer perceptron classifier (softmax cross-entropy) trained by
    backprop_core's native loop.

    scikit-learn's ``MLPClassifier`` interface (the module docstring lists the differences; in
    particular two softmax outputs for two classes).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Widths of the hidden layers.
    activation : {"relu"}, default "relu"
        Only ReLU.
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        Adam (PyTorch's epsilon), SGD with momentum, or full-batch L-BFGS (scipy).
    alpha : float, default 0.0001
        L2 penalty ``alpha / 2 sum ||W||^2`` on the weights, divided by the batch size.
    batch_size : int or "auto", default "auto"
        Minibatch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule (SGD only).
    learning_rate_init : float, default 0.001
        The initial learning rate.
    power_t : float, default 0.5
        The exponent of "invscaling".
    max_iter : int, default 200
        Epochs at most (L-BFGS: iterations).
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, RandomState or None, default None
        Seeds the initial weights and the shuffles.
    tol : float, default 1e-4
        The plateau rule's least improvement (L-BFGS: the gradient tolerance).
    verbose : bool, default False
        Print the loss of each epoch.
    warm_start : bool, default False
        Start ``fit`` from the fitted weights (the classes must be the same).
    momentum : float, default 0.9
        SGD momentum.
    nesterovs_momentum : bool, default True
        Nesterov momentum (SGD with momentum > 0).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the samples and keep the epoch of least held-out loss.
    validation_fraction : float, default 0.1
        The held-out fraction.
    beta_1, beta_2, epsilon : float
        Adam's parameters.
    n_iter_no_change : int, default 10
        Epochs without an improvement of ``tol`` before stopping (or, "adaptive", dividing the
        learning rate by 5).
    max_fun : int, default 15000
        L-BFGS: objective evaluations at most.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in the order of the network's outputs.
    coefs_ : list of ndarray
        ``coefs_[k]`` of shape (n_in, n_out).
    intercepts_ : list of ndarray
        ``intercepts_[k]`` of shape (n_out,).
    loss_ : float
        The training loss (mean cross-entropy plus the L2 term) of the last epoch.
    loss_curve_ : list of float
        The training loss of each epoch (L-BFGS: of each iteration).
    best_loss_ : float or None
        The least training loss (None with early stopping).
    validation_loss_curve_ : list of float or None
        With early stopping, the held-out loss of each epoch.
    n_iter_ : int
        Epochs run by the last call.
    t_ : int
        Training samples seen.
    n_features_in_ : int
        Features seen by ``fit``.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        The network's outputs: the number of classes (2 for two classes).
    out_activation_ : str
        "softmax".
    """

    _loss = "cross_entropy"

    def _validate_input(self, X: Any, y: Any, *, first: bool, incremental: bool,
                        classes: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = _validate_data(self, X, y, dtype=_FLOATS, reset=first)
        check_classification_targets(y)
        if incremental and not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = unique_labels(classes)
        elif first and not incremental:
            self.classes_ = unique_labels(y)
        seen = unique_labels(y)
        if self.warm_start and not first and not incremental and \
                set(seen.tolist()) != set(self.classes_.tolist()):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous "
                f"call to fit. Previously got {self.classes_}, `y` has {seen}")
        if np.setdiff1d(seen, self.classes_).size:
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                f"'y' has {seen}.")
        if len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs at least 2 classes; y has only one class: {self.classes_}")
        self.out_activation_ = "softmax"
        return X, y

    def _targets(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _n_network_outputs(self, Y: np.ndarray) -> int:
        return len(self.classes_)

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Fit the network to samples ``X`` (rows) and class labels ``y``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.
        y : array_like of shape (n_samples,)
            Class labels (at least two classes).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)  # type: ignore[no-any-return]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over ``X`` and ``y`` from the current weights (SGD and Adam only).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.
        y : array_like of shape (n_samples,)
            Class labels.
        classes : array_like, optional
            Every class label; required on the first call.

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, classes=classes)  # type: ignore[no-any-return]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: the softmax of the network's outputs.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        z = self._logits(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`, computed stably (log-softmax).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        z = self._logits(X)
        z = z - z.max(axis=1, keepdims=True)
        out: np.ndarray = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Samples as rows.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        best = np.argmax(self.predict_proba(X), axis=1)  # checks first that it is fitted
        out: np.ndarray = self.classes_[best]
        return out
