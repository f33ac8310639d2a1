// The run's report: the progress line, the per-epoch table, the sparsity
// lines of the run log, and their JSON forms in the metrics and checkpoints
// (what Trainer::run writes; trainer.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "sparsetrain/graph.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain::report {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "mm:ss" or "h:mm:ss"; "--:--" when unknown.
std::string format_duration(double s);

// A progress bar on a terminal, a plain line every tenth of the epoch
// otherwise (so logs stay readable when stdout is a file).
class Progress {
 public:
  Progress(std::ostream& out, bool enabled, bool tty, int64_t epoch, int64_t total, int64_t first)
      : out_(out),
        enabled_(enabled),
        tty_(tty),
        epoch_(epoch),
        total_(total),
        done_(first),
        first_(first),
        t0_(Clock::now()) {}

  void update(int64_t samples, double loss) {
    ++done_;
    samples_ += samples;
    if (!enabled_) return;
    const double elapsed = seconds_since(t0_);
    const double rate = elapsed > 0 ? samples_ / elapsed : 0.0;
    const double per_batch = (done_ - first_) > 0 ? elapsed / (done_ - first_) : 0.0;
    const double eta = per_batch * (total_ - done_);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = total_ > 0 ? static_cast<int>(kWidth * done_ / total_) : kWidth;
      std::string bar(filled, '=');
      if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, ' ');
      char line[200];
      std::snprintf(line, sizeof line,
                    "\repoch %lld [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %s ",
                    static_cast<long long>(epoch_), bar.c_str(), static_cast<long long>(done_),
                    static_cast<long long>(total_), loss, rate, format_duration(eta).c_str());
      out_ << line << std::flush;
    } else {
      const int64_t tenth = std::max<int64_t>(1, total_ / 10);
      if (done_ % tenth == 0 || done_ == total_) {
        char line[200];
        std::snprintf(line, sizeof line,
                      "epoch %lld: batch %lld/%lld  loss %.4f  %.0f samples/s  ETA %s\n",
                      static_cast<long long>(epoch_), static_cast<long long>(done_),
                      static_cast<long long>(total_), loss, rate, format_duration(eta).c_str());
        out_ << line << std::flush;
      }
    }
  }

  void finish() {
    if (enabled_ && tty_) out_ << "\r" << std::string(110, ' ') << "\r" << std::flush;
  }

 private:
  std::ostream& out_;
  bool enabled_, tty_;
  int64_t epoch_, total_, done_, first_;
  int64_t samples_ = 0;
  Clock::time_point t0_;
};

// A record written to and read from JSON through one list of its fields:
// `fields(record, f)` calls f(key, member) for each field, or f(key, member,
// kOptional) for one that older files lack (reading keeps the record's
// default), so writer and reader cannot disagree.
inline constexpr bool kOptional = true;

template <class Record, class Fields>
json fields_to_json(const Record& record, Fields fields) {
  json j = json::object();
  fields(record, [&](const char* key, const auto& member, bool = false) { j[key] = member; });
  return j;
}

// Throws json::exception on a missing required field or a wrong type.
template <class Record, class Fields>
void fields_from_json(const json& j, Record& record, Fields fields) {
  fields(record, [&](const char* key, auto& member, bool optional = false) {
    using T = std::decay_t<decltype(member)>;
    member = optional ? j.value(key, member) : j.at(key).template get<T>();
  });
}

json epoch_to_json(const EpochStats& e);
EpochStats epoch_from_json(const json& j);
std::string format_bytes(int64_t bytes);
std::string table_header();
std::string table_row(const EpochStats& e);
// The line under a table row naming the layers on the sparse kernels, when
// they differ from the previous epoch's (null: none); empty otherwise.
std::string sparse_layers_note(const EpochStats* previous, const EpochStats& e);
// A kernel choice as a metrics event ("event": "kernel_choice" and the
// fields of kernel_choices_to_json).
json kernel_choice_event(const KernelChoice& c);
const char* shown_phase(SparsityPhase phase, Graph& graph);
std::string densities_text(const std::vector<PrunableLayer>& layers,
                           const std::vector<double>& densities);
json pruned_layer_names(const SparsityController& c);
void log_sparsity_header(std::ostream& log, SparsityController& c, Graph& graph,
                         const std::string& kernels);
json sparsity_event_json(const SparsityEvent& ev, const SparsityController& c,
                         int64_t steps_per_epoch);
std::string sparsity_event_line(const SparsityEvent& ev, const SparsityController& c,
                                int64_t steps_per_epoch);

}  // namespace sparsetrain::report
