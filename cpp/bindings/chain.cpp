// Bindings of the chain object (backprop_core.Chain): a capsule handle holding the chain's
// activations and parameters natively, and its passes. Convert, check, call the core.
//
// chain_gradients is the one call made per sample in a loop, so it has a METH_FASTCALL entry of
// its own: when every argument is already what the core reads (x and y Python floats, the ReLU
// derivative a float in [0, 1], out None or two float arrays of the chain's dtype and length
// that overlap nothing), it calls the core's one-sample pass and builds the result directly;
// anything else goes to the general entry, which checks and converts as every binding does.
// The fast entry decides with type and flag checks only: it never converts, so it cannot accept
// what the general entry would refuse.
#include <memory>

#include "backprop_core/toy.hpp"
#include "intake.hpp"

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {
namespace {

namespace core = backprop_core;
using namespace pybind11::literals;

template <class T> struct ChainHandle {
    std::shared_ptr<core::Chain<T>> chain;  // each call and each view holds its own reference
};

template <class T> const char* chain_name() {
    return sizeof(T) == 4 ? "backprop_core.Chain[float32]" : "backprop_core.Chain[float64]";
}

template <class T> py::capsule make_chain_handle(ChainHandle<T> h) {
    return py::capsule(new ChainHandle<T>(std::move(h)), chain_name<T>(), [](PyObject* o) {
        delete static_cast<ChainHandle<T>*>(PyCapsule_GetPointer(o, chain_name<T>()));
    });
}

int chain_kind(py::handle h) {
    if (PyCapsule_IsValid(h.ptr(), chain_name<float>())) return 4;
    if (PyCapsule_IsValid(h.ptr(), chain_name<double>())) return 8;
    type_error("chain: expected a native chain handle, got " + type_name(h));
}

template <class T> core::Chain<T>* chain_ptr(py::handle h) {  // borrowed: h holds it
    return static_cast<ChainHandle<T>*>(PyCapsule_GetPointer(h.ptr(), chain_name<T>()))
        ->chain.get();
}

std::string chain_shape(std::size_t L) {
    return shape_str({L + 1}) + " for a chain of " + std::to_string(L) + " activations";
}

// The caller's out = (dl_dbeta, dl_domega): C-contiguous writeable arrays of dtype T and shape
// (L + 1,) overlapping neither each other nor what the pass reads. null when out is not that.
template <class T> struct Out {
    T* dbeta = nullptr;
    T* domega = nullptr;
};

template <class T> bool is_out_array(PyObject* o, std::size_t n) {
    if (float_kind(o) != int(sizeof(T))) return false;
    const auto a = py::reinterpret_borrow<py::array>(o);
    return a.ndim() == 1 && std::size_t(a.shape(0)) == n && a.writeable();
}

// The fast entry's test: every condition a flag or a comparison.
template <class T> Out<T> fast_out(PyObject* out, const core::Chain<T>& c) {
    if (!PyTuple_CheckExact(out) || PyTuple_GET_SIZE(out) != 2) return {};
    PyObject *b = PyTuple_GET_ITEM(out, 0), *w = PyTuple_GET_ITEM(out, 1);
    const std::size_t n = c.L() + 1, bytes = n * sizeof(T);
    if (!is_out_array<T>(b, n) || !is_out_array<T>(w, n)) return {};
    T* pb = static_cast<T*>(py::reinterpret_borrow<py::array>(b).mutable_data());
    T* pw = static_cast<T*>(py::reinterpret_borrow<py::array>(w).mutable_data());
    if (overlaps(pb, bytes, pw, bytes) || overlaps(pb, bytes, c.data(), c.size() * sizeof(T)) ||
        overlaps(pw, bytes, c.data(), c.size() * sizeof(T)))
        return {};
    return {pb, pw};
}

template <class T> PyTypeObject* gradients_type() {
    static PyTypeObject* type = result_type("ToyGradients");
    return type;
}

// The one-sample call, or null (no error set) when the arguments are not all simple.
template <class T> PyObject* fast_gradients(PyObject* const* args) {
    PyObject *x = args[1], *y = args[2], *c = args[3], *out = args[4];
    if (!PyFloat_CheckExact(x) || !PyFloat_CheckExact(y) || !PyFloat_CheckExact(c)) return nullptr;
    const double c0 = PyFloat_AS_DOUBLE(c);
    if (!(c0 >= 0.0 && c0 <= 1.0)) return nullptr;
    const core::Chain<T>& chain = *chain_ptr<T>(args[0]);
    if (chain.L() > core::toy_one_max_L) return nullptr;
    py::object dbeta, domega;
    Out<T> o;
    if (out == Py_None) {
        auto b = empty<T>({chain.L() + 1}), w = empty<T>({chain.L() + 1});
        o = {b.mutable_data(), w.mutable_data()};
        dbeta = std::move(b), domega = std::move(w);
    } else {
        o = fast_out<T>(out, chain);
        if (!o.dbeta) return nullptr;
        dbeta = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out, 0));
        domega = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out, 1));
    }
    const T loss = core::toy_gradients_one(chain.view(T(c0)), T(PyFloat_AS_DOUBLE(x)),
                                           T(PyFloat_AS_DOUBLE(y)), o.dbeta, o.domega);
    return named(gradients_type<T>(), {loss_scalar(loss), dbeta, domega}).release().ptr();
}

// ----------------------------------------------------------------------------- general entries

double checked_c(py::handle c) {  // the package's policy for relu_grad_at_zero, written once
    static py::object* check = new py::object(  // held for the life of the process
        py::module_::import("backprop_core._api").attr("check_relu_grad_at_zero"));
    return (*check)(c).cast<double>();
}

template <class T>
py::object gradients_general(py::handle handle, Args& args, double c, py::handle out) {
    const auto keep = py::reinterpret_borrow<py::object>(handle);  // the chain lives to the end
    const core::Chain<T>& chain = *chain_ptr<T>(handle);
    const std::size_t L = chain.L();
    const auto x = args.in<T>(0), y = args.in<T>(1);
    if (x.ndim() > 1)
        value_error("x: expected a scalar or a 1-D array of samples, got shape " + x.shape_str());
    const bool batched = x.ndim() == 1;
    const std::size_t N = batched ? x.shape(0) : 1;
    const std::size_t y_stride = y.ndim() == 0 ? 0 : 1;
    if (y_stride && (!batched || y.ndim() != 1 || y.shape(0) != N))
        value_error("y: expected a scalar or the shape of x " + x.shape_str() + ", got shape " +
                    y.shape_str());
    py::object dbeta, domega;
    Out<T> o;
    if (out.is_none()) {
        auto b = empty<T>({L + 1}), w = empty<T>({L + 1});
        o = {b.mutable_data(), w.mutable_data()};
        dbeta = std::move(b), domega = std::move(w);
    } else {
        if (!PyTuple_Check(out.ptr()) || PyTuple_GET_SIZE(out.ptr()) != 2)
            type_error("out: expected a pair (dl_dbeta, dl_domega), got " +
                       (PyTuple_Check(out.ptr()) ? "a tuple of " + std::to_string(PyTuple_GET_SIZE(out.ptr())) : type_name(out)));
        const char* names[2] = {"out[0]", "out[1]"};
        const std::size_t bytes = (L + 1) * sizeof(T);
        T* p[2];
        for (int i = 0; i < 2; ++i) {
            PyObject* a = PyTuple_GET_ITEM(out.ptr(), i);
            if (float_kind(a) != int(sizeof(T)))
                type_error(std::string(names[i]) + ": expected a C-contiguous, aligned numpy array of dtype " +
                           (sizeof(T) == 4 ? "float32" : "float64") + " (the chain's), got " +
                           describe(a));
            if (!is_out_array<T>(a, L + 1))
                value_error(std::string(names[i]) + ": expected a writeable array of shape " +
                            chain_shape(L) + ", got shape " +
                            py::str(py::handle(a).attr("shape")).cast<std::string>() +
                            (py::reinterpret_borrow<py::array>(a).writeable() ? "" : ", read-only"));
            p[i] = static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
            const auto refuse = [&](const std::string& other) {
                value_error(std::string(names[i]) + " overlaps " + other +
                            ": gradients would be written over memory the call reads or writes");
            };
            if (overlaps(p[i], bytes, chain.data(), chain.size() * sizeof(T)))
                refuse("the chain's parameters");
            if (i == 1 && overlaps(p[1], bytes, p[0], bytes)) refuse("out[0]");
            for (const auto& [in, name] : {std::pair{&x, "x"}, std::pair{&y, "y"}})
                if (!in->scalar && overlaps(p[i], bytes, in->a.data(), std::size_t(in->a.nbytes())))
                    refuse(name);
        }
        o = {p[0], p[1]};
        dbeta = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out.ptr(), 0));
        domega = py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(out.ptr(), 1));
    }
    T loss;
    {
        ReleaseGil release(40.0 * double(N) * double(L + 1));
        loss = core::toy_gradients(chain.view(T(c)), x.ptr(), y.ptr(), y_stride, N, o.dbeta,
                                   o.domega);
    }
    return named(gradients_type<T>(), {loss_scalar(loss), dbeta, domega});
}

template <class T> py::object forward(py::handle handle, const Args& args) {
    const auto keep = py::reinterpret_borrow<py::object>(handle);
    const core::Chain<T>& chain = *chain_ptr<T>(handle);
    const std::size_t L = chain.L();
    const auto x = args.in<T>(0);
    if (x.ndim() > 1)
        value_error("x: expected a scalar or a 1-D array of samples, got shape " + x.shape_str());
    const bool batched = x.ndim() == 1;
    const std::size_t N = batched ? x.shape(0) : 1;
    const auto stage = [&](std::size_t rows) {
        return batched ? empty<T>({rows, N}) : empty<T>({rows});
    };
    auto f = stage(L + 1), h = stage(L);
    {
        ReleaseGil release(20.0 * double(N) * double(L + 1));
        core::toy_forward(chain.view(), x.ptr(), N, f.mutable_data(), h.mutable_data());
    }
    static PyTypeObject* type = result_type("ToyForward");
    return named(type, {f, h});
}

template <class T> py::capsule chain_new(const Args& args, std::vector<core::Activation> acts) {
    const std::size_t L = acts.size();
    const auto beta = args.in<T>(0), omega = args.in<T>(1);
    for (const auto& [p, name] : {std::pair{&beta, "beta"}, std::pair{&omega, "omega"}})
        if (p->ndim() != 1 || p->shape(0) != L + 1)
            value_error(std::string(name) + ": expected shape " + chain_shape(L) + ", got shape " +
                        p->shape_str());
    return make_chain_handle<T>(
        {std::make_shared<core::Chain<T>>(acts.data(), L, beta.ptr(), omega.ptr())});
}

// Views of beta and omega, writeable; their base is a handle of their own.
template <class T> py::tuple parameters(py::handle handle) {
    auto h = *static_cast<ChainHandle<T>*>(PyCapsule_GetPointer(handle.ptr(), chain_name<T>()));
    py::capsule base = make_chain_handle<T>(h);
    const py::ssize_t n = py::ssize_t(h.chain->L() + 1);
    return py::make_tuple(py::array_t<T>({n}, h.chain->beta(), base),
                          py::array_t<T>({n}, h.chain->omega(), base));
}

PyObject* general_gradients = nullptr;  // the general entry, held for the life of the process

// (chain, x, y, relu_grad_at_zero, out): the fast call when it applies, else the general one.
PyObject* gradients_call(PyObject* const* args) {
    try {
        PyObject* r = nullptr;
        if (PyCapsule_IsValid(args[0], chain_name<double>())) r = fast_gradients<double>(args);
        else if (PyCapsule_IsValid(args[0], chain_name<float>())) r = fast_gradients<float>(args);
        if (r || PyErr_Occurred()) return r;
    } catch (py::error_already_set& e) {
        e.restore();
        return nullptr;
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
    return PyObject_Vectorcall(general_gradients, args, 5, nullptr);
}

PyObject* gradients_entry(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 5) return PyObject_Vectorcall(general_gradients, args, size_t(nargs), nullptr);
    return gradients_call(args);
}

// Chain.gradients(self, x, y, *, relu_grad_at_zero=1.0, out=None) as a method of the Python
// class: its arguments parsed here (a Python-level wrapper would cost more than the pass).
PyObject* gradients_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) {
    static PyObject* const names[4] = {PyUnicode_InternFromString("x"),
                                       PyUnicode_InternFromString("y"),
                                       PyUnicode_InternFromString("relu_grad_at_zero"),
                                       PyUnicode_InternFromString("out")};
    static PyObject* const handle_name = PyUnicode_InternFromString("_handle");
    static PyObject* const one = PyFloat_FromDouble(1.0);
    PyObject* call[5] = {nullptr, nullptr, nullptr, one, Py_None};
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "gradients() takes 2 positional arguments (x, y) but %zd were given", nargs);
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) call[1 + i] = args[i];
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; ++i) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, i);
        int at = -1;
        for (int j = 0; j < 4 && at < 0; ++j)
            if (key == names[j]) at = j;
        for (int j = 0; j < 4 && at < 0; ++j)
            if (PyUnicode_Compare(key, names[j]) == 0) at = j;
        if (at < 0 || call[1 + at] != (at == 2 ? one : at == 3 ? Py_None : nullptr)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError,
                             at < 0 ? "gradients() got an unexpected keyword argument '%U'"
                                    : "gradients() got multiple values for argument '%U'",
                             key);
            return nullptr;
        }
        call[1 + at] = args[nargs + i];
    }
    if (!call[1] || !call[2]) {
        PyErr_Format(PyExc_TypeError, "gradients() missing required argument '%s'",
                     call[1] ? "y" : "x");
        return nullptr;
    }
    PyObject* handle = PyObject_GetAttr(self, handle_name);
    if (!handle) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
        PyErr_SetString(PyExc_RuntimeError,
                        "Chain: not initialised (made without __init__, e.g. by Chain.__new__ or a "
                        "pickle that carries no parameters); construct it as "
                        "Chain(beta, omega, activations=...)");
        return nullptr;
    }
    call[0] = handle;
    PyObject* r = gradients_call(call);
    Py_DECREF(handle);
    return r;
}

PyMethodDef gradients_def = {
    "chain_gradients", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(gradients_entry)),
    METH_FASTCALL,
    // (a signature line as pybind11 writes one, for help() and the stubs)
    "chain_gradients(chain: typing.Any, x: typing.Any, y: typing.Any, relu_grad_at_zero: "
    "typing.Any, out: typing.Any) -> typing.Any\n\nThe chain's loss and "
    "parameter gradients: ToyGradients(loss, dl_dbeta, dl_domega), into out when given."};

PyMethodDef gradients_method_def = {
    "gradients",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(gradients_method)),
    METH_FASTCALL | METH_KEYWORDS,
    "gradients($self, /, x, y, *, relu_grad_at_zero=1.0, out=None)\n--\n\n"
    "Loss and parameter derivatives, as :func:`backprop_core.toy_gradients` computes them.\n\n"
    "Parameters\n"
    "----------\n"
    "x : float or array_like, shape () or (N,)\n"
    "    One sample, or N samples.\n"
    "y : float or array_like, shape () or the shape of ``x``\n"
    "    Targets.\n"
    "relu_grad_at_zero : float, default 1.0\n"
    "    The derivative of ``\"relu\"`` at exactly 0 (1: notebook 7.2's indicator, 0: "
    "PyTorch's).\n"
    "out : tuple of two ndarray, optional\n"
    "    ``(dl_dbeta, dl_domega)``: C-contiguous, writeable arrays of the chain's dtype and\n"
    "    shape (L + 1,), written in place and returned. Neither may overlap the other, ``x``,\n"
    "    ``y`` or the chain's parameters (``ValueError`` naming both).\n\n"
    "Returns\n"
    "-------\n"
    "ToyGradients\n"
    "    ``loss`` (``sum (f_L - y)^2``, a numpy scalar), ``dl_dbeta`` and ``dl_domega``\n"
    "    (the arrays of ``out`` when given); the same bits as :func:`toy_gradients`.\n\n"
    "Notes\n"
    "-----\n"
    "A native method: with Python floats for ``x`` and ``y`` and ``out`` given, a call\n"
    "allocates nothing but the loss and its result tuple."};

}  // namespace

void bind_chain(py::module_& m) {
    m.def("chain_new", [](py::handle beta, py::handle omega, py::handle activations) -> py::object {
        auto acts = activations_of(activations);
        Args args;
        args.add("beta", beta);
        args.add("omega", omega);
        return args.convert() == 4 ? chain_new<float>(args, std::move(acts))
                                   : chain_new<double>(args, std::move(acts));
    }, "beta"_a, "omega"_a, "activations"_a, "A chain handle holding copies of the parameters.");
    m.def("chain_parameters", [](py::handle h) {
        return chain_kind(h) == 4 ? parameters<float>(h) : parameters<double>(h);
    }, "chain"_a, "Writeable views (beta, omega) of the chain's parameters.");
    m.def("chain_activations", [](py::handle h) {
        const auto& acts = chain_kind(h) == 4 ? chain_ptr<float>(h)->activations()
                                              : chain_ptr<double>(h)->activations();
        py::tuple names(acts.size());
        for (std::size_t i = 0; i < acts.size(); ++i)
            names[i] = py::str(std::string(core::activation_names[int(acts[i])]));
        return names;
    }, "chain"_a, "The chain's activations, as names.");
    m.def("chain_dtype", [](py::handle h) {
        return py::dtype(chain_kind(h) == 4 ? "float32" : "float64");
    }, "chain"_a, "The chain's dtype.");
    m.def("chain_forward", [](py::handle h, py::handle x) {
        const int kind = chain_kind(h);
        Args args;
        args.add("x", x);
        args.convert(kind);
        return kind == 4 ? forward<float>(h, args) : forward<double>(h, args);
    }, "chain"_a, "x"_a, "The chain's forward pass: ToyForward(f, h).");
    py::object general = py::cpp_function(
        [](py::handle h, py::handle x, py::handle y, py::handle c, py::handle out) {
            const int kind = chain_kind(h);
            const double c0 = checked_c(c);
            Args args;
            args.add("x", x);
            args.add("y", y);
            args.convert(kind);
            return kind == 4 ? gradients_general<float>(h, args, c0, out)
                             : gradients_general<double>(h, args, c0, out);
        },
        py::name("chain_gradients"), "chain"_a, "x"_a, "y"_a, "relu_grad_at_zero"_a, "out"_a);
    auto entry = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(&gradients_def, nullptr, m.attr("__name__").ptr()));
    if (!entry) throw py::error_already_set();
    m.add_object("chain_gradients", entry);
    m.def("chain_gradients_method", [](py::type cls) {
        return py::reinterpret_steal<py::object>(
            PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &gradients_method_def));
    }, "cls"_a, "Chain.gradients, a method descriptor of the class cls.");
    general_gradients = general.release().ptr();  // held for the life of the process
}

}  // namespace bind
