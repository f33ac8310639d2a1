#include "graph/hooks_internal.h"

namespace sparsetrain {

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative matcher with one backtrack point for the last '*'.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

int64_t HookRegistry::add(HookPoint point, std::string pattern, HookFn fn, HookOptions options) {
  const int64_t id = next_id_++;
  entries_.push_back({id, point, std::move(pattern), std::move(fn), options});
  ++version_;
  return id;
}

void HookRegistry::remove(int64_t id) {
  if (std::erase_if(entries_, [id](const Entry& e) { return e.id == id; }) > 0) ++version_;
}

bool HookRegistry::contains(int64_t id) const {
  for (const Entry& e : entries_)
    if (e.id == id) return true;
  return false;
}

bool HookRegistry::any(HookPoint point, std::string_view node) const {
  for (const Entry& e : entries_)
    if (e.point == point && (node.empty() || glob_match(e.pattern, node))) return true;
  return false;
}

bool HookRegistry::wants_input_grad() const {
  for (const Entry& e : entries_)
    if (e.options.wants_input_grad) return true;
  return false;
}

void HookRegistry::fire(HookEvent& event) const {
  // Copy the matching callbacks first: a hook may remove itself.
  std::vector<HookFn> matching;
  for (const Entry& e : entries_) {
    if (e.point != event.point) continue;
    const bool step_level =
        event.point == HookPoint::kAfterOptimizerStep || event.point == HookPoint::kPhaseChange;
    if (step_level || glob_match(e.pattern, event.node)) matching.push_back(e.fn);
  }
  for (auto& fn : matching) fn(event);
}

HookHandle::HookHandle(HookHandle&& other) noexcept
    : registry_(std::move(other.registry_)), id_(other.id_) {
  other.registry_.reset();
}

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    remove();
    registry_ = std::move(other.registry_);
    id_ = other.id_;
    other.registry_.reset();
  }
  return *this;
}

void HookHandle::remove() {
  if (auto reg = registry_.lock()) reg->remove(id_);
  registry_.reset();
}

bool HookHandle::active() const {
  auto reg = registry_.lock();
  return reg && reg->contains(id_);
}

}  // namespace sparsetrain
