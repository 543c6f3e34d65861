// Bindings of the ReLU MLP (notebook 7.2): the free functions and the model handle. Convert,
// check, allocate outputs with the GIL held, call the core with it released.
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
    return py::make_tuple(scalar(loss), g.dW, g.db);
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

}  // namespace

void bind_mlp(py::module_& m) {
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
