// The native pool's thread count at run time: backprop_core.set_num_threads / get_num_threads
// (through _core), and the same two as plain C symbols for threadpoolctl's controller, which
// finds libraries by their exported symbols (backprop_core/_threads.py).
#include "backprop_core/parallel.hpp"

#include "intake.hpp"

namespace core = backprop_core;

extern "C" {
// Exported (the module is built with hidden visibility): threadpoolctl calls these through ctypes.
__attribute__((visibility("default"))) int backprop_core_get_num_threads(void) {
    return int(core::parallel_threads());
}
__attribute__((visibility("default"))) void backprop_core_set_num_threads(int n) {
    core::set_parallel_threads(n < 1 ? 1u : unsigned(n));
}
}

// (hidden, as pybind11's own types are)
namespace bind __attribute__((visibility("hidden"))) {

using namespace pybind11::literals;

void bind_threads(py::module_& m) {
    m.def("threads", &core::parallel_threads,
          "Threads the large passes may use, the caller's included (the CPUs this process may "
          "run on, or BACKPROP_CORE_NUM_THREADS, or what set_threads set). Results do not "
          "depend on it.");
    m.def(
        "set_threads",
        [](long n) {
            if (n < 1) value_error("n: expected a number of threads >= 1, got " + std::to_string(n));
            core::set_parallel_threads(unsigned(std::min<long>(n, core::max_parallel_threads)));
        },
        "n"_a,
        "Sets the threads the large passes may use from now on (at most 256; more are capped).");
}

}  // namespace bind
