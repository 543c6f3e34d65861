// Bindings of the ReLU MLP (notebook 7.2): the free functions and the model handle. Convert,
// check, allocate outputs with the GIL held, call the core with it released.
#include <algorithm>  // std::copy_backward
#include <array>
#include <memory>

#include <pybind11/stl.h>  // the widths, as a list

#include "backprop_core/model.hpp"
#include "intake.hpp"

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {
namespace {

namespace core = backprop_core;
using namespace pybind11::literals;

std::string item(const char* list, std::size_t k) {
    return std::string(list) + "[" + std::to_string(k) + "]";
}

// A network's parameters, checked against each other; D_0 is the width of all_weights[0].
template <class T> struct Net {
    std::vector<std::size_t> dims;  // D_0 .. D_{K+1}
    std::vector<const T*> w, b;
    std::vector<bool> column;  // biases given as (D, 1)
    std::size_t K() const { return w.size() - 1; }
    core::MLPView<T> view(double c) const { return {K(), dims.data(), w.data(), b.data(), T(c)}; }
};

// args[0, layers) are the weights, args[layers, 2 layers) the biases.
template <class T> Net<T> net_of(const Args& args, std::size_t layers) {
    Net<T> net;
    for (std::size_t k = 0; k < layers; ++k) {
        const auto W = args.in<T>(k), b = args.in<T>(layers + k);
        const auto wk = [k] { return item("all_weights", k); };
        const auto bk = [k] { return item("all_biases", k); };
        if (W.ndim() != 2)
            value_error(wk() + ": expected a 2-D array (D_out, D_in), got shape " + W.shape_str());
        const std::size_t rows = W.shape(0), cols = W.shape(1);
        if (k == 0) net.dims.push_back(cols);
        if (cols != net.dims.back())
            value_error(wk() + ": expected shape (D_out, " + std::to_string(net.dims.back()) +
                        ") to take the " + std::to_string(net.dims.back()) + " outputs of layer " +
                        std::to_string(k - 1) + ", got shape " + W.shape_str());
        const bool column = b.ndim() == 2 && b.shape(0) == rows && b.shape(1) == 1;
        if (!column && !(b.ndim() == 1 && b.shape(0) == rows))
            value_error(bk() + ": expected shape " + shape_str({rows, 1}) + " (or " +
                        shape_str({rows}) + ") to match " + wk() + " of shape " + W.shape_str() +
                        ", got shape " + b.shape_str());
        net.dims.push_back(rows);
        net.w.push_back(W.ptr());
        net.b.push_back(b.ptr());
        net.column.push_back(column);
    }
    return net;
}

// Adds the two parameter lists to args; returns the number of layers.
std::size_t add_parameters(Args& args, py::handle all_weights, py::handle all_biases) {
    const std::size_t weights = args.add_list("all_weights", all_weights);
    const std::size_t biases = args.add_list("all_biases", all_biases);
    if (weights == 0) value_error("all_weights: expected at least one layer, got none");
    if (biases != weights)
        value_error("all_biases: expected one bias per layer (" + std::to_string(weights) +
                    "), got " + std::to_string(biases));
    return weights;
}

template <class T>
std::size_t batch_of(const In<T>& x, const std::vector<std::size_t>& dims, const char* name) {
    if (x.ndim() != 2 || x.shape(0) != dims[0])
        value_error(std::string(name) + ": expected shape (" + std::to_string(dims[0]) +
                    ", N) to match all_weights[0] of shape " + shape_str({dims[1], dims[0]}) +
                    ", got shape " + x.shape_str());
    return x.shape(1);
}

// y broadcast against the output (D_o, N): element strides, 0 along broadcast axes.
template <class T>
std::array<std::size_t, 2> y_strides(const In<T>& y, std::size_t D_o, std::size_t N) {
    std::size_t shape[2] = {1, 1};
    const bool fits = y.ndim() <= 2;
    for (std::size_t i = 0; fits && i < y.ndim(); ++i) shape[2 - y.ndim() + i] = y.shape(i);
    if (!fits || (shape[0] != 1 && shape[0] != D_o) || (shape[1] != 1 && shape[1] != N))
        value_error("y: expected a scalar or an array broadcastable to " + shape_str({D_o, N}) +
                    ", got shape " + y.shape_str());
    return {shape[0] == 1 ? 0 : shape[1], shape[1] == 1 ? std::size_t(0) : std::size_t(1)};
}

double work(const std::vector<std::size_t>& dims, std::size_t N) {  // multiply-adds of a pass
    double w = 0;
    for (std::size_t k = 0; k + 1 < dims.size(); ++k) w += double(dims[k]) * dims[k + 1] * N;
    return w;
}

// Gradient arrays shaped like the parameters: new ones, or the caller's `out` (checked).
template <class T> struct Grads {
    py::object dW, db;
    std::vector<T*> w, b;
    std::vector<py::object> held;  // the caller's out arrays, held for the whole call
};

template <class T>
Grads<T> new_grads(const std::vector<std::size_t>& dims, const std::vector<bool>& column) {
    Grads<T> g;
    py::list dW, db;
    for (std::size_t k = 0; k + 1 < dims.size(); ++k) {
        auto w = empty<T>({dims[k + 1], dims[k]});
        auto b = column[k] ? empty<T>({dims[k + 1], 1}) : empty<T>({dims[k + 1]});
        g.w.push_back(w.mutable_data());
        g.b.push_back(b.mutable_data());
        dW.append(w);
        db.append(b);
    }
    g.dW = dW, g.db = db;
    return g;
}

template <class T> py::tuple forward(const Args& args, const Net<T>& net, const In<T>& x) {
    const std::size_t N = batch_of(x, net.dims, "net_input"), layers = net.w.size();
    core::check_network(net.K(), net.dims.data(), N);
    py::list all_f, all_h;
    std::vector<T*> f, h(1, nullptr);
    all_h.append(x.a.attr("copy")());  // the notebook's all_h[0] is the input; ours is a copy
    for (std::size_t k = 0; k < layers; ++k) {
        auto fk = empty<T>({net.dims[k + 1], N});
        f.push_back(fk.mutable_data());
        all_f.append(fk);
        if (k + 1 == layers) break;
        auto hk = empty<T>({net.dims[k + 1], N});
        h.push_back(hk.mutable_data());
        all_h.append(hk);
    }
    {
        ReleaseGil release(work(net.dims, N));
        core::mlp_forward(net.view(1.0), x.ptr(), N, f.data(), h.data());
    }
    (void)args;  // holds every input until here
    return py::make_tuple(all_f[layers - 1], all_f, all_h);
}

template <class T> py::tuple backward(const Args& args, std::size_t layers, double c) {
    const auto net = net_of<T>(args, layers);
    const auto h0 = args.in<T>(3 * layers);
    const std::size_t N = batch_of(h0, net.dims, "all_h[0]");
    std::vector<const T*> f, h;
    for (std::size_t k = 0; k < layers; ++k) {
        const auto fk = args.in<T>(2 * layers + k), hk = args.in<T>(3 * layers + k);
        if (hk.ndim() != 2 || hk.shape(0) != net.dims[k] || hk.shape(1) != N)
            value_error(item("all_h", k) + ": expected shape " + shape_str({net.dims[k], N}) +
                        " for layer " + std::to_string(k) + ", got shape " + hk.shape_str());
        if (fk.ndim() != 2 || fk.shape(0) != net.dims[k + 1] || fk.shape(1) != N)
            value_error(item("all_f", k) + ": expected shape " + shape_str({net.dims[k + 1], N}) +
                        " for layer " + std::to_string(k) + ", got shape " + fk.shape_str());
        f.push_back(fk.ptr());
        h.push_back(hk.ptr());
    }
    const auto y = args.in<T>(4 * layers);
    const auto ys = y_strides(y, net.dims.back(), N);
    auto g = new_grads<T>(net.dims, net.column);
    {
        ReleaseGil release(work(net.dims, N));
        auto& ws = core::thread_workspace<T>();
        core::mlp_backward(net.view(c), f.data(), h.data(), y.ptr(), ys.data(), N, g.w.data(),
                           g.b.data(), ws);
        ws.trim();
    }
    return py::make_tuple(g.dW, g.db);
}

template <class T>
py::tuple gradients(const Net<T>& net, const In<T>& x, const In<T>& y, double c, Grads<T>& g,
                    const core::Model<T>* model = nullptr) {
    const std::size_t N = batch_of(x, net.dims, "net_input");
    const auto ys = y_strides(y, net.dims.back(), N);
    T loss;
    {
        ReleaseGil release(3 * work(net.dims, N));
        loss = model ? model->gradients(x.ptr(), N, y.ptr(), ys.data(), g.w.data(), g.b.data(), T(c))
                     : [&] {
                           auto& ws = core::thread_workspace<T>();
                           const T l = core::mlp_gradients(net.view(c), x.ptr(), N, y.ptr(),
                                                           ys.data(), g.w.data(), g.b.data(), ws);
                           ws.trim();
                           return l;
                       }();
    }
    return py::make_tuple(loss_scalar(loss), g.dW, g.db);
}

void check_unit(double c) {
    if (!(c >= 0.0 && c <= 1.0))
        value_error("relu_grad_at_zero: expected a value in [0, 1], got " + std::to_string(c));
}

// ----------------------------------------------------------------------------- the model handle
//
// A model is a capsule holding a Handle: capsules cannot be made from Python or pickled, so a
// handle is always whole; the Python class backprop_core.MLP holds one.

template <class T> struct Handle {
    std::shared_ptr<core::Model<T>> model;  // each call and each view holds its own reference
    std::vector<bool> column;
};

template <class T> const char* handle_name() {
    return sizeof(T) == 4 ? "backprop_core.Model[float32]" : "backprop_core.Model[float64]";
}

template <class T> py::capsule make_handle(Handle<T> h) {
    return py::capsule(new Handle<T>(std::move(h)), handle_name<T>(), [](PyObject* o) {
        delete static_cast<Handle<T>*>(PyCapsule_GetPointer(o, handle_name<T>()));
    });
}

int handle_kind(py::handle h) {
    if (PyCapsule_IsValid(h.ptr(), handle_name<float>())) return 4;
    if (PyCapsule_IsValid(h.ptr(), handle_name<double>())) return 8;
    type_error("model: expected a native model handle, got " + type_name(h));
}

template <class T> Handle<T> handle_of(py::handle h) {  // a copy: the call's own reference
    return *static_cast<Handle<T>*>(PyCapsule_GetPointer(h.ptr(), handle_name<T>()));
}

template <class T> Net<T> net_of(const Handle<T>& h) {
    Net<T> net{h.model->dims(), {}, {}, h.column};
    const auto view = h.model->view();
    net.w.assign(view.weights, view.weights + net.dims.size() - 1);
    net.b.assign(view.biases, view.biases + net.dims.size() - 1);
    return net;
}

template <class T> py::capsule model_new(const Args& args, std::size_t layers) {
    const auto net = net_of<T>(args, layers);
    return make_handle<T>({std::make_shared<core::Model<T>>(net.dims, net.w.data(), net.b.data()),
                           net.column});
}

// Views of the parameters, writeable; their base is a handle of their own, so the memory
// lives as long as any view does.
template <class T> py::list parameters(py::handle handle, bool weights) {
    auto h = handle_of<T>(handle);
    py::capsule base = make_handle<T>(h);
    const auto& d = h.model->dims();
    py::list out;
    for (std::size_t k = 0; k + 1 < d.size(); ++k) {
        const auto shape = weights ? std::vector<py::ssize_t>{py::ssize_t(d[k + 1]), py::ssize_t(d[k])}
                         : h.column[k] ? std::vector<py::ssize_t>{py::ssize_t(d[k + 1]), 1}
                                       : std::vector<py::ssize_t>{py::ssize_t(d[k + 1])};
        out.append(py::array_t<T>(shape, weights ? h.model->weights(k) : h.model->biases(k), base));
    }
    return out;
}

struct Span {  // memory a call reads or writes, and its name (list[k] when k >= 0)
    const char *lo, *hi;
    const char* list;
    long k;
    std::string name() const { return k < 0 ? std::string(list) : item(list, std::size_t(k)); }
};

template <class T>
void add_span(std::vector<Span>& spans, const In<T>& in, const char* list, long k = -1) {
    if (!in.scalar && in.a.size() > 0) {
        const char* lo = static_cast<const char*>(in.a.data());
        spans.push_back({lo, lo + in.a.nbytes(), list, k});
    }
}

// The caller's (all_dl_dweights, all_dl_dbiases): C-contiguous writeable arrays of the model's
// dtype shaped like the parameters, overlapping nothing the pass reads nor each other.
template <class T>
Grads<T> grads_into(py::handle out, const Handle<T>& h, std::vector<Span> spans) {
    if (!PyTuple_Check(out.ptr()) || PyTuple_GET_SIZE(out.ptr()) != 2)
        type_error("out: expected a pair (all_dl_dweights, all_dl_dbiases), got " + type_name(out));
    const auto& d = h.model->dims();
    const std::size_t layers = d.size() - 1;
    Grads<T> g;
    g.dW = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out.ptr(), 0));
    g.db = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out.ptr(), 1));
    spans.reserve(spans.size() + 2 * layers + 1);
    const char* p = reinterpret_cast<const char*>(h.model->data());
    spans.push_back({p, p + h.model->size() * sizeof(T), "the model's parameters", -1});
    for (int which = 0; which < 2; ++which) {
        const char* list = which ? "out[1]" : "out[0]";
        auto items = items_of(which ? g.db : g.dW, list);
        if (items.size() != layers)
            value_error(std::string(list) + ": expected " + std::to_string(layers) + " arrays (one per layer), got " +
                        std::to_string(items.size()));
        for (std::size_t k = 0; k < layers; ++k) {
            const auto name = [&] { return item(list, k); };
            if (float_kind(items[k]) != int(sizeof(T)))
                type_error(name() + ": expected a C-contiguous, aligned numpy array of dtype " +
                           (sizeof(T) == 4 ? "float32" : "float64") + " (the model's), got " +
                           describe(items[k]));
            In<T> a;
            a.a = py::reinterpret_borrow<py::array>(items[k]);
            const std::size_t rows = d[k + 1], cols = which ? 1 : d[k];
            const bool ok = which ? (a.ndim() == 1 && a.shape(0) == rows) ||
                                        (a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == 1)
                                  : a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols;
            if (!ok)
                value_error(name() + ": expected shape " + shape_str({rows, cols}) + ", got shape " +
                            a.shape_str());
            if (!a.a.writeable()) value_error(name() + ": expected a writeable array");
            const std::size_t before = spans.size();
            add_span(spans, a, list, long(k));
            for (std::size_t j = 0; j < before && spans.size() > before; ++j)
                if (spans.back().lo < spans[j].hi && spans[j].lo < spans.back().hi)
                    value_error(name() + " overlaps " + spans[j].name() +
                                ": gradients would be written over memory the call reads or writes");
            (which ? g.b : g.w).push_back(static_cast<T*>(a.a.mutable_data()));
            g.held.push_back(std::move(items[k]));
        }
    }
    return g;
}

// ----------------------------------------------------------------------------- entry points

template <class T> py::tuple forward_free(const Args& args, std::size_t layers) {
    return forward<T>(args, net_of<T>(args, layers), args.in<T>(2 * layers));
}

template <class T> py::tuple gradients_free(const Args& args, std::size_t layers, double c) {
    auto net = net_of<T>(args, layers);
    auto g = new_grads<T>(net.dims, net.column);
    return gradients<T>(net, args.in<T>(2 * layers), args.in<T>(2 * layers + 1), c, g);
}

template <class T> py::tuple model_forward(py::handle handle, const Args& args) {
    const auto h = handle_of<T>(handle);
    return forward<T>(args, net_of<T>(h), args.in<T>(0));
}

template <class T>
py::tuple model_gradients(py::handle handle, const Args& args, double c, py::handle out) {
    const auto h = handle_of<T>(handle);
    const auto x = args.in<T>(0), y = args.in<T>(1);
    std::vector<Span> reads;
    add_span(reads, x, "net_input");
    add_span(reads, y, "y");
    auto g = out.is_none() ? new_grads<T>(h.model->dims(), h.column) : grads_into<T>(out, h, reads);
    return gradients<T>(net_of<T>(h), x, y, c, g, h.model.get());
}

// ----------------------------------------------------------------------------- the fast method
//
// MLP.gradients is the call made per sample in a loop, so, as Chain.gradients (chain.cpp), it is a
// native method. When every argument is already what the core reads (net_input an array of the
// model's dtype and shape (D_0, N), small enough that the GIL is kept; y a Python float or an array
// of the output's shape (D_{K+1}, N); relu_grad_at_zero a float in [0, 1]; out None or two lists
// of arrays shaped like the parameters that overlap nothing; the default loss and reduction), it
// calls the model's pass and builds the result directly. Anything else goes to the general method
// written in Python (MLP._gradients), which checks, converts and raises as every binding does.
// The fast path decides with type, flag and shape checks only (no Python code runs, so nothing can
// change under it): it never converts, so it cannot accept what the general method would refuse.

PyObject* general_model_gradients = nullptr;  // MLP._gradients, held for the life of the process
PyTypeObject* gradients_result = nullptr;     // backprop_core._results.Gradients, likewise

template <class T> bool exact_shape(PyObject* o, std::size_t rows, std::size_t cols) {
    if (float_kind(o) != int(sizeof(T))) return false;
    const auto a = py::reinterpret_borrow<py::array>(o);
    return a.ndim() == 2 && std::size_t(a.shape(0)) == rows && std::size_t(a.shape(1)) == cols;
}

// The one-call path, or null (no error set) when an argument is not simple.
template <class T>
PyObject* fast_model_gradients(PyObject* handle, PyObject* x, PyObject* y, double c, PyObject* out) {
    constexpr std::size_t max_layers = 32;
    const Handle<T>& h = *static_cast<Handle<T>*>(PyCapsule_GetPointer(handle, handle_name<T>()));
    const core::Model<T>& model = *h.model;  // (borrowed: the caller holds the handle)
    const auto& d = model.dims();
    const std::size_t layers = d.size() - 1;
    if (layers > max_layers || float_kind(x) != int(sizeof(T))) return nullptr;
    const auto xa = py::reinterpret_borrow<py::array>(x);
    if (xa.ndim() != 2 || std::size_t(xa.shape(0)) != d[0]) return nullptr;
    const std::size_t N = std::size_t(xa.shape(1));
    if (N == 0 || 3 * work(d, N) >= 20000) return nullptr;  // (the GIL would be released)
    struct Span {
        const char* lo;
        std::size_t bytes;
        bool meets(const Span& o) const { return overlaps(lo, bytes, o.lo, o.bytes); }
    };
    Span reads[3];  // what the call reads (these may overlap one another)
    std::size_t count = 0;
    reads[count++] = {static_cast<const char*>(xa.data()), std::size_t(xa.nbytes())};
    reads[count++] = {reinterpret_cast<const char*>(model.data()), model.size() * sizeof(T)};
    T y_value{};
    const T* y_ptr = &y_value;
    std::size_t ys[2] = {0, 0};
    if (PyFloat_CheckExact(y)) {
        y_value = T(PyFloat_AS_DOUBLE(y));
    } else if (exact_shape<T>(y, d.back(), N)) {
        const auto ya = py::reinterpret_borrow<py::array>(y);
        y_ptr = static_cast<const T*>(ya.data());
        ys[0] = N, ys[1] = 1;
        reads[count++] = {reinterpret_cast<const char*>(y_ptr), std::size_t(ya.nbytes())};
    } else {
        return nullptr;
    }
    T* w[max_layers];
    T* b[max_layers];
    py::object dW, db;
    if (out == Py_None) {
        auto g = new_grads<T>(d, h.column);
        std::copy(g.w.begin(), g.w.end(), w);
        std::copy(g.b.begin(), g.b.end(), b);
        dW = std::move(g.dW), db = std::move(g.db);
    } else {
        if (!PyTuple_CheckExact(out) || PyTuple_GET_SIZE(out) != 2) return nullptr;
        PyObject* lists[2] = {PyTuple_GET_ITEM(out, 0), PyTuple_GET_ITEM(out, 1)};
        // The outputs so far, disjoint and sorted by address: a new one overlaps one of them
        // if and only if it overlaps its neighbours in that order.
        Span outs[2 * max_layers];
        std::size_t n_out = 0;
        for (int which = 0; which < 2; ++which) {
            PyObject* list = lists[which];
            if (!PyList_CheckExact(list) || std::size_t(PyList_GET_SIZE(list)) != layers)
                return nullptr;
            for (std::size_t k = 0; k < layers; ++k) {
                PyObject* item = PyList_GET_ITEM(list, Py_ssize_t(k));
                if (float_kind(item) != int(sizeof(T))) return nullptr;
                auto a = py::reinterpret_borrow<py::array>(item);
                const std::size_t rows = d[k + 1];
                const bool shaped =
                    which ? (a.ndim() == 1 && std::size_t(a.shape(0)) == rows) ||
                                (a.ndim() == 2 && std::size_t(a.shape(0)) == rows && a.shape(1) == 1)
                          : a.ndim() == 2 && std::size_t(a.shape(0)) == rows &&
                                std::size_t(a.shape(1)) == d[k];
                if (!shaped || !a.writeable()) return nullptr;
                const Span span{static_cast<const char*>(a.data()), std::size_t(a.nbytes())};
                if (span.bytes) {  // nothing read, nor another out
                    for (std::size_t j = 0; j < count; ++j)
                        if (reads[j].bytes && span.meets(reads[j])) return nullptr;
                    std::size_t at = n_out;
                    while (at > 0 && outs[at - 1].lo > span.lo) --at;
                    if ((at > 0 && span.meets(outs[at - 1])) || (at < n_out && span.meets(outs[at])))
                        return nullptr;
                    std::copy_backward(outs + at, outs + n_out, outs + n_out + 1);
                    outs[at] = span;
                    ++n_out;
                }
                (which ? b : w)[k] = static_cast<T*>(a.mutable_data());
            }
        }
        dW = py::reinterpret_borrow<py::object>(lists[0]);
        db = py::reinterpret_borrow<py::object>(lists[1]);
    }
    const T loss = model.gradients(static_cast<const T*>(xa.data()), N, y_ptr, ys, w, b, T(c));
    return named(gradients_result, {loss_scalar(loss), dW, db}).release().ptr();
}

// MLP.gradients(self, net_input, y, *, relu_grad_at_zero=1.0, out=None, loss="squared_error",
// reduction="sum") as a method of the Python class.
PyObject* model_gradients_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                 PyObject* kwnames) {
    static PyObject* const names[6] = {
        PyUnicode_InternFromString("net_input"), PyUnicode_InternFromString("y"),
        PyUnicode_InternFromString("relu_grad_at_zero"), PyUnicode_InternFromString("out"),
        PyUnicode_InternFromString("loss"), PyUnicode_InternFromString("reduction")};
    static PyObject* const defaults[2] = {PyUnicode_InternFromString("squared_error"),
                                          PyUnicode_InternFromString("sum")};
    static PyObject* const handle_name_str = PyUnicode_InternFromString("_handle");
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    const auto general = [&]() -> PyObject* {  // the same arguments, self first
        std::vector<PyObject*> all(std::size_t(1 + nargs + nkw));
        all[0] = self;
        std::copy(args, args + nargs + nkw, all.begin() + 1);
        return PyObject_Vectorcall(general_model_gradients, all.data(), std::size_t(1 + nargs),
                                   kwnames);
    };
    PyObject* given[6] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    if (nargs > 2) return general();
    for (Py_ssize_t i = 0; i < nargs; ++i) given[i] = args[i];
    for (Py_ssize_t i = 0; i < nkw; ++i) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, i);
        int at = -1;
        for (int j = 0; j < 6 && at < 0; ++j)
            if (key == names[j]) at = j;
        if (at < 0 || given[at]) return general();  // (unusual: the general method says why)
        given[at] = args[nargs + i];
    }
    if (!given[0] || !given[1]) return general();
    for (int j = 0; j < 2; ++j)  // the default loss and reduction only
        if (PyObject* v = given[4 + j]; v && v != defaults[j] &&
            (!PyUnicode_CheckExact(v) || PyUnicode_Compare(v, defaults[j]) != 0))
            return general();
    double c = 1.0;
    if (given[2]) {
        if (!PyFloat_CheckExact(given[2])) return general();
        c = PyFloat_AS_DOUBLE(given[2]);
        if (!(c >= 0.0 && c <= 1.0)) return general();
    }
    PyObject* handle = PyObject_GetAttr(self, handle_name_str);
    if (!handle) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
        PyErr_Clear();
        return general();  // (not initialised: the general method says so)
    }
    PyObject* r = nullptr;
    try {
        PyObject* out = given[3] ? given[3] : Py_None;
        if (PyCapsule_IsValid(handle, handle_name<double>()))
            r = fast_model_gradients<double>(handle, given[0], given[1], c, out);
        else if (PyCapsule_IsValid(handle, handle_name<float>()))
            r = fast_model_gradients<float>(handle, given[0], given[1], c, out);
    } catch (py::error_already_set& e) {
        Py_DECREF(handle);
        e.restore();
        return nullptr;
    } catch (const std::bad_alloc&) {
        Py_DECREF(handle);
        return PyErr_NoMemory();
    }
    Py_DECREF(handle);
    if (r || PyErr_Occurred()) return r;
    return general();
}

PyMethodDef model_gradients_method_def = {
    "gradients",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(model_gradients_method)),
    METH_FASTCALL | METH_KEYWORDS,
    "gradients($self, /, net_input, y, *, relu_grad_at_zero=1.0, out=None, "
    "loss='squared_error', reduction='sum')\n--\n\n"
    "Loss and every weight and bias derivative.\n\n"
    "Parameters\n"
    "----------\n"
    "net_input : array_like, shape (D_0, N)\n"
    "    Samples as columns, of the model's dtype.\n"
    "y : float or array_like\n"
    "    Targets, broadcastable to (D_{K+1}, N).\n"
    "relu_grad_at_zero : float, default 1.0\n"
    "    The ReLU derivative at exactly 0: 1 is notebook 7.2's indicator (f >= 0), 0 is\n"
    "    PyTorch's.\n"
    "out : tuple of two lists of ndarray, optional\n"
    "    ``(all_dl_dweights, all_dl_dbiases)``: C-contiguous, writeable arrays of the model's\n"
    "    dtype shaped like the parameters, written in place and returned (no allocation per\n"
    "    call). None may overlap another, the input, ``y`` or the model's parameters\n"
    "    (``ValueError`` naming both).\n"
    "loss : {\"squared_error\", \"cross_entropy\"}, default \"squared_error\"\n"
    "    As in :func:`backprop_core.gradients` (cross-entropy takes int class labels (N,) or\n"
    "    one-hot columns).\n"
    "reduction : {\"sum\", \"mean\"}, default \"sum\"\n"
    "    As in :func:`backprop_core.gradients`.\n\n"
    "Returns\n"
    "-------\n"
    "Gradients\n"
    "    ``loss`` (``sum 0.5 (f_K - y)^2`` by default, a numpy scalar), ``all_dl_dweights`` and\n"
    "    ``all_dl_dbiases`` (the lists of ``out`` when given).\n\n"
    "Notes\n"
    "-----\n"
    "A native method: with arrays of the model's dtype, a small batch and ``out`` given, a\n"
    "call allocates nothing but the loss and its result tuple."};

}  // namespace

void bind_mlp(py::module_& m) {
    m.def("model_gradients_method", [](py::type cls, py::function general) {
        general_model_gradients = general.release().ptr();  // held for the life of the process
        gradients_result = result_type("Gradients");  // (imported now, not during a call)
        loss_scalar<float>(0), loss_scalar<double>(0);   // (their numpy types, likewise)
        return py::reinterpret_steal<py::object>(PyDescr_NewMethod(
            reinterpret_cast<PyTypeObject*>(cls.ptr()), &model_gradients_method_def));
    }, "cls"_a, "general"_a,
       "MLP.gradients, a method descriptor of the class cls; general(self, ...) takes the calls "
       "it does not.");
    m.def("forward", [](py::handle x, py::handle all_weights, py::handle all_biases) {
        Args args;
        const std::size_t layers = add_parameters(args, all_weights, all_biases);
        args.add("net_input", x);
        return args.convert() == 4 ? forward_free<float>(args, layers)
                                   : forward_free<double>(args, layers);
    }, "net_input"_a, "all_weights"_a, "all_biases"_a, "MLP forward pass: (net_output, all_f, all_h).");
    m.def("backward", [](py::handle all_weights, py::handle all_biases, py::handle all_f,
                         py::handle all_h, py::handle y, double c) {
        check_unit(c);
        Args args;
        const std::size_t layers = add_parameters(args, all_weights, all_biases);
        if (const std::size_t n = args.add_list("all_f", all_f); n != layers)
            value_error("all_f: expected " + std::to_string(layers) +
                        " arrays (one per layer), got " + std::to_string(n));
        if (const std::size_t n = args.add_list("all_h", all_h); n != layers)
            value_error("all_h: expected " + std::to_string(layers) +
                        " arrays (the input and one per hidden layer), got " + std::to_string(n));
        args.add("y", y);
        return args.convert() == 4 ? backward<float>(args, layers, c)
                                   : backward<double>(args, layers, c);
    }, "all_weights"_a, "all_biases"_a, "all_f"_a, "all_h"_a, "y"_a, "relu_grad_at_zero"_a,
       "MLP backward pass: (all_dl_dweights, all_dl_dbiases).");
    m.def("gradients", [](py::handle x, py::handle y, py::handle all_weights,
                          py::handle all_biases, double c) {
        check_unit(c);
        Args args;
        const std::size_t layers = add_parameters(args, all_weights, all_biases);
        args.add("net_input", x);
        args.add("y", y);
        return args.convert() == 4 ? gradients_free<float>(args, layers, c)
                                   : gradients_free<double>(args, layers, c);
    }, "net_input"_a, "y"_a, "all_weights"_a, "all_biases"_a, "relu_grad_at_zero"_a,
       "MLP loss and gradients in one pass: (loss, all_dl_dweights, all_dl_dbiases).");

    m.def("model_new", [](py::handle all_weights, py::handle all_biases) -> py::object {
        Args args;
        const std::size_t layers = add_parameters(args, all_weights, all_biases);
        return args.convert() == 4 ? model_new<float>(args, layers) : model_new<double>(args, layers);
    }, "all_weights"_a, "all_biases"_a, "A model handle holding copies of the parameters.");
    m.def("model_dims", [](py::handle h) {
        return handle_kind(h) == 4 ? handle_of<float>(h).model->dims()
                                   : handle_of<double>(h).model->dims();
    }, "model"_a, "The widths D_0 .. D_{K+1}.");
    m.def("model_dtype", [](py::handle h) {
        return py::dtype(handle_kind(h) == 4 ? "float32" : "float64");
    }, "model"_a, "The model's dtype.");
    m.def("model_parameters", [](py::handle h, bool weights) {
        return handle_kind(h) == 4 ? parameters<float>(h, weights) : parameters<double>(h, weights);
    }, "model"_a, "weights"_a, "Writeable views of the weights (or the biases).");
    m.def("model_forward", [](py::handle h, py::handle x) {
        const int kind = handle_kind(h);
        Args args;
        args.add("net_input", x);
        args.convert(kind);
        return kind == 4 ? model_forward<float>(h, args) : model_forward<double>(h, args);
    }, "model"_a, "net_input"_a, "The model's forward pass: (net_output, all_f, all_h).");
    m.def("model_gradients", [](py::handle h, py::handle x, py::handle y, double c,
                                py::handle out) {
        const int kind = handle_kind(h);
        check_unit(c);
        Args args;
        args.add("net_input", x);
        args.add("y", y);
        args.convert(kind);
        return kind == 4 ? model_gradients<float>(h, args, c, out)
                         : model_gradients<double>(h, args, c, out);
    }, "model"_a, "net_input"_a, "y"_a, "relu_grad_at_zero"_a, "out"_a,
       "The model's loss and gradients: (loss, all_dl_dweights, all_dl_dbiases).");
}

}  // namespace bind
