// Bindings of the toy chain (notebook 7.1): convert, check, call the core with the GIL released.
#include "backprop_core/toy.hpp"

#include "intake.hpp"

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {

namespace core = backprop_core;

std::vector<core::Activation> activations_of(py::handle names) {
    if (PyUnicode_Check(names.ptr()))
        type_error("activations: expected a list or tuple of names such as ('sin', 'exp'), got "
                   "the single str '" + names.cast<std::string>() + "'");
    std::vector<core::Activation> acts;
    const auto items = items_of(names, "activations", "names such as ('sin', 'exp')");
    acts.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto at = [i] { return "activations[" + std::to_string(i) + "]"; };
        if (!PyUnicode_Check(items[i].ptr()))
            type_error(at() + ": expected a str, got " + type_name(items[i]));
        Py_ssize_t len = 0;
        const char* s = PyUnicode_AsUTF8AndSize(items[i].ptr(), &len);
        if (!s) {  // (a lone surrogate cannot be UTF-8: no activation has that name)
            PyErr_Clear();
            value_error(at() + ": not a valid name (it cannot be encoded as UTF-8)");
        }
        try {
            acts.push_back(core::activation_from_name({s, std::size_t(len)}));
        } catch (const std::invalid_argument& e) {
            value_error(std::string(e.what()) + " (at " + at() + ")");
        }
    }
    return acts;
}

namespace {

using namespace pybind11::literals;

enum class Pass { forward, backward, gradients };

template <class T>
py::tuple toy(Pass pass, const Args& args, const std::vector<core::Activation>& acts, double c) {
    const std::size_t L = acts.size();
    const bool targets = pass != Pass::forward;
    const auto x = args.in<T>(0), beta = args.in<T>(targets ? 2 : 1),
               omega = args.in<T>(targets ? 3 : 2);
    if (x.ndim() > 1)
        value_error("x: expected a scalar or a 1-D array of samples, got shape " + x.shape_str());
    const bool batched = x.ndim() == 1;
    const std::size_t N = batched ? x.shape(0) : 1;
    for (const auto& [p, name] : {std::pair{&beta, "beta"}, std::pair{&omega, "omega"}})
        if (p->ndim() != 1 || p->shape(0) != L + 1)
            value_error(std::string(name) + ": expected shape " + shape_str({L + 1}) +
                        " for a chain of " + std::to_string(L) + " activations, got shape " +
                        p->shape_str());
    In<T> y;
    std::size_t y_stride = 0;
    if (targets) {
        y = args.in<T>(1);
        y_stride = y.ndim() == 0 ? 0 : 1;
        if (y_stride && (!batched || y.ndim() != 1 || y.shape(0) != N))
            value_error("y: expected a scalar or the shape of x " + x.shape_str() +
                        ", got shape " + y.shape_str());
    }
    const core::ToyChain<T> chain{acts.data(), L, beta.ptr(), omega.ptr(), T(c)};
    const auto stage = [&](std::size_t rows) {
        return batched ? empty<T>({rows, N}) : empty<T>({rows});
    };
    const double work = 40.0 * double(N) * double(L + 1);
    if (pass == Pass::forward) {
        auto f = stage(L + 1), h = stage(L);
        {
            ReleaseGil release(work / 2);
            core::toy_forward(chain, x.ptr(), N, f.mutable_data(), h.mutable_data());
        }
        return py::make_tuple(f, h);
    }
    auto dl_dbeta = empty<T>({L + 1}), dl_domega = empty<T>({L + 1});
    if (pass == Pass::gradients) {
        T loss;
        {
            ReleaseGil release(work);
            loss = core::toy_gradients(chain, x.ptr(), y.ptr(), y_stride, N,
                                       dl_dbeta.mutable_data(), dl_domega.mutable_data());
        }
        return py::make_tuple(loss_scalar(loss), dl_dbeta, dl_domega);
    }
    auto f = stage(L + 1), h = stage(L), dl_df = stage(L + 1), dl_dh = stage(L);
    T loss;
    {
        ReleaseGil release(work);
        loss = core::toy_forward_backward(chain, x.ptr(), y.ptr(), y_stride, N, f.mutable_data(),
                                          h.mutable_data(), dl_df.mutable_data(),
                                          dl_dh.mutable_data(), dl_dbeta.mutable_data(),
                                          dl_domega.mutable_data());
    }
    return py::make_tuple(loss_scalar(loss), f, h, dl_df, dl_dh, dl_dbeta, dl_domega);
}

py::tuple toy_entry(Pass pass, py::handle x, py::handle y, py::handle beta, py::handle omega,
                    py::handle activations, double c) {
    const auto acts = activations_of(activations);
    if (!(c >= 0.0 && c <= 1.0))
        value_error("relu_grad_at_zero: expected a value in [0, 1], got " + std::to_string(c));
    Args args;
    args.add("x", x);
    if (pass != Pass::forward) args.add("y", y);
    args.add("beta", beta);
    args.add("omega", omega);
    return args.convert() == 4 ? toy<float>(pass, args, acts, c) : toy<double>(pass, args, acts, c);
}

}  // namespace

void bind_toy(py::module_& m) {
    m.def("activation_names", [] {
        py::tuple names(std::size(core::activation_names));
        for (std::size_t i = 0; i < names.size(); ++i)
            names[i] = py::str(std::string(core::activation_names[i]));
        return names;
    }, "The activations the core knows, in its table's order.");
    m.def("toy_forward", [](py::handle x, py::handle beta, py::handle omega, py::handle acts) {
        return toy_entry(Pass::forward, x, py::none(), beta, omega, acts, 1.0);
    }, "x"_a, "beta"_a, "omega"_a, "activations"_a, "Toy chain forward pass: (f, h).");
    m.def("toy_backward", [](py::handle x, py::handle y, py::handle beta, py::handle omega,
                             py::handle acts, double c) {
        return toy_entry(Pass::backward, x, y, beta, omega, acts, c);
    }, "x"_a, "y"_a, "beta"_a, "omega"_a, "activations"_a, "relu_grad_at_zero"_a,
       "Toy chain forward and backward pass: (loss, f, h, dl_df, dl_dh, dl_dbeta, dl_domega).");
    m.def("toy_gradients", [](py::handle x, py::handle y, py::handle beta, py::handle omega,
                              py::handle acts, double c) {
        return toy_entry(Pass::gradients, x, y, beta, omega, acts, c);
    }, "x"_a, "y"_a, "beta"_a, "omega"_a, "activations"_a, "relu_grad_at_zero"_a,
       "Toy chain loss and parameter gradients, fused: (loss, dl_dbeta, dl_domega).");
}

}  // namespace bind
