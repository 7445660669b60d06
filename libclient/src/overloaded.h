// Overloaded: a visitor for std::visit made of lambdas, one per
// alternative.
#pragma once

namespace rejoin::client_internal {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace rejoin::client_internal
