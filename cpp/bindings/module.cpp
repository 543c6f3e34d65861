// The private extension module backprop_core._core: one file a topic (toy.cpp, mlp.cpp), each
// thin: convert and check arguments (intake.hpp), call the core with the GIL released.
#include "backprop_core/gemm.hpp"
#include "backprop_core/parallel.hpp"
#include "intake.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "Native core of backprop_core (private: use the backprop_core package).";
    m.def("blas", &backprop_core::blas_name,
          "The BLAS that large matrix products go to, as built in (or 'none').");
    m.def("threads", &backprop_core::parallel_threads,
          "Threads the large passes may use, the caller's included (the CPUs this process may "
          "run on, or BACKPROP_CORE_NUM_THREADS). Results do not depend on it.");
    bind::bind_toy(m);
    bind::bind_chain(m);
    bind::bind_mlp(m);
    bind::bind_train(m);
}
