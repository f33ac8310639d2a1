// static: masks at the target right after initialisation (largest
// magnitudes, spread uniformly by default), fixed for the run; with
// --sparsity 0 a dense run.
#include "sparsetrain/sparsity.h"
#include "sparsity/methods/registry.h"

namespace sparsetrain {
namespace {

class StaticMethod final : public SparsityMethod {
 public:
  std::unique_ptr<SparsityMethod> clone() const override {
    return std::make_unique<StaticMethod>(*this);
  }
  Distribution default_distribution() const override { return Distribution::kUniform; }
  bool needs_target() const override { return false; }
  SparsityPhase phase_at(const SparsitySchedule& s, int64_t /*step*/) const override {
    return s.sparse_phase();
  }
  std::string describe(const SparsitySchedule& /*s*/) const override {
    return ", masks fixed after initialisation";
  }
  void start(SparsityController& c) override {
    const SparsitySchedule& s = c.schedule();
    c.apply_masks(magnitude_masks(c.graph(), c.layers(), s.sparsity, s.distribution),
                  !s.masked_storage);
    c.set_phase(s.phase_at(0), 0);
  }
};

}  // namespace

std::unique_ptr<SparsityMethod> detail::make_static_method() {
  return std::make_unique<StaticMethod>();
}

}  // namespace sparsetrain
