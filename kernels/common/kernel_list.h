// The one shape every op's implementations take: a list of entries, most
// preferred first, the scalar reference last, and one rule to choose among
// them. Dispatch, tests and benchmarks all iterate these lists, so a new
// implementation is dispatched, tested and benchmarked by being listed.
//
// An entry is a struct with at least
//   const char* name;  // e.g. "f32_spmm_fwd_4x16__avx512", "dnnl", "ref"
//   Isa isa;           // the least instruction set it needs
// and optionally
//   bool (*supports)(const Desc&);  // whether it handles (and is meant for) a problem
// plus the op's function pointers.
//
// The ISA of an entry that is not ISA-specific code: oneDNN dispatches by
// itself and runs anywhere (Isa::kRef). Vectorisable C++ over TBB, and the
// oneDNN paths of ops whose reference is close in speed, are listed from
// Isa::kAvx2 so that SPARSETRAIN_ISA=ref (or a CPU without AVX2) runs the
// scalar reference of every such op, as a reproducible baseline.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {

template <class Kernel>
class KernelList {
 public:
  template <std::size_t N>
  constexpr KernelList(const Kernel (&entries)[N]) : entries_(entries) {}  // NOLINT: implicit

  std::span<const Kernel> all() const { return entries_; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const Kernel& operator[](std::size_t i) const { return entries_[i]; }

  // The scalar reference: the last entry, which handles every problem.
  const Kernel& reference() const { return entries_.back(); }

  // Whether `k` may serve under `isa` on this CPU.
  static bool eligible(const Kernel& k, Isa isa) { return k.isa <= isa && isa_supported(k.isa); }

  // The first entry whose ISA is at most `isa` and that this CPU runs; the
  // reference when there is none.
  const Kernel& pick(Isa isa) const {
    for (const Kernel& k : entries_)
      if (eligible(k, isa)) return k;
    return reference();
  }
  // The same among the entries that support `desc`.
  template <class Desc>
  const Kernel& pick(Isa isa, const Desc& desc) const {
    for (const Kernel& k : entries_)
      if (eligible(k, isa) && k.supports(desc)) return k;
    return reference();
  }
  // pick(best_isa()): the dispatcher's choice (SPARSETRAIN_ISA caps it).
  const Kernel& pick() const { return pick(best_isa()); }
  template <class Desc>
  const Kernel& pick_for(const Desc& desc) const {
    return pick(best_isa(), desc);
  }

  // The entry called `name`, or null.
  const Kernel* find(std::string_view name) const {
    for (const Kernel& k : entries_)
      if (name == k.name) return &k;
    return nullptr;
  }

 private:
  std::span<const Kernel> entries_;
};

}  // namespace sparsetrain::kernels
