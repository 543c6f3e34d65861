// The private extension module backprop_core._core: one file a topic (threads.cpp, toy.cpp,
// mlp.cpp, ...), each thin: convert and check arguments (intake.hpp), call the core with the GIL
// released.
#include "backprop_core/gemm.hpp"
#include "intake.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "Native core of backprop_core (private: use the backprop_core package).";
    m.def("blas", &backprop_core::blas_name,
          "The BLAS that large matrix products go to, as built in (or 'none').");
    bind::bind_threads(m);
    bind::bind_toy(m);
    bind::bind_chain(m);
    bind::bind_mlp(m);
    bind::bind_train(m);
}
