// Bindings of the native training loop (train.hpp): thin. Convert and check the arrays, release
// the GIL around MLPTrainer::run, and take the GIL back only in its hooks: once an epoch for the
// Python callback, and between steps (at most every 50 ms) for PyErr_CheckSignals, so Ctrl-C
// stops training within a fraction of a second with the parameters at their last completed step.
// The Python layer (backprop_core._train) checks the options and shapes the arrays first.
#include "backprop_core/train.hpp"

#include <pybind11/stl.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "intake.hpp"

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {
namespace {

namespace bc = backprop_core;
using namespace pybind11::literals;

template <class T> py::array checked(const py::handle& obj, const std::string& name, bool write) {
    if (!py::isinstance<py::array>(obj))
        type_error(name + ": expected a numpy array, got " + type_name(obj));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(py::dtype::of<T>()))
        type_error(name + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                   ", got " + std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style)) type_error(name + ": expected a C-contiguous array");
    if (write && !a.writeable()) type_error(name + ": expected a writeable array");
    return a;
}

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class E>
E parse(const std::string& name, const std::string& value,
        std::initializer_list<std::pair<const char*, E>> table) {
    for (const auto& [key, e] : table)
        if (value == key) return e;
    throw py::value_error(name + ": unknown value '" + value + "'");
}

const char* reason_name(bc::StopReason r) {
    switch (r) {
    case bc::StopReason::epochs:
        return "epochs";
    case bc::StopReason::no_improvement:
        return "no_improvement";
    case bc::StopReason::callback:
        return "callback";
    case bc::StopReason::interrupt:
        return "interrupt";
    }
    return "";
}

py::dict history_dict(const bc::TrainHistory& h);

// The network's parameters (checked, held by `keep`), dims, and the targets of N samples.
template <class T> struct Intake {
    std::vector<py::array> keep;  // the arrays stay alive (and unmoved) while the core runs
    std::vector<T*> W, b;
    std::vector<size_t> dims;
    py::array x, y;
    size_t N = 0;
    bc::Targets<T> t;
};

template <class T>
Intake<T> intake(const std::vector<py::object>& all_weights,
                 const std::vector<py::object>& all_biases, const py::handle& x_obj,
                 const py::handle& y_obj, bool write);

template <class T>
Intake<T> intake(const std::vector<py::object>& all_weights,
                 const std::vector<py::object>& all_biases, const py::handle& x_obj,
                 const py::handle& y_obj, bool write) {
    const size_t L = all_weights.size();
    if (L == 0 || all_biases.size() != L)
        throw py::value_error(
            "all_weights, all_biases: expected two lists of the same length >= 1");
    Intake<T> in;
    in.W.resize(L), in.b.resize(L), in.dims.resize(L + 1);
    auto& W = in.W;
    auto& b = in.b;
    auto& dims = in.dims;
    auto& keep = in.keep;
    auto& t = in.t;
    for (size_t k = 0; k < L; ++k) {
        const std::string wn = "all_weights[" + std::to_string(k) + "]";
        const std::string bn = "all_biases[" + std::to_string(k) + "]";
        auto w = checked<T>(all_weights[k], wn, write);
        auto c = checked<T>(all_biases[k], bn, write);
        if (w.ndim() != 2)
            throw py::value_error(wn + ": expected 2 dimensions, got " + shape_of(w));
        if (k && size_t(w.shape(1)) != dims[k])
            throw py::value_error(wn + ": expected " + std::to_string(dims[k]) +
                                  " columns (the previous layer's outputs), got shape " +
                                  shape_of(w));
        dims[k] = size_t(w.shape(1));
        dims[k + 1] = size_t(w.shape(0));
        if (size_t(c.size()) != dims[k + 1] || c.ndim() > 2 || (c.ndim() == 2 && c.shape(1) != 1))
            throw py::value_error(bn + ": expected shape (" + std::to_string(dims[k + 1]) +
                                  ",) or (" + std::to_string(dims[k + 1]) + ", 1), got " +
                                  shape_of(c));
        W[k] = static_cast<T*>(w.mutable_data());
        b[k] = static_cast<T*>(c.mutable_data());
        keep.push_back(w), keep.push_back(c);
    }
    in.x = checked<T>(x_obj, "net_input", false);
    const py::array& x = in.x;
    if (x.ndim() != 2 || size_t(x.shape(0)) != dims[0])
        throw py::value_error("net_input: expected shape (" + std::to_string(dims[0]) +
                              ", N), got " + shape_of(x));
    const size_t N = in.N = size_t(x.shape(1)), D_o = dims[L];
    py::array& y = in.y;
    if (py::isinstance<py::array>(y_obj) &&
        py::reinterpret_borrow<py::array>(y_obj).dtype().is(py::dtype::of<std::int64_t>())) {
        y = checked<std::int64_t>(y_obj, "y", false);
        if (y.ndim() != 1 || size_t(y.shape(0)) != N)
            throw py::value_error("y: expected class labels of shape (" + std::to_string(N) +
                                  ",), got " + shape_of(y));
        t.labels = static_cast<const std::int64_t*>(y.data());
    } else {
        y = checked<T>(y_obj, "y", false);
        if (y.ndim() != 2 || size_t(y.shape(0)) != D_o || size_t(y.shape(1)) != N)
            throw py::value_error("y: expected shape (" + std::to_string(D_o) + ", " +
                                  std::to_string(N) + "), got " + shape_of(y));
        t.y = static_cast<const T*>(y.data());
        t.strides[0] = N, t.strides[1] = 1;
    }

    return in;
}

template <class T>
double objective(const std::vector<py::object>& all_weights,
                 const std::vector<py::object>& all_biases, const py::handle& x_obj,
                 const py::handle& y_obj, const std::vector<py::object>& dW_list,
                 const std::vector<py::object>& db_list, bc::Loss loss, bc::Reduction reduction,
                 double alpha, T relu_grad_at_zero) {
    Intake<T> in = intake<T>(all_weights, all_biases, x_obj, y_obj, false);
    const size_t L = in.W.size();
    if (dW_list.size() != L || db_list.size() != L)
        value_error("dW, db: expected " + std::to_string(L) + " arrays each");
    std::vector<T*> dW(L), db(L);
    for (size_t k = 0; k < L; ++k) {
        auto a = checked<T>(dW_list[k], "dW[" + std::to_string(k) + "]", true);
        auto c = checked<T>(db_list[k], "db[" + std::to_string(k) + "]", true);
        if (size_t(a.size()) != in.dims[k + 1] * in.dims[k] || size_t(c.size()) != in.dims[k + 1])
            value_error("dW[" + std::to_string(k) + "], db[" + std::to_string(k) +
                        "]: expected the sizes of the parameters");
        dW[k] = static_cast<T*>(a.mutable_data()), db[k] = static_cast<T*>(c.mutable_data());
        in.keep.push_back(a), in.keep.push_back(c);
    }
    if (loss == bc::Loss::squared_error && in.t.labels)
        value_error("y: class labels are for loss='cross_entropy'");
    if (in.t.labels)
        for (size_t n = 0; n < in.N; ++n)
            if (in.t.labels[n] < 0 || size_t(in.t.labels[n]) >= in.dims[L])
                value_error("y: class labels must lie in [0, " + std::to_string(in.dims[L]) +
                            "), got " + std::to_string(in.t.labels[n]) + " at sample " +
                            std::to_string(n));
    std::vector<const T*> cW(in.W.begin(), in.W.end()), cb(in.b.begin(), in.b.end());
    const bc::MLPView<T> net{L - 1, in.dims.data(), cW.data(), cb.data(), relu_grad_at_zero};
    py::gil_scoped_release release;
    return bc::mlp_objective(net, static_cast<const T*>(in.x.data()), in.N, in.t, loss, reduction,
                             alpha, dW.data(), db.data());
}

template <class T>
py::dict train(const std::vector<py::object>& all_weights,
               const std::vector<py::object>& all_biases, const py::handle& x_obj,
               const py::handle& y_obj, const bc::TrainOptions& o, T relu_grad_at_zero,
               const py::object& on_epoch) {
    Intake<T> in = intake<T>(all_weights, all_biases, x_obj, y_obj, true);
    const size_t L = in.W.size();
    std::exception_ptr error;  // a Python exception raised in a hook, re-raised with the GIL
    bc::TrainHooks hooks;
    if (!on_epoch.is_none())
        hooks.on_epoch = [&](const bc::TrainHistory& h) {
            py::gil_scoped_acquire gil;
            try {
                const py::object val = h.validation_loss.empty()
                                           ? py::object(py::none())
                                           : py::object(py::float_(h.validation_loss.back()));
                const bool stop = bool(py::bool_(
                    on_epoch(h.epochs - 1, h.loss.back(), val, h.learning_rate, h.steps)));
                return stop ? bc::EpochAction::stop : bc::EpochAction::proceed;
            } catch (py::error_already_set&) {
                error = std::current_exception();
                return bc::EpochAction::abort;
            }
        };
    hooks.interrupted = [&] {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() == 0) return false;
        error = std::make_exception_ptr(py::error_already_set());
        return true;
    };
    bc::TrainHistory h;
    {
        auto trainer = std::make_unique<bc::MLPTrainer<T>>(
            L - 1, in.dims.data(), in.W.data(), in.b.data(), static_cast<const T*>(in.x.data()),
            in.N, in.t, o, relu_grad_at_zero);
        py::gil_scoped_release release;
        h = trainer->run(hooks);
    }
    py::dict r = history_dict(h);
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (py::error_already_set& e) {
            // the history so far travels with the exception (Ctrl-C or the callback's error)
            if (PyObject_SetAttrString(e.value().ptr(), "fit_history", r.ptr()) != 0)
                PyErr_Clear();
            throw;
        }
    }
    return r;
}

py::dict history_dict(const bc::TrainHistory& h) {
    py::dict r;
    r["loss"] = h.loss;
    r["validation_loss"] = h.validation_loss;
    r["epochs"] = h.epochs;
    r["steps"] = h.steps;
    r["learning_rate"] = h.learning_rate;
    r["stop_reason"] = reason_name(h.stop_reason);
    r["best_epoch"] =
        h.best_epoch < 0 ? py::object(py::none()) : py::object(py::int_(h.best_epoch));
    return r;
}

}  // namespace

void bind_train(py::module_& m) {
    m.def(
        "train",
        [](const py::handle& weights_arg, const py::handle& biases_arg,
           const py::handle& net_input, const py::handle& y, const std::string& loss,
           const std::string& reduction, const std::string& optimizer, double learning_rate,
           size_t epochs, size_t batch_size, bool shuffle, std::uint64_t seed, double momentum,
           bool nesterov, double beta1, double beta2, double epsilon, double alpha,
           const std::string& schedule, double power_t, bool early_stopping,
           double validation_fraction, size_t n_iter_no_change, double tol,
           double relu_grad_at_zero, const py::object& on_epoch) {
            bc::TrainOptions o;
            o.loss = parse<bc::Loss>("loss", loss,
                                     {{"squared_error", bc::Loss::squared_error},
                                      {"cross_entropy", bc::Loss::cross_entropy}});
            o.reduction =
                parse<bc::Reduction>("reduction", reduction,
                                     {{"sum", bc::Reduction::sum}, {"mean", bc::Reduction::mean}});
            o.optimizer =
                parse<bc::Optimizer>("optimizer", optimizer,
                                     {{"sgd", bc::Optimizer::sgd}, {"adam", bc::Optimizer::adam}});
            o.schedule = parse<bc::Schedule>("schedule", schedule,
                                             {{"constant", bc::Schedule::constant},
                                              {"invscaling", bc::Schedule::invscaling},
                                              {"adaptive", bc::Schedule::adaptive}});
            o.learning_rate = learning_rate, o.epochs = epochs, o.batch_size = batch_size;
            o.shuffle = shuffle, o.seed = seed, o.momentum = momentum, o.nesterov = nesterov;
            o.beta1 = beta1, o.beta2 = beta2, o.epsilon = epsilon, o.alpha = alpha;
            o.power_t = power_t, o.early_stopping = early_stopping;
            o.validation_fraction = validation_fraction, o.n_iter_no_change = n_iter_no_change;
            o.tol = tol;
            const auto all_weights = items_of(weights_arg, "all_weights");
            const auto all_biases = items_of(biases_arg, "all_biases");
            if (all_weights.empty()) value_error("all_weights: expected at least one layer");
            const py::handle first = all_weights[0];
            if (py::isinstance<py::array>(first) &&
                py::reinterpret_borrow<py::array>(first).dtype().is(py::dtype::of<float>()))
                return train<float>(all_weights, all_biases, net_input, y, o,
                                    float(relu_grad_at_zero), on_epoch);
            return train<double>(all_weights, all_biases, net_input, y, o, relu_grad_at_zero,
                                 on_epoch);
        },
        "all_weights"_a, "all_biases"_a, "net_input"_a, "y"_a, py::kw_only(), "loss"_a,
        "reduction"_a, "optimizer"_a, "learning_rate"_a, "epochs"_a, "batch_size"_a, "shuffle"_a,
        "seed"_a, "momentum"_a, "nesterov"_a, "beta1"_a, "beta2"_a, "epsilon"_a, "alpha"_a,
        "schedule"_a, "power_t"_a, "early_stopping"_a, "validation_fraction"_a,
        "n_iter_no_change"_a, "tol"_a, "relu_grad_at_zero"_a, "on_epoch"_a,
        R"doc(Train the parameter arrays in place (the engine of :func:`backprop_core.fit`).

Parameters
----------
all_weights, all_biases : list of ndarray
    C-contiguous, writeable arrays of one dtype, updated in place.
net_input : ndarray, shape (D_0, N)
    C-contiguous, of the parameters' dtype.
y : ndarray
    Targets (D_o, N) of the parameters' dtype, or int64 class labels (N,).
loss, reduction, optimizer, learning_rate, epochs, batch_size, shuffle, seed, ...
    Keyword-only, all required: the options of :func:`backprop_core.fit`, as it documents
    them (batch_size 0: full batch; n_iter_no_change 0: no plateau rule).
on_epoch : callable or None
    ``on_epoch(epoch, loss, validation_loss, learning_rate, steps)`` after each epoch, with the
    GIL; a true result stops training.

Returns
-------
dict
    The history: loss, validation_loss, epochs, steps, learning_rate, stop_reason, best_epoch.
)doc");
    m.def(
        "objective",
        [](const py::handle& weights_arg, const py::handle& biases_arg, const py::handle& x_obj,
           const py::handle& y_obj, const py::handle& dW_arg, const py::handle& db_arg,
           const std::string& loss, const std::string& reduction, double alpha,
           double relu_grad_at_zero) {
            const auto W = items_of(weights_arg, "all_weights");
            const auto b = items_of(biases_arg, "all_biases");
            const auto dW = items_of(dW_arg, "dW");
            const auto db = items_of(db_arg, "db");
            if (W.empty()) value_error("all_weights: expected at least one layer");
            const bool f32 =
                py::isinstance<py::array>(W[0]) &&
                py::reinterpret_borrow<py::array>(W[0]).dtype().is(py::dtype::of<float>());
            const auto l = parse<bc::Loss>("loss", loss,
                                           {{"squared_error", bc::Loss::squared_error},
                                            {"cross_entropy", bc::Loss::cross_entropy}});
            const auto r =
                parse<bc::Reduction>("reduction", reduction,
                                     {{"sum", bc::Reduction::sum}, {"mean", bc::Reduction::mean}});
            return f32 ? objective<float>(W, b, x_obj, y_obj, dW, db, l, r, alpha,
                                          float(relu_grad_at_zero))
                       : objective<double>(W, b, x_obj, y_obj, dW, db, l, r, alpha,
                                           relu_grad_at_zero);
        },
        "all_weights"_a, "all_biases"_a, "net_input"_a, "y"_a, "dW"_a, "db"_a, py::kw_only(),
        "loss"_a, "reduction"_a, "alpha"_a, "relu_grad_at_zero"_a,
        R"doc(The full-batch objective and its gradients (for :func:`backprop_core.fit_lbfgs`).

Parameters
----------
all_weights, all_biases : list of ndarray
    C-contiguous arrays of one dtype.
net_input : ndarray, shape (D_0, N)
    C-contiguous, of the parameters' dtype.
y : ndarray
    Targets (D_o, N) of the parameters' dtype, or int64 class labels (N,).
dW, db : list of ndarray
    C-contiguous, writeable arrays shaped like the parameters: the gradients, written.
loss, reduction, alpha, relu_grad_at_zero
    As :func:`backprop_core.fit` documents them.

Returns
-------
float
    The loss plus ``alpha/2 sum ||W_k||^2``, the whole divided by N for ``"mean"``.
)doc");
    m.def(
        "permutation",
        [](size_t n, std::uint64_t seed, std::uint64_t stream) {
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(n));
            auto* p = out.mutable_data();
            for (size_t i = 0; i < n; ++i) p[i] = std::int64_t(i);
            bc::permute(p, n, seed, stream);
            return out;
        },
        "n"_a, "seed"_a, "stream"_a, R"doc(0..n-1 shuffled by the package's generator.

Parameters
----------
n : int
    How many items.
seed : int
    In [0, 2^64).
stream : int
    The seed's stream: 0 for the held-out split, 1 + e for epoch e.

Returns
-------
ndarray of int64
    The order :func:`backprop_core.reference.permutation` also gives.
)doc");
}

}  // namespace bind
