// Argument intake, stated once for every binding. The core reads only C-contiguous arrays of the
// call's dtype (float32 or float64, all the same); Python floats are weak and held by value.
// Arguments already like that (exact ndarrays) go straight through; anything else goes once
// through the dtype policy written in Python (backprop_core._dtype.normalize), which converts or
// raises. A list argument's items are read once, by iteration, into the call's own references
// (its len() is never trusted), and every array the core touches is held by the call until it
// returns, so other threads can change the caller's lists while the GIL is released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backprop_core/activations.hpp"

namespace py = pybind11;

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {

[[noreturn]] inline void value_error(const std::string& msg) { throw py::value_error(msg); }
[[noreturn]] inline void type_error(const std::string& msg) { throw py::type_error(msg); }

inline std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

inline std::string shape_str(const std::vector<std::size_t>& dims) {
    std::string s = "(";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (dims.size() == 1 ? ",)" : ")");
}

// The items of a list or tuple argument, read once (a tuple's cannot change; a list is copied by
// iteration, so a subclass's lying __len__ or a later mutation cannot reach the call).
inline std::vector<py::object> items_of(py::handle seq, const char* name,
                                        const char* what = "arrays") {
    if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr()))
        type_error(std::string(name) + ": expected a list or tuple of " + what + ", got " + type_name(seq));
    auto list = py::reinterpret_steal<py::object>(
        PyTuple_CheckExact(seq.ptr()) ? py::handle(seq).inc_ref() : PySequence_Tuple(seq.ptr()));
    if (!list) throw py::error_already_set();
    std::vector<py::object> items;
    items.reserve(std::size_t(PyTuple_GET_SIZE(list.ptr())));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(list.ptr()); ++i)
        items.push_back(py::reinterpret_borrow<py::object>(PyTuple_GET_ITEM(list.ptr(), i)));
    return items;
}

// 4 or 8 for an exact ndarray of native float32 / float64 that is C-contiguous and aligned; -1 for a Python
// float (weak: it takes the call's dtype); 0 for anything else.
inline int float_kind(py::handle h) {
    if (PyFloat_CheckExact(h.ptr())) return -1;
    static auto* ndarray = reinterpret_cast<PyTypeObject*>(  // held for the life of the process
        py::object(py::module_::import("numpy").attr("ndarray")).release().ptr());
    if (Py_TYPE(h.ptr()) != ndarray) return 0;  // subclasses (masked arrays...) go to the policy
    const auto a = py::reinterpret_borrow<py::array>(h);
    constexpr int aligned = 0x0100;  // NPY_ARRAY_ALIGNED: misaligned data would be undefined
    if (!(a.flags() & py::array::c_style) || !(a.flags() & aligned)) return 0;  // behaviour
    const py::dtype d = a.dtype();
    static const int f32 = py::dtype::of<float>().num(), f64 = py::dtype::of<double>().num();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (d.byteorder() == '<') return 0;
#else
    if (d.byteorder() == '>') return 0;
#endif
    return d.num() == f32 ? 4 : d.num() == f64 ? 8 : 0;
}

// What an object is, for messages: "a float64 array (not C-contiguous, not aligned)", "a list".
inline std::string describe(py::handle h) {
    if (!py::isinstance<py::array>(h)) return "a " + type_name(h);
    const auto a = py::reinterpret_borrow<py::array>(h);
    std::string s = "a " + std::string(py::str(a.dtype())) + " " + type_name(h);
    if (!(a.flags() & py::array::c_style)) s += " (not C-contiguous)";
    if (!(a.flags() & 0x0100)) s += " (not aligned)";
    return s;
}

// An input of dtype T: an array, or a Python float held by value.
template <class T> struct In {
    py::array a = py::reinterpret_steal<py::array>(py::handle());  // (py::array() would allocate)
    T value{};
    bool scalar = false;
    const T* ptr() const { return scalar ? &value : static_cast<const T*>(a.data()); }
    std::size_t ndim() const { return scalar ? 0 : std::size_t(a.ndim()); }
    std::size_t shape(std::size_t i) const { return std::size_t(a.shape(py::ssize_t(i))); }
    std::vector<std::size_t> dims() const {
        std::vector<std::size_t> d;
        for (std::size_t i = 0; i < ndim(); ++i) d.push_back(shape(i));
        return d;
    }
    std::string shape_str() const { return bind::shape_str(dims()); }
};

// One call's array arguments, by name (a list's items as name[k]), converted to one dtype.
class Args {
  public:
    Args() {
        values_.reserve(16);
        names_.reserve(16);
    }
    void add(const char* name, py::handle value) {
        values_.push_back(py::reinterpret_borrow<py::object>(value));
        names_.emplace_back(name, -1);
    }
    // Adds the items of a list argument; returns how many.
    std::size_t add_list(const char* name, py::handle seq) {
        auto items = items_of(seq, name);
        for (std::size_t k = 0; k < items.size(); ++k) {
            values_.push_back(std::move(items[k]));
            names_.emplace_back(name, long(k));
        }
        return items.size();
    }
    std::string name(std::size_t i) const {
        const auto& [base, k] = names_[i];
        return k < 0 ? std::string(base) : std::string(base) + "[" + std::to_string(k) + "]";
    }

    // Applies the dtype policy; returns 4 (float32) or 8 (float64). With `model` (4 or 8) the
    // call must come out in that dtype: another float dtype is refused, not cast.
    int convert(int model = 0) {
        int kind = fast_kind(model);
        if (kind > 0) return kind;
        // Held for the life of the process, never destroyed: a static py::object's destructor
        // runs after the interpreter has finalised, and aborts the process if it frees the last
        // reference (tests/test_hygiene.py, test_exit_after_the_dtype_policy_ran).
        static py::object* normalize =
            new py::object(py::module_::import("backprop_core._dtype").attr("normalize"));
        py::list names, values;
        for (std::size_t i = 0; i < values_.size(); ++i) names.append(name(i)), values.append(values_[i]);
        if (model) {  // the model's parameters take part in the promotion
            names.append("the model");
            values.append(model == 4 ? py::array(py::array_t<float>(0)) : py::array(py::array_t<double>(0)));
        }
        py::list out = (*normalize)(names, values);
        for (std::size_t i = 0; i < values_.size(); ++i) values_[i] = out[i];
        kind = fast_kind(0);
        if (kind <= 0) type_error(name(0) + ": the arguments could not be converted to one float dtype");
        if (model && kind != model)
            type_error(name(0) + ": expected " + (model == 4 ? "float32" : "float64") +
                       " data (the model's dtype); numpy's promotion of the arguments gives " +
                       (kind == 4 ? "float32" : "float64"));
        return kind;
    }

    template <class T> In<T> in(std::size_t i) const {
        In<T> in;
        if (PyFloat_CheckExact(values_[i].ptr())) {
            in.scalar = true;
            in.value = T(PyFloat_AS_DOUBLE(values_[i].ptr()));
        } else {
            in.a = py::reinterpret_borrow<py::array>(values_[i]);
        }
        return in;
    }
    std::size_t size() const { return values_.size(); }

  private:
    std::vector<py::object> values_;  // the call's own references
    std::vector<std::pair<const char*, long>> names_;

    int fast_kind(int want) const {
        int kind = want;
        for (const auto& v : values_) {
            const int k = float_kind(v);
            if (k == 0 || (k > 0 && kind && k != kind)) return 0;
            if (k > 0) kind = k;
        }
        return kind;
    }
};

// Releases the GIL for work large enough to repay it: a release and re-acquire costs about as
// much as a few thousand multiply-adds, so calls smaller than that keep it (as numpy does).
struct ReleaseGil {
    std::optional<py::gil_scoped_release> release;
    explicit ReleaseGil(double work) {
        if (work >= 20000) release.emplace();
    }
};

template <class T> py::array_t<T> empty(std::vector<std::size_t> shape) {
    return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// Results are built here as the named tuples of backprop_core._results (a tuple subclass made as
// tuple.__new__ makes it), and the loss as a numpy scalar (as numpy's reductions return): each
// costs a Python-level call otherwise, more than the one-sample pass itself.
inline PyTypeObject* result_type(const char* name) {
    return reinterpret_cast<PyTypeObject*>(
        py::object(py::module_::import("backprop_core._results").attr(name)).release().ptr());  // held
}

inline py::object named(PyTypeObject* type, std::initializer_list<py::object> items) {
    PyObject* r = type->tp_alloc(type, Py_ssize_t(items.size()));
    if (!r) throw py::error_already_set();
    Py_ssize_t i = 0;
    for (const auto& item : items) PyTuple_SET_ITEM(r, i++, item.inc_ref().ptr());
    return py::reinterpret_steal<py::object>(r);
}

// numpy's scalar object layout (numpy/arrayscalars.h): the value right after the header.
template <class T> struct NumpyScalar {
    PyObject_HEAD
    T obval;
};

// A numpy scalar of dtype T (the loss), as numpy's own reductions return.
template <class T> py::object loss_scalar(T v) {
    static auto* type = reinterpret_cast<PyTypeObject*>(  // held for the life of the process
        py::object(py::module_::import("numpy").attr(sizeof(T) == 4 ? "float32" : "float64")).release().ptr());
    PyObject* r = type->tp_alloc(type, 0);
    if (!r) throw py::error_already_set();
    reinterpret_cast<NumpyScalar<T>*>(r)->obval = v;
    return py::reinterpret_steal<py::object>(r);
}

inline bool overlaps(const void* a, std::size_t an, const void* b, std::size_t bn) {
    const char *a0 = static_cast<const char*>(a), *b0 = static_cast<const char*>(b);
    return a0 < b0 + bn && b0 < a0 + an;
}

// The activations argument, parsed (toy.cpp): TypeError / ValueError naming it.
std::vector<backprop_core::Activation> activations_of(py::handle names);

void bind_threads(py::module_& m);
void bind_toy(py::module_& m);
void bind_chain(py::module_& m);
void bind_mlp(py::module_& m);
void bind_train(py::module_& m);  // train.cpp

}  // namespace bind
