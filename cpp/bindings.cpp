// The one bindings file: validates and converts Python arguments, allocates outputs with the GIL
// held, and calls the core with the GIL released. No maths here.
//
// Array intake, stated once: the core reads only C-contiguous arrays of the call's dtype (float32
// or float64, all the same; Python floats are held by value). Arguments already like that go
// straight through; anything else goes once through the dtype policy written in Python
// (backprop_core._dtype.normalize), which converts safely or raises. Inputs are never written.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "backprop_core/mlp.hpp"
#include "backprop_core/toy.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using std::size_t;

namespace {

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i)
        s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string shape_str(std::initializer_list<size_t> dims) {
    std::string s = "(";
    size_t i = 0;
    for (size_t d : dims) s += (i++ ? ", " : "") + std::to_string(d);
    return s + (dims.size() == 1 ? ",)" : ")");
}

[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }
[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }

// a * b, or MemoryError when the product of two sizes cannot be held (arrays of zero size can
// have dimensions whose products overflow).
size_t checked_mul(size_t a, size_t b) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > size_t(PTRDIFF_MAX) / sizeof(double))
        throw std::bad_alloc();
    return r;
}
size_t checked_add(size_t a, size_t b) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r) || r > size_t(PTRDIFF_MAX) / sizeof(double))
        throw std::bad_alloc();
    return r;
}

// Whether `obj` is an array of exactly T's type in native byte order.
template <class T> bool native_dtype(const py::handle& obj) {
    auto* descr = py::detail::array_descriptor_proxy(py::detail::array_proxy(obj.ptr())->descr);
    const int want = std::is_same_v<T, float> ? py::detail::npy_api::NPY_FLOAT_
                                              : py::detail::npy_api::NPY_DOUBLE_;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const char foreign = '<';
#else
    const char foreign = '>';
#endif
    return descr->type_num == want && descr->byteorder != foreign;
}

// The array behind `obj`, checked to be a C-contiguous array of dtype T; never converted.
template <class T> py::array as_input(const py::handle& obj, const std::string& name) {
    if (PyFloat_CheckExact(obj.ptr())) {  // a weak scalar: takes the call's dtype
        T v = T(PyFloat_AS_DOUBLE(obj.ptr()));
        return py::array_t<T>(std::vector<py::ssize_t>{}, &v);
    }
    if (!py::isinstance<py::array>(obj))
        type_error(name + ": expected a numpy array, got " +
                   std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!native_dtype<T>(obj))
        type_error(name + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                   " in native byte order, got " + std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style))
        type_error(name + ": expected a C-contiguous array");
    return a;
}

// A list item's name, such as "all_weights[2]", made only when a message needs it.
struct Item {
    const char* list;
    size_t k;
    std::string str() const { return std::string(list) + "[" + std::to_string(k) + "]"; }
};

template <class T> py::array as_input(const py::handle& obj, const Item& name) {
    if (py::detail::npy_api::get().PyArray_Check_(obj.ptr()) && native_dtype<T>(obj) &&
        (py::detail::array_proxy(obj.ptr())->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
        return py::reinterpret_borrow<py::array>(obj);
    return as_input<T>(obj, name.str());
}

// An array argument, or a Python float held by value (no array made for it).
template <class T> struct In {
    py::array a;
    T value{};
    bool scalar = false;
    const T* ptr() const { return scalar ? &value : static_cast<const T*>(a.data()); }
    py::ssize_t ndim() const { return scalar ? 0 : a.ndim(); }
    py::ssize_t shape(py::ssize_t i) const { return a.shape(i); }
};

template <class T> In<T> input(const py::handle& obj, const std::string& name) {
    In<T> in;
    if (PyFloat_CheckExact(obj.ptr())) {
        in.scalar = true;
        in.value = T(PyFloat_AS_DOUBLE(obj.ptr()));
    } else {
        in.a = as_input<T>(obj, name);
    }
    return in;
}

template <class T> std::string shape_str(const In<T>& in) { return in.scalar ? "()" : shape_str(in.a); }

template <class T> const T* data(const In<T>& in) { return in.ptr(); }

template <class T> const T* data(const py::array& a) { return static_cast<const T*>(a.data()); }
template <class T> T* data(py::array_t<T>& a) { return a.mutable_data(); }

// A numpy scalar of dtype T (the loss), as numpy's own reductions return.
template <class T> py::object scalar(T v) {
    // Held for the life of the process: no destructor runs after the interpreter is gone.
    static const auto* type = new py::object(
        py::module_::import("numpy").attr(std::is_same_v<T, float> ? "float32" : "float64"));
    return (*type)(double(v));
}

// Releases the GIL for work large enough to repay it: a release and re-acquire costs about as
// much as a few thousand multiply-adds, so calls smaller than that keep it (as numpy does).
struct ReleaseGil {
    std::optional<py::gil_scoped_release> release;
    explicit ReleaseGil(double work) {
        if (work >= 20000) release.emplace();
    }
};

template <class T> py::array_t<T> empty(std::vector<py::ssize_t> shape) {
    return py::array_t<T>(std::move(shape));
}


// ----------------------------------------------------------------------------- the toy chain

std::vector<backprop_core::Activation> parse_activations(const py::sequence& names) {
    if (py::isinstance<py::str>(names))
        type_error("activations: expected a sequence of names such as (\"sin\", \"exp\"), got "
                   "the single str '" + names.cast<std::string>() + "'");
    std::vector<backprop_core::Activation> acts;
    for (size_t i = 0; i < names.size(); ++i) {
        py::object item = names[i];
        if (!py::isinstance<py::str>(item))
            type_error("activations[" + std::to_string(i) + "]: expected a str, got " +
                       std::string(py::str(py::type::of(item).attr("__name__"))));
        try {
            acts.push_back(backprop_core::activation_from_name(item.cast<std::string>()));
        } catch (const std::invalid_argument& e) {
            value_error(std::string(e.what()) + " (at activations[" + std::to_string(i) + "])");
        }
    }
    return acts;
}

// parse_activations, remembering the last tuple parsed: a tuple of str cannot change, and the
// reference kept stops its id being reused. Called with the GIL held.
std::vector<backprop_core::Activation> activations_of(const py::sequence& names) {
    static auto* last = new py::object();  // held for the life of the process
    static auto* parsed = new std::vector<backprop_core::Activation>();
    const bool tuple = PyTuple_CheckExact(names.ptr());
    if (tuple && last->ptr() == names.ptr()) return *parsed;
    auto acts = parse_activations(names);
    if (tuple) {
        *last = py::reinterpret_borrow<py::object>(names);
        *parsed = acts;
    }
    return acts;
}

template <class T> struct ToyArgs {
    std::vector<backprop_core::Activation> acts;
    backprop_core::ToyChain<T> chain;
    In<T> x;
    py::array beta, omega;
    size_t N;
    bool batched;
};

template <class T>
ToyArgs<T> toy_args(const py::handle& x, const py::handle& beta, const py::handle& omega,
                    const py::sequence& activations, double relu_grad_at_zero) {
    ToyArgs<T> a;
    a.acts = activations_of(activations);
    const size_t L = a.acts.size();
    a.x = input<T>(x, "x");
    a.beta = as_input<T>(beta, "beta");
    a.omega = as_input<T>(omega, "omega");
    if (a.x.ndim() > 1)
        value_error("x: expected a scalar or a 1-D array of samples, got shape " + shape_str(a.x));
    a.batched = a.x.ndim() == 1;
    a.N = a.batched ? size_t(a.x.shape(0)) : 1;
    const std::string expected = shape_str({L + 1});
    const std::string why = " for a chain of " + std::to_string(L) + " activations";
    if (a.beta.ndim() != 1 || size_t(a.beta.shape(0)) != L + 1)
        value_error("beta: expected shape " + expected + why + ", got shape " + shape_str(a.beta));
    if (a.omega.ndim() != 1 || size_t(a.omega.shape(0)) != L + 1)
        value_error("omega: expected shape " + expected + why + ", got shape " +
                    shape_str(a.omega));
    if (!(relu_grad_at_zero >= 0.0 && relu_grad_at_zero <= 1.0))
        value_error("relu_grad_at_zero: expected a value in [0, 1], got " +
                    std::to_string(relu_grad_at_zero));
    a.chain = {a.acts.data(), L, data<T>(a.beta), data<T>(a.omega), T(relu_grad_at_zero)};
    return a;
}

// The targets: a scalar (stride 0) or one per sample of x (stride 1).
template <class T> In<T> toy_target(const py::handle& y, const ToyArgs<T>& a, size_t& stride) {
    auto ya = input<T>(y, "y");
    stride = ya.ndim() == 0 ? 0 : 1;
    if (stride && (!a.batched || ya.ndim() != 1 || size_t(ya.shape(0)) != a.N))
        value_error("y: expected a scalar or the shape of x " + shape_str(a.x) + ", got shape " +
                    shape_str(ya));
    return ya;
}

// Stage arrays: (rows,) for a scalar x, (rows, N) for a batch.
template <class T> py::array_t<T> stage_array(size_t rows, const ToyArgs<T>& a) {
    if (a.batched) return empty<T>({py::ssize_t(rows), py::ssize_t(a.N)});
    return empty<T>({py::ssize_t(rows)});
}

template <class T>
py::tuple toy_forward(const py::handle& x, const py::handle& beta, const py::handle& omega,
                      const py::sequence& activations) {
    auto a = toy_args<T>(x, beta, omega, activations, 1.0);
    const size_t L = a.chain.L;
    auto f = stage_array<T>(L + 1, a);
    auto h = stage_array<T>(L, a);
    {
        ReleaseGil release(20.0 * a.N * (L + 1));
        backprop_core::toy_forward(a.chain, data<T>(a.x), a.N, data(f), data(h));
    }
    return py::make_tuple(f, h);
}

template <class T>
py::tuple toy_backward(const py::handle& x, const py::handle& y, const py::handle& beta,
                       const py::handle& omega, const py::sequence& activations,
                       double relu_grad_at_zero) {
    auto a = toy_args<T>(x, beta, omega, activations, relu_grad_at_zero);
    size_t y_stride;
    auto ya = toy_target<T>(y, a, y_stride);
    const size_t L = a.chain.L;
    auto f = stage_array<T>(L + 1, a), dl_df = stage_array<T>(L + 1, a);
    auto h = stage_array<T>(L, a), dl_dh = stage_array<T>(L, a);
    auto dl_dbeta = empty<T>({py::ssize_t(L + 1)}), dl_domega = empty<T>({py::ssize_t(L + 1)});
    T loss;
    {
        ReleaseGil release(40.0 * a.N * (L + 1));
        loss = backprop_core::toy_forward_backward(a.chain, data<T>(a.x), data<T>(ya), y_stride,
                                                   a.N, data(f), data(h), data(dl_df),
                                                   data(dl_dh), data(dl_dbeta), data(dl_domega));
    }
    return py::make_tuple(scalar(loss), f, h, dl_df, dl_dh, dl_dbeta, dl_domega);
}

template <class T>
py::tuple toy_gradients(const py::handle& x, const py::handle& y, const py::handle& beta,
                        const py::handle& omega, const py::sequence& activations,
                        double relu_grad_at_zero) {
    auto a = toy_args<T>(x, beta, omega, activations, relu_grad_at_zero);
    size_t y_stride;
    auto ya = toy_target<T>(y, a, y_stride);
    const size_t L = a.chain.L;
    auto dl_dbeta = empty<T>({py::ssize_t(L + 1)}), dl_domega = empty<T>({py::ssize_t(L + 1)});
    T loss;
    {
        ReleaseGil release(40.0 * a.N * (L + 1));
        loss = backprop_core::toy_gradients(a.chain, data<T>(a.x), data<T>(ya), y_stride, a.N,
                                            data(dl_dbeta), data(dl_domega));
    }
    return py::make_tuple(scalar(loss), dl_dbeta, dl_domega);
}

// ----------------------------------------------------------------------------- the MLP

// Multiply-adds of one pass through layers of widths `dims` (`count` entries) for N samples.
double mlp_work(const size_t* dims, size_t count, size_t N) {
    double w = 0;
    for (size_t k = 0; k + 1 < count; ++k) w += double(dims[k]) * dims[k + 1] * N;
    return w;
}
double mlp_work(const std::vector<size_t>& dims, size_t N) {
    return mlp_work(dims.data(), dims.size(), N);
}

template <class T> struct Net {
    std::vector<py::array> weights, biases;  // keep the arrays alive
    std::vector<const T*> w, b;
    std::vector<size_t> dims;  // D_0 .. D_{K+1}
    std::vector<bool> bias_is_column;
    size_t K = 0;
    backprop_core::MLPView<T> view(double relu_grad_at_zero) const {
        return {K, dims.data(), w.data(), b.data(), T(relu_grad_at_zero)};
    }
};

// Checks the layer shapes against each other; D_0 is the width of all_weights[0].
template <class T>
Net<T> net_args(const py::sequence& all_weights, const py::sequence& all_biases) {
    Net<T> net;
    if (all_weights.size() == 0) value_error("all_weights: expected at least one layer, got none");
    if (all_biases.size() != all_weights.size())
        value_error("all_biases: expected one bias per layer (" +
                    std::to_string(all_weights.size()) + "), got " +
                    std::to_string(all_biases.size()));
    net.K = all_weights.size() - 1;
    for (size_t k = 0; k <= net.K; ++k) {
        auto W = as_input<T>(PySequence_Fast_GET_ITEM(all_weights.ptr(), k), Item{"all_weights", k});
        auto b = as_input<T>(PySequence_Fast_GET_ITEM(all_biases.ptr(), k), Item{"all_biases", k});
        const auto wk = [k] { return Item{"all_weights", k}.str(); };
        const auto bk = [k] { return Item{"all_biases", k}.str(); };
        if (W.ndim() != 2)
            value_error(wk() + ": expected a 2-D array (D_out, D_in), got shape " + shape_str(W));
        const size_t rows = size_t(W.shape(0)), cols = size_t(W.shape(1));
        if (k == 0) net.dims.push_back(cols);
        if (cols != net.dims.back())
            value_error(wk() + ": expected shape (D_out, " + std::to_string(net.dims.back()) +
                        ") to take the " + std::to_string(net.dims.back()) +
                        " outputs of layer " + std::to_string(k - 1) + ", got shape " +
                        shape_str(W));
        const bool column = b.ndim() == 2 && size_t(b.shape(0)) == rows && b.shape(1) == 1;
        const bool flat = b.ndim() == 1 && size_t(b.shape(0)) == rows;
        if (!column && !flat)
            value_error(bk() + ": expected shape " + shape_str({rows, 1}) + " (or " +
                        shape_str({rows}) + ") to match " + wk() + " of shape " + shape_str(W) +
                        ", got shape " + shape_str(b));
        net.dims.push_back(rows);
        net.w.push_back(data<T>(W));
        net.b.push_back(data<T>(b));
        net.bias_is_column.push_back(column);
        net.weights.push_back(std::move(W));
        net.biases.push_back(std::move(b));
    }
    return net;
}

template <class T> size_t batch_of(const py::array& x, const Net<T>& net, const std::string& name) {
    if (x.ndim() != 2 || size_t(x.shape(0)) != net.dims[0])
        value_error(name + ": expected shape (" + std::to_string(net.dims[0]) +
                    ", N) to match all_weights[0] of shape " +
                    shape_str({net.dims[1], net.dims[0]}) +
                    ", got shape " + shape_str(x));
    return size_t(x.shape(1));
}

// y broadcast against the output (D_o, N): returns element strides, 0 along broadcast axes.
template <class Y> std::array<size_t, 2> y_strides(const Y& y, size_t D_o, size_t N) {
    const auto fail = [&] {
        value_error("y: expected a scalar or an array broadcastable to " + shape_str({D_o, N}) +
                    ", got shape " + shape_str(y));
    };
    if (y.ndim() > 2) fail();
    size_t shape[2] = {1, 1};
    for (py::ssize_t i = 0; i < y.ndim(); ++i) shape[2 - y.ndim() + i] = size_t(y.shape(i));
    if ((shape[0] != 1 && shape[0] != D_o) || (shape[1] != 1 && shape[1] != N)) fail();
    return {shape[0] == 1 ? 0 : shape[1], shape[1] == 1 ? 0 : 1};
}

template <class T> struct Grads {
    py::list dW, db;
    std::vector<T*> w, b;
};

// The backward pass's scratch, its size checked first (MemoryError rather than a wrap-around).
size_t workspace_size(size_t K, const size_t* dims, size_t N) {
    for (size_t k = 0; k <= K + 1; ++k) checked_mul(2, checked_mul(dims[k], N));
    return backprop_core::mlp_workspace_size(K, dims, N);
}

template <class T> Grads<T> allocate_grads(const Net<T>& net) {
    Grads<T> g;
    g.w.reserve(net.K + 1);
    g.b.reserve(net.K + 1);
    for (size_t k = 0; k <= net.K; ++k) {
        auto dW = empty<T>({py::ssize_t(net.dims[k + 1]), py::ssize_t(net.dims[k])});
        auto db = net.bias_is_column[k] ? empty<T>({py::ssize_t(net.dims[k + 1]), 1})
                                        : empty<T>({py::ssize_t(net.dims[k + 1])});
        g.w.push_back(data(dW));
        g.b.push_back(data(db));
        g.dW.append(dW);
        g.db.append(db);
    }
    return g;
}

template <class T> py::tuple forward_net(const py::handle& net_input, const Net<T>& net) {
    auto x = as_input<T>(net_input, "net_input");
    const size_t N = batch_of(x, net, "net_input");
    py::list all_f, all_h;
    std::vector<T*> f, h;
    all_h.append(x.attr("copy")());  // the notebook's all_h[0] is the input; ours is a copy
    h.push_back(nullptr);
    for (size_t k = 0; k <= net.K; ++k) {
        auto fk = empty<T>({py::ssize_t(net.dims[k + 1]), py::ssize_t(N)});
        f.push_back(data(fk));
        all_f.append(fk);
        if (k == net.K) break;
        auto hk = empty<T>({py::ssize_t(net.dims[k + 1]), py::ssize_t(N)});
        h.push_back(data(hk));
        all_h.append(hk);
    }
    {
        ReleaseGil release(mlp_work(net.dims, N));
        backprop_core::mlp_forward(net.view(1.0), data<T>(x), N, f.data(), h.data());
    }
    return py::make_tuple(all_f[net.K], all_f, all_h);
}

template <class T>
py::tuple forward(const py::handle& net_input, const py::sequence& all_weights,
                  const py::sequence& all_biases) {
    return forward_net<T>(net_input, net_args<T>(all_weights, all_biases));
}

double checked_relu_grad(double c) {
    if (!(c >= 0.0 && c <= 1.0))
        value_error("relu_grad_at_zero: expected a value in [0, 1], got " + std::to_string(c));
    return c;
}

template <class T>
py::tuple backward(const py::sequence& all_weights, const py::sequence& all_biases,
                   const py::sequence& all_f, const py::sequence& all_h, const py::handle& y,
                   double relu_grad_at_zero) {
    auto net = net_args<T>(all_weights, all_biases);
    const size_t layers = net.K + 1;
    if (all_f.size() != layers)
        value_error("all_f: expected " + std::to_string(layers) + " arrays (one per layer), got " +
                    std::to_string(all_f.size()));
    if (all_h.size() != layers)
        value_error("all_h: expected " + std::to_string(layers) +
                    " arrays (the input and one per hidden layer), got " +
                    std::to_string(all_h.size()));
    std::vector<py::array> keep;
    std::vector<const T*> f, h;
    auto h0 = as_input<T>(all_h[0], "all_h[0]");
    const size_t N = batch_of(h0, net, "all_h[0]");
    for (size_t k = 0; k < layers; ++k) {
        auto ha = as_input<T>(PySequence_Fast_GET_ITEM(all_h.ptr(), k), Item{"all_h", k});
        auto fa = as_input<T>(PySequence_Fast_GET_ITEM(all_f.ptr(), k), Item{"all_f", k});
        const auto hk = [k] { return Item{"all_h", k}.str(); };
        const auto fk = [k] { return Item{"all_f", k}.str(); };
        if (ha.ndim() != 2 || size_t(ha.shape(0)) != net.dims[k] || size_t(ha.shape(1)) != N)
            value_error(hk() + ": expected shape " + shape_str({net.dims[k], N}) + " for layer " +
                        std::to_string(k) + ", got shape " + shape_str(ha));
        if (fa.ndim() != 2 || size_t(fa.shape(0)) != net.dims[k + 1] || size_t(fa.shape(1)) != N)
            value_error(fk() + ": expected shape " + shape_str({net.dims[k + 1], N}) +
                        " for layer " + std::to_string(k) + ", got shape " + shape_str(fa));
        h.push_back(data<T>(ha));
        f.push_back(data<T>(fa));
        keep.push_back(std::move(ha));
        keep.push_back(std::move(fa));
    }
    auto ya = input<T>(y, "y");
    const auto ys = y_strides(ya, net.dims[layers], N);
    const auto view = net.view(checked_relu_grad(relu_grad_at_zero));
    auto g = allocate_grads(net);
    std::vector<T> work(workspace_size(net.K, net.dims.data(), N));
    {
        ReleaseGil release(mlp_work(net.dims, N));
        backprop_core::mlp_backward(view, f.data(), h.data(), data<T>(ya), ys.data(), N,
                                    g.w.data(), g.b.data(), work.data());
    }
    return py::make_tuple(g.dW, g.db);
}

// What a forward and backward pass needs besides its inputs and outputs, kept between calls.
template <class T> struct Scratch {
    std::vector<T> store;  // f_k and h_{k+1} for every layer, then the backward scratch (or the
                           // blocked pass's scratch)
    std::vector<size_t> offsets;
    std::vector<const T*> f, h;
    std::vector<T*> fw, hw;
};

// Forward and backward pass with the intermediates in `s` (grown as needed). Releases the GIL
// around the core when the work repays it.
template <class T>
T run_gradients(const backprop_core::MLPView<T>& view, const T* x, size_t N, const T* y,
                const size_t* ys, Grads<T>& g, Scratch<T>& s) {
    const size_t K = view.K;
#if defined(BACKPROP_CORE_CBLAS)
    const backprop_core::BlockPlan plan(K, view.dims, N);
    if (plan.use) {  // blocks of samples forward and back, no f or h for all N kept
        // (use implies every layer and the block fit BLAS's int sizes: no overflow here)
        if (s.store.size() < plan.workspace()) s.store.resize(plan.workspace());
        ReleaseGil release(3 * mlp_work(view.dims, K + 2, N));
        return backprop_core::mlp_gradients_blocked(view, plan, x, N, y, ys, g.w.data(),
                                                    g.b.data(), s.store.data());
    }
#endif
    s.offsets.assign(1, 0);
    for (size_t k = 0; k <= K; ++k)
        s.offsets.push_back(checked_add(s.offsets.back(), checked_mul(view.dims[k + 1], N)));
    const size_t work = workspace_size(K, view.dims, N);
    const size_t total = s.offsets.back();
    const size_t need = checked_add(checked_mul(2, total), work);
    if (s.store.size() < need) s.store.resize(need);
    s.f.clear(), s.h.assign(1, x), s.fw.clear(), s.hw.assign(1, nullptr);
    for (size_t k = 0; k <= K; ++k) {
        s.fw.push_back(s.store.data() + s.offsets[k]);
        s.hw.push_back(s.store.data() + total + s.offsets[k]);
        s.f.push_back(s.fw.back());
        if (k) s.h.push_back(s.hw[k]);
    }
    ReleaseGil release(3 * mlp_work(view.dims, K + 2, N));
    backprop_core::mlp_forward(view, x, N, s.fw.data(), s.hw.data());
    return backprop_core::mlp_backward(view, s.f.data(), s.h.data(), y, ys, N, g.w.data(),
                                       g.b.data(), s.store.data() + 2 * total);
}

template <class T>
py::tuple gradients(const py::handle& net_input, const py::handle& y,
                    const py::sequence& all_weights, const py::sequence& all_biases,
                    double relu_grad_at_zero) {
    auto net = net_args<T>(all_weights, all_biases);
    auto x = as_input<T>(net_input, "net_input");
    const size_t N = batch_of(x, net, "net_input");
    auto ya = input<T>(y, "y");
    const auto ys = y_strides(ya, net.dims[net.K + 1], N);
    const auto view = net.view(checked_relu_grad(relu_grad_at_zero));
    auto g = allocate_grads(net);
    // Scratch kept per thread between calls: no allocation (and no page faults) per call.
    thread_local Scratch<T> scratch;
    const T loss = run_gradients(view, data<T>(x), N, data<T>(ya), ys.data(), g, scratch);
    if (scratch.store.size() > (size_t(1) << 27))  // keep at most 1 GiB between calls
        std::vector<T>().swap(scratch.store);
    return py::make_tuple(scalar(loss), g.dW, g.db);
}

// ----------------------------------------------------------------------------- dispatch
//
// The fast path: every array argument is already a C-contiguous float32 or float64 array, all of
// one dtype (Python floats are weak and take it). Anything else goes once through the dtype policy
// written in Python (backprop_core._dtype.normalize), which converts or raises, then comes back.

enum class Kind { f32, f64, other };

Kind kind_of(const py::handle& h) {
    if (PyFloat_CheckExact(h.ptr())) return Kind::other;  // weak: does not decide
    const auto& api = py::detail::npy_api::get();
    if (!api.PyArray_Check_(h.ptr())) return Kind::other;
    auto* proxy = py::detail::array_proxy(h.ptr());
    if (!(proxy->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) return Kind::other;
    if (native_dtype<float>(h)) return Kind::f32;
    if (native_dtype<double>(h)) return Kind::f64;
    return Kind::other;
}

// The call's dtype when every argument takes the fast path, else Kind::other.
Kind call_kind(const std::vector<py::handle>& args) {
    Kind k = Kind::other;
    bool any_array = false;
    for (const auto& h : args) {
        if (PyFloat_CheckExact(h.ptr())) continue;
        const Kind a = kind_of(h);
        if (a == Kind::other || (any_array && a != k)) return Kind::other;
        k = a;
        any_array = true;
    }
    return any_array ? k : Kind::other;
}

py::sequence as_list(const py::handle& h, const char* name) {
    if (!PyList_Check(h.ptr()) && !PyTuple_Check(h.ptr()))
        type_error(std::string(name) + ": expected a list of arrays, got " +
                   std::string(py::str(py::type::of(h).attr("__name__"))));
    return py::reinterpret_borrow<py::sequence>(h);
}

void append_items(std::vector<py::handle>& out, const py::sequence& s) {
    for (size_t i = 0; i < s.size(); ++i) out.push_back(PySequence_Fast_GET_ITEM(s.ptr(), i));
}

// Runs the dtype policy on named arguments; returns C-contiguous arrays of one dtype.
std::vector<py::object> normalize(const std::vector<std::string>& names,
                                  const std::vector<py::handle>& values) {
    static py::object fn = py::module_::import("backprop_core._dtype").attr("normalize");
    py::list n, v;
    for (size_t i = 0; i < names.size(); ++i) {
        n.append(names[i]);
        v.append(values[i]);
    }
    py::list out = fn(n, v);
    std::vector<py::object> result;
    for (auto item : out) result.push_back(py::reinterpret_borrow<py::object>(item));
    return result;
}

std::vector<std::string> layer_names(const char* name, size_t n) {
    std::vector<std::string> out;
    for (size_t k = 0; k < n; ++k) out.push_back(std::string(name) + "[" + std::to_string(k) + "]");
    return out;
}

py::list slice(const std::vector<py::object>& v, size_t from, size_t count) {
    py::list out;
    for (size_t i = from; i < from + count; ++i) out.append(v[i]);
    return out;
}

py::object toy_forward_entry(const py::handle& x, const py::handle& beta, const py::handle& omega,
                             const py::handle& activations) {
    auto acts = py::reinterpret_borrow<py::sequence>(activations);
    switch (call_kind({x, beta, omega})) {
    case Kind::f32: return toy_forward<float>(x, beta, omega, acts);
    case Kind::f64: return toy_forward<double>(x, beta, omega, acts);
    default: {
        auto v = normalize({"x", "beta", "omega"}, {x, beta, omega});
        if (call_kind({v[0], v[1], v[2]}) == Kind::other) type_error("x: could not be converted");
        return toy_forward_entry(v[0], v[1], v[2], activations);
    }
    }
}

// The toy chain's entries with targets: float32 or float64 by the fast path, else once through
// the dtype policy.
template <template <class> class Fn>
py::object toy_entry(const py::handle& x, const py::handle& y, const py::handle& beta,
                     const py::handle& omega, const py::handle& activations, double c) {
    auto acts = py::reinterpret_borrow<py::sequence>(activations);
    switch (call_kind({x, y, beta, omega})) {
    case Kind::f32: return Fn<float>::call(x, y, beta, omega, acts, c);
    case Kind::f64: return Fn<double>::call(x, y, beta, omega, acts, c);
    default: {
        auto v = normalize({"x", "y", "beta", "omega"}, {x, y, beta, omega});
        if (call_kind({v[0], v[1], v[2], v[3]}) == Kind::other) type_error("x: could not be converted");
        return toy_entry<Fn>(v[0], v[1], v[2], v[3], activations, c);
    }
    }
}

template <class T> struct ToyBackwardFn {
    template <class... A> static py::object call(A&&... a) { return toy_backward<T>(a...); }
};
template <class T> struct ToyGradientsFn {
    template <class... A> static py::object call(A&&... a) { return toy_gradients<T>(a...); }
};

// Dispatches an MLP call: `singles` are named array arguments, then the layer lists.
template <class F>
py::object mlp_entry(const std::vector<std::pair<const char*, py::handle>>& singles,
                     const std::vector<std::pair<const char*, py::handle>>& lists, F&& call) {
    std::vector<py::handle> all;
    std::vector<py::sequence> seqs;
    for (auto& s : singles) all.push_back(s.second);
    for (auto& l : lists) {
        seqs.push_back(as_list(l.second, l.first));
        append_items(all, seqs.back());
    }
    const Kind k = all.empty() ? Kind::f64 : call_kind(all);  // nothing to convert: let it say why
    if (k != Kind::other) return call(k, all, seqs);
    std::vector<std::string> names;
    for (auto& s : singles) names.push_back(s.first);
    for (size_t i = 0; i < lists.size(); ++i)
        for (auto& n : layer_names(lists[i].first, seqs[i].size())) names.push_back(n);
    auto v = normalize(names, all);
    std::vector<py::handle> hv(v.begin(), v.end());
    std::vector<py::sequence> rebuilt;
    size_t at = singles.size();
    for (auto& s : seqs) {
        rebuilt.push_back(slice(v, at, s.size()));
        at += s.size();
    }
    const Kind k2 = call_kind(hv);
    if (k2 == Kind::other) type_error("arguments could not be converted to one float dtype");
    return call(k2, hv, rebuilt);
}


// ----------------------------------------------------------------------------- the model object

// An MLP whose parameters live packed in native memory: W_0, b_0, W_1, b_1, ... One dtype, fixed
// at construction. `weights` and `biases` are writeable views of that memory.
template <class T> struct Packed {
    std::vector<T> params;
    Net<T> net;  // the layout, pointing into params
    Scratch<T> scratch;
};

class NativeMLP {
  public:
    NativeMLP(const NativeMLP&) = delete;  // its layout points into its own parameters
    NativeMLP& operator=(const NativeMLP&) = delete;
    NativeMLP(const py::handle& all_weights, const py::handle& all_biases) {
        mlp_entry({}, {{"all_weights", all_weights}, {"all_biases", all_biases}},
                  [this](Kind k, const std::vector<py::handle>&, const std::vector<py::sequence>& s) {
                      f32_ = k == Kind::f32;
                      if (f32_) load<float>(s[0], s[1]);
                      else load<double>(s[0], s[1]);
                      return py::none();
                  });
    }

    bool f32() const { return f32_; }
    size_t layers() const { return K_ + 1; }
    const std::vector<size_t>& dims() const { return dims_; }

    py::list views(py::object self, bool weights) {
        return f32_ ? views_of<float>(self, weights, p32_) : views_of<double>(self, weights, p64_);
    }

    py::object forward(const py::handle& net_input) {
        auto x = model_input(net_input, "net_input");
        return f32_ ? forward_net<float>(x, p32_.net) : forward_net<double>(x, p64_.net);
    }

    py::object gradients(const py::handle& net_input, const py::handle& y, double c,
                         const py::handle& out) {
        auto x = model_input(net_input, "net_input");
        auto ya = model_input(y, "y");
        return f32_ ? gradients_of<float>(x, ya, c, out, p32_)
                    : gradients_of<double>(x, ya, c, out, p64_);
    }

  private:
    bool f32_ = false;
    size_t K_ = 0;
    std::vector<size_t> dims_, w_off_, b_off_;
    std::vector<bool> column_;
    Packed<float> p32_;
    Packed<double> p64_;
    std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();

    template <class T> void load(const py::sequence& W, const py::sequence& b) {
        auto net = net_args<T>(W, b);
        K_ = net.K;
        dims_ = net.dims;
        column_ = net.bias_is_column;
        size_t total = 0;
        for (size_t k = 0; k <= K_; ++k) {
            w_off_.push_back(total);
            total = checked_add(total, checked_mul(dims_[k + 1], dims_[k]));
            b_off_.push_back(total);
            total = checked_add(total, dims_[k + 1]);
        }
        auto& p = packed<T>();
        p.params.resize(total);
        for (size_t k = 0; k <= K_; ++k) {
            std::copy_n(net.w[k], dims_[k + 1] * dims_[k], p.params.data() + w_off_[k]);
            std::copy_n(net.b[k], dims_[k + 1], p.params.data() + b_off_[k]);
        }
        p.net.K = K_;
        p.net.dims = dims_;
        p.net.bias_is_column = column_;
        for (size_t k = 0; k <= K_; ++k) {
            p.net.w.push_back(p.params.data() + w_off_[k]);
            p.net.b.push_back(p.params.data() + b_off_[k]);
        }
    }

    template <class T> Packed<T>& packed() {
        if constexpr (std::is_same_v<T, float>) return p32_;
        else return p64_;
    }

    // Views of the packed parameters; `self` (the model) is their base, keeping it alive. With
    // `self` None they are temporary views for one call.
    template <class T> py::list views_of(py::object self, bool weights, Packed<T>& p) {
        py::list out;
        for (size_t k = 0; k <= K_; ++k) {
            const auto M = py::ssize_t(dims_[k + 1]), D = py::ssize_t(dims_[k]);
            std::vector<py::ssize_t> shape = weights ? std::vector<py::ssize_t>{M, D}
                                             : column_[k] ? std::vector<py::ssize_t>{M, 1}
                                                          : std::vector<py::ssize_t>{M};
            T* ptr = p.params.data() + (weights ? w_off_[k] : b_off_[k]);
            out.append(self.is_none() ? py::array_t<T>(shape, ptr, py::none())
                                      : py::array_t<T>(shape, ptr, self));
        }
        return out;
    }

    // An input converted by the dtype policy; a dtype other than the model's is refused rather
    // than cast (float64 data into a float32 model would lose precision silently).
    py::object model_input(const py::handle& v, const char* name) {
        const Kind want = f32_ ? Kind::f32 : Kind::f64;
        if (PyFloat_CheckExact(v.ptr()) || kind_of(v) == want)
            return py::reinterpret_borrow<py::object>(v);
        py::object probe = f32_ ? py::object(py::array_t<float>(0)) : py::object(py::array_t<double>(0));
        auto conv = normalize({name, "the model"}, {v, probe});
        if (kind_of(conv[0]) != want)
            type_error(std::string(name) + ": expected " + (f32_ ? "float32" : "float64") +
                       " data (the model's dtype), got " +
                       std::string(py::str(py::array(conv[0]).dtype())));
        return conv[0];
    }

    template <class T>
    py::tuple gradients_of(const py::object& net_input, const py::object& y, double c,
                           const py::handle& out, Packed<T>& p) {
        const Net<T>& net = p.net;
        auto x = as_input<T>(net_input, "net_input");
        if (x.ndim() != 2 || size_t(x.shape(0)) != dims_[0])
            value_error("net_input: expected shape (" + std::to_string(dims_[0]) +
                        ", N), got shape " + shape_str(x));
        const size_t N = size_t(x.shape(1));
        auto ya = input<T>(y, "y");
        const auto ys = y_strides(ya, dims_[K_ + 1], N);
        const auto view = net.view(checked_relu_grad(c));
        Grads<T> g = out.is_none() ? allocate_grads(net) : grads_into(net, out);
        T loss;
        {
            std::unique_lock<std::mutex> lock(*mutex_, std::try_to_lock);
            if (!lock.owns_lock()) {
                py::gil_scoped_release release;
                lock.lock();  // with the GIL released: no deadlock with the caller holding it
            }
            loss = run_gradients(view, data<T>(x), N, data<T>(ya), ys.data(), g, p.scratch);
        }
        if (!out.is_none())  // the caller's own lists, now filled
            return py::make_tuple(scalar(loss), py::handle(PyTuple_GET_ITEM(out.ptr(), 0)),
                                  py::handle(PyTuple_GET_ITEM(out.ptr(), 1)));
        return py::make_tuple(scalar(loss), g.dW, g.db);
    }

    // Caller-provided buffers: (all_dl_dweights, all_dl_dbiases), shaped like the parameters.
    template <class T> Grads<T> grads_into(const Net<T>& net, const py::handle& out) {
        if (!PyTuple_Check(out.ptr()) || PyTuple_GET_SIZE(out.ptr()) != 2)
            type_error("out: expected a pair (all_dl_dweights, all_dl_dbiases)");
        Grads<T> g;
        g.w.reserve(K_ + 1);
        g.b.reserve(K_ + 1);
        auto dW = as_list(PyTuple_GET_ITEM(out.ptr(), 0), "out[0]");
        auto db = as_list(PyTuple_GET_ITEM(out.ptr(), 1), "out[1]");
        if (dW.size() != K_ + 1 || db.size() != K_ + 1)
            value_error("out: expected " + std::to_string(K_ + 1) + " arrays in each list");
        for (size_t k = 0; k <= K_; ++k) {
            for (int which = 0; which < 2; ++which) {
                const Item name{which ? "out[1]" : "out[0]", k};
                auto a = as_input<T>(PySequence_Fast_GET_ITEM((which ? db : dW).ptr(), k), name);
                const size_t rows = dims_[k + 1], cols = which ? 1 : dims_[k];
                const bool ok = which ? (size_t(a.size()) == rows &&
                                         (a.ndim() == 1 || (a.ndim() == 2 && a.shape(0) == py::ssize_t(rows))))
                                      : (a.ndim() == 2 && size_t(a.shape(0)) == rows &&
                                         size_t(a.shape(1)) == cols);
                if (!ok)
                    value_error(name.str() + ": expected shape " + shape_str({rows, cols}) +
                                ", got shape " + shape_str(a));
                if (!a.writeable()) value_error(name.str() + ": expected a writeable array");
                (which ? g.b : g.w).push_back(static_cast<T*>(a.mutable_data()));
            }
        }
        return g;
    }
};
}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "Native core of backprop_core (private: use the backprop_core package).";
    m.def("blas", &backprop_core::blas_name,
          "The BLAS that large matrix products go to, as built in (or 'none').");
    m.def("threads", &backprop_core::parallel_threads,
          "Threads the large passes may use, the caller's included (the CPUs this process may "
          "run on, or BACKPROP_CORE_NUM_THREADS). Results do not depend on it.");
    m.def("toy_forward", &toy_forward_entry, "x"_a, "beta"_a, "omega"_a, "activations"_a,
          "Forward pass of the toy chain: returns (f, h).");
    m.def("toy_backward", &toy_entry<ToyBackwardFn>, "x"_a, "y"_a, "beta"_a, "omega"_a,
          "activations"_a, "relu_grad_at_zero"_a,
          "Forward and backward pass of the toy chain: returns "
          "(loss, f, h, dl_df, dl_dh, dl_dbeta, dl_domega).");
    m.def("toy_gradients", &toy_entry<ToyGradientsFn>, "x"_a, "y"_a, "beta"_a, "omega"_a,
          "activations"_a, "relu_grad_at_zero"_a,
          "Loss and parameter gradients of the toy chain, no per-sample output: returns "
          "(loss, dl_dbeta, dl_domega).");
    m.def(
        "forward",
        [](const py::handle& net_input, const py::handle& all_weights,
           const py::handle& all_biases) {
            return mlp_entry({{"net_input", net_input}},
                             {{"all_weights", all_weights}, {"all_biases", all_biases}},
                             [](Kind k, const std::vector<py::handle>& a,
                                const std::vector<py::sequence>& s) -> py::object {
                                 if (k == Kind::f32) return forward<float>(a[0], s[0], s[1]);
                                 return forward<double>(a[0], s[0], s[1]);
                             });
        },
        "net_input"_a, "all_weights"_a, "all_biases"_a,
        "Forward pass of the ReLU MLP: returns (net_output, all_f, all_h).");
    m.def(
        "backward",
        [](const py::handle& all_weights, const py::handle& all_biases, const py::handle& all_f,
           const py::handle& all_h, const py::handle& y, double c) {
            return mlp_entry({{"y", y}},
                             {{"all_weights", all_weights}, {"all_biases", all_biases},
                              {"all_f", all_f}, {"all_h", all_h}},
                             [c](Kind k, const std::vector<py::handle>& a,
                                 const std::vector<py::sequence>& s) -> py::object {
                                 if (k == Kind::f32)
                                     return backward<float>(s[0], s[1], s[2], s[3], a[0], c);
                                 return backward<double>(s[0], s[1], s[2], s[3], a[0], c);
                             });
        },
        "all_weights"_a, "all_biases"_a, "all_f"_a, "all_h"_a, "y"_a, "relu_grad_at_zero"_a,
        "Backward pass of the ReLU MLP: returns (all_dl_dweights, all_dl_dbiases).");
    m.def(
        "gradients",
        [](const py::handle& net_input, const py::handle& y, const py::handle& all_weights,
           const py::handle& all_biases, double c) {
            return mlp_entry({{"net_input", net_input}, {"y", y}},
                             {{"all_weights", all_weights}, {"all_biases", all_biases}},
                             [c](Kind k, const std::vector<py::handle>& a,
                                 const std::vector<py::sequence>& s) -> py::object {
                                 if (k == Kind::f32)
                                     return gradients<float>(a[0], a[1], s[0], s[1], c);
                                 return gradients<double>(a[0], a[1], s[0], s[1], c);
                             });
        },
        "net_input"_a, "y"_a, "all_weights"_a, "all_biases"_a, "relu_grad_at_zero"_a,
        "Loss and gradients of the ReLU MLP in one pass: returns "
        "(loss, all_dl_dweights, all_dl_dbiases).");
    py::class_<NativeMLP>(m, "MLP", R"doc(A ReLU MLP whose parameters live packed in native memory.

Parameters
----------
all_weights : list of array_like
    ``all_weights[k]`` of shape (D_{k+1}, D_k); copied in.
all_biases : list of array_like
    ``all_biases[k]`` of shape (D_{k+1}, 1) or (D_{k+1},); copied in.

Notes
-----
The dtype (float32 or float64) is fixed at construction by numpy's promotion of the parameters.
``weights`` and ``biases`` are writeable views of the packed memory, so an update such as
``m.weights[0] -= lr * dW[0]`` changes the model. Inputs of another float dtype are refused
(``TypeError``) rather than cast. Models pickle (their parameters travel as plain arrays), and one
model may be used from several threads (calls on it are serialised).
)doc")
        .def(py::init<const py::handle&, const py::handle&>(), "all_weights"_a, "all_biases"_a)
        .def_property_readonly("weights",
                               [](py::object self) { return self.cast<NativeMLP&>().views(self, true); })
        .def_property_readonly("biases",
                               [](py::object self) { return self.cast<NativeMLP&>().views(self, false); })
        .def_property_readonly("dtype",
                               [](const NativeMLP& m) {
                                   return m.f32() ? py::dtype::of<float>() : py::dtype::of<double>();
                               })
        .def_property_readonly("dims", &NativeMLP::dims)
        .def("forward", &NativeMLP::forward, "net_input"_a, R"doc(Forward pass.

Parameters
----------
net_input : array_like, shape (D_0, N)
    Samples as columns, of the model's dtype.

Returns
-------
net_output, all_f, all_h
    As :func:`backprop_core.forward` returns.
)doc")
        .def("gradients", &NativeMLP::gradients, "net_input"_a, "y"_a,
             "relu_grad_at_zero"_a = 1.0, "out"_a = py::none(), R"doc(Loss and every weight and bias derivative.

Parameters
----------
net_input : array_like, shape (D_0, N)
    Samples as columns, of the model's dtype.
y : float or array_like
    Targets, broadcastable to (D_{K+1}, N).
relu_grad_at_zero : float, default 1.0
    The ReLU derivative at exactly 0: 1 is notebook 7.2's indicator (f >= 0), 0 is PyTorch's.
out : tuple of two lists of ndarray, optional
    ``(all_dl_dweights, all_dl_dbiases)``: C-contiguous, writeable arrays of the model's dtype
    shaped like the parameters, written in place and returned (no allocation per call).

Returns
-------
loss : numpy scalar
    ``sum 0.5 (f_K - y)^2``.
all_dl_dweights, all_dl_dbiases : list of ndarray
    Shaped like the parameters (the lists of ``out`` when given).
)doc")
        .def("__reduce__", [](py::object self) {
            // Rebuilt from copies of the parameters: plain arrays pickle anywhere.
            auto& m = self.cast<NativeMLP&>();
            py::list W, b;
            for (auto v : m.views(self, true)) W.append(v.attr("copy")());
            for (auto v : m.views(self, false)) b.append(v.attr("copy")());
            return py::make_tuple(py::type::of(self), py::make_tuple(W, b));
        });

}
