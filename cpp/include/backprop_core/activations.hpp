// Activation functions of the toy chain and the MLP: each forward rule beside its derivative.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace backprop_core {

enum class Activation : int { identity, sin, cos, exp, tanh, sigmoid, relu };

inline constexpr std::string_view activation_names[] = {"identity", "sin",     "cos", "exp",
                                                        "tanh",     "sigmoid", "relu"};

inline Activation activation_from_name(std::string_view name) {
    for (int i = 0; i < static_cast<int>(std::size(activation_names)); ++i)
        if (activation_names[i] == name) return static_cast<Activation>(i);
    std::string known;
    for (auto n : activation_names) known += (known.empty() ? "" : ", ") + std::string(n);
    throw std::invalid_argument("activations: unknown activation '" + std::string(name) +
                                "'; expected one of " + known);
}

// ReLU keeps NaN (as numpy's clip does) so that it propagates.
template <class T> inline T relu(T f) { return f < T(0) ? T(0) : f; }

// The ReLU derivative at exactly f == 0 is `relu_grad_at_zero`: 1 follows notebook 7.2's
// indicator (f >= 0), 0 follows PyTorch. NaN stays NaN, as with the notebook's indicator.
template <class T> inline T relu_grad(T f, T relu_grad_at_zero) {
    if (f > T(0)) return T(1);
    if (f < T(0)) return T(0);
    return f == T(0) ? relu_grad_at_zero : f;
}

// ReLU that keeps on its zeros which side f was on: -0 where f < 0, +0 where f == 0 (of either
// sign), so that a pass can keep h alone: as a number it is ReLU(f), and
// relu_grad_marked(relu_marked(f), c) == relu_grad(f, c), NaN included.
template <class T> inline T relu_marked(T f) { return f < T(0) ? T(-0.0) : f + T(0); }
template <class T> inline T relu_grad_marked(T h, T relu_grad_at_zero) {
    // the sign bit read as an integer (GCC 12 does not vectorise std::signbit for double)
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    static_assert(sizeof(Bits) == sizeof(T));
    Bits bits;
    std::memcpy(&bits, &h, sizeof bits);
    const T at_zero = bits >> (8 * sizeof(T) - 1) ? T(0) : relu_grad_at_zero;
    return h > T(0) ? T(1) : (h == T(0) ? at_zero : h);  // h is NaN in the last case
}

// h = a(f)
template <class T> inline T activate(Activation a, T f) {
    switch (a) {
    case Activation::identity: return f;
    case Activation::sin: return std::sin(f);
    case Activation::cos: return std::cos(f);
    case Activation::exp: return std::exp(f);
    case Activation::tanh: return std::tanh(f);
    case Activation::sigmoid: return T(1) / (T(1) + std::exp(-f));
    case Activation::relu: return relu(f);
    }
    return f;
}

// dh/df, given f and h = a(f) (so exp, tanh and sigmoid reuse h).
template <class T> inline T activate_grad(Activation a, T f, T h, T relu_grad_at_zero) {
    switch (a) {
    case Activation::identity: return T(1);
    case Activation::sin: return std::cos(f);
    case Activation::cos: return -std::sin(f);
    case Activation::exp: return h;
    case Activation::tanh: return T(1) - h * h;
    case Activation::sigmoid: return h * (T(1) - h);
    case Activation::relu: return relu_grad(f, relu_grad_at_zero);
    }
    return T(1);
}

}  // namespace backprop_core
