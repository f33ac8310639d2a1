// DataParallel over MPI_COMM_WORLD (distributed.h). Gradients travel in
// buckets: each bucket is a contiguous float buffer holding the gradients of
// consecutive parameters, taken from the last parameter backwards (the order
// backward finishes them). A bucket's non-blocking all-reduce starts once
// backward has finished all of its parameters, buckets strictly in order so
// every rank issues the same collectives in the same sequence; the reduction
// proceeds while the rest of backward runs (each later call tests the
// requests in flight, which is what drives Open MPI's progress).
//
// No collective waits for ever: every wait polls its request against
// MpiOptions::timeout_seconds and, 2 s after a stop request, against
// stop_requested() (mpirun sends SIGTERM to the survivors when a rank dies),
// and throws Error naming what it waited for.
#include "sparsetrain/distributed.h"

#ifdef SPARSETRAIN_HAVE_MPI
#include <mpi.h>
#endif

#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "sparsetrain/error.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {

#ifndef SPARSETRAIN_HAVE_MPI

bool mpi_available() { return false; }

std::shared_ptr<DataParallel> mpi_data_parallel(const MpiOptions& /*options*/) {
  throw Error(
      "data-parallel training needs MPI, and this build of sparsetrain has none: install "
      "libopenmpi-dev and openmpi-bin (scripts/install-deps.sh) and configure with "
      "-DSPARSETRAIN_MPI=ON");
}

void abort_ranks(int /*code*/) {}

#else

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kStopGraceSeconds = 2.0;

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<std::size_t>(length));
}

class MpiDataParallel final : public DataParallel {
 public:
  explicit MpiDataParallel(const MpiOptions& options) : options_(options) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }

  void set_options(const MpiOptions& options) {
    if (options.timeout_seconds <= 0)
      throw Error("MPI: the collective time-out must be positive, got " +
                  std::to_string(options.timeout_seconds) + " s");
    if (options.bucket_bytes < 4)
      throw Error("MPI: a gradient bucket must hold at least one float, got " +
                  std::to_string(options.bucket_bytes) + " bytes");
    options_ = options;
  }

  int rank() const override { return rank_; }
  int ranks() const override { return size_; }

  void begin_gradients(const std::vector<Parameter*>& params) override {
    if (!buckets_.empty() && next_launch_ < buckets_.size())
      throw Error("MPI: begin_gradients() while the last step's reductions are unfinished");
    slots_.clear();
    slot_of_.clear();
    buckets_.clear();
    next_launch_ = 0;
    int64_t dense = 0;
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      Parameter* p = *it;
      const int64_t count = p->grad.numel();
      dense += p->dense_numel();
      if (buckets_.empty() || (buckets_.back().values > 0 &&
                               4 * (buckets_.back().values + count) > options_.bucket_bytes)) {
        buckets_.emplace_back();
      }
      Bucket& b = buckets_.back();
      slot_of_[p] = slots_.size();
      slots_.push_back({p, static_cast<int>(buckets_.size() - 1), b.values, count});
      b.values += count;
      ++b.pending;
    }
    int64_t values = 0;
    for (Bucket& b : buckets_) {
      b.buffer.resize(static_cast<std::size_t>(b.values));
      values += b.values;
    }
    stats_.buckets_last_step = static_cast<int64_t>(buckets_.size());
    stats_.values_last_step = values;
    stats_.bytes_last_step = 4 * values;
    stats_.dense_values_last_step = dense;
  }

  void gradients_ready(const std::vector<Parameter*>& node_parameters) override {
    for (Parameter* p : node_parameters) {
      const auto it = slot_of_.find(p);
      if (it == slot_of_.end()) continue;
      const Slot& s = slots_[it->second];
      if (s.done) continue;
      slots_[it->second].done = true;
      --buckets_[s.bucket].pending;
    }
    launch_ready(/*all=*/false);
    // Drive the reductions in flight.
    for (std::size_t b = 0; b < next_launch_; ++b) {
      if (buckets_[b].request == MPI_REQUEST_NULL) continue;
      int flag = 0;
      check(MPI_Test(&buckets_[b].request, &flag, MPI_STATUS_IGNORE), "gradient all-reduce");
    }
  }

  void finish_gradients() override {
    launch_ready(/*all=*/true);
    const auto t0 = Clock::now();
    for (std::size_t b = 0; b < buckets_.size(); ++b)
      wait(&buckets_[b].request, "the gradient all-reduce of bucket " + std::to_string(b + 1) +
                                     " of " + std::to_string(buckets_.size()));
    stats_.wait_seconds_total += std::chrono::duration<double>(Clock::now() - t0).count();
    for (const Slot& s : slots_) {
      const float* src = buckets_[s.bucket].buffer.data() + s.offset;
      std::memcpy(s.param->grad.data(), src, static_cast<std::size_t>(s.count) * sizeof(float));
    }
    ++stats_.steps;
    stats_.bytes_total += stats_.bytes_last_step;
    buckets_.clear();
    next_launch_ = 0;
  }

  void sum(std::span<double> values, const std::string& what) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                         MPI_SUM, MPI_COMM_WORLD, &request),
          what);
    wait(&request, what);
  }

  void check_equal(uint64_t value, const std::string& what) override {
    std::vector<uint64_t> all(static_cast<std::size_t>(size_));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD,
                         &request),
          what);
    wait(&request, what);
    std::vector<int> differ;
    for (int r = 1; r < size_; ++r)
      if (all[static_cast<std::size_t>(r)] != all[0]) differ.push_back(r);
    if (differ.empty()) return;
    std::ostringstream os;
    os << what << " differs between the ranks: rank";
    os << (differ.size() > 1 ? "s " : " ");
    for (std::size_t i = 0; i < differ.size(); ++i) os << (i ? ", " : "") << differ[i];
    os << " against rank 0 (of " << size_ << "); stopping";
    throw Error(os.str());
  }

  void barrier(const std::string& what) override {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &request), what);
    wait(&request, what);
  }

  DataParallelStats stats() const override { return stats_; }

 private:
  struct Slot {
    Parameter* param;
    int bucket;
    int64_t offset;
    int64_t count;
    bool done = false;
  };
  struct Bucket {
    std::vector<float> buffer;
    int64_t values = 0;
    int pending = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  // Starts the reductions of the leading buckets whose parameters are all
  // finished (`all`: every bucket left, finished or not).
  void launch_ready(bool all) {
    while (next_launch_ < buckets_.size() && (all || buckets_[next_launch_].pending == 0)) {
      Bucket& b = buckets_[next_launch_];
      for (const Slot& s : slots_) {
        if (s.bucket != static_cast<int>(next_launch_)) continue;
        std::memcpy(b.buffer.data() + s.offset, s.param->grad.data(),
                    static_cast<std::size_t>(s.count) * sizeof(float));
      }
      check(MPI_Iallreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.values), MPI_FLOAT,
                           MPI_SUM, MPI_COMM_WORLD, &b.request),
            "gradient all-reduce");
      ++next_launch_;
    }
  }

  void check(int code, const std::string& what) const {
    if (code != MPI_SUCCESS)
      throw Error("MPI (rank " + std::to_string(rank_) + "): " + what + ": " + mpi_error(code));
  }

  // Polls until `request` completes; throws after the time-out or when the
  // process was asked to stop (a rank died and mpirun ends the job).
  void wait(MPI_Request* request, const std::string& what) const {
    const auto t0 = Clock::now();
    Clock::time_point stop_seen;
    for (int polls = 0;; ++polls) {
      int flag = 0;
      check(MPI_Test(request, &flag, MPI_STATUS_IGNORE), what);
      if (flag) return;
      // Spin briefly (a reduction on one machine takes microseconds), then
      // poll with short sleeps so a rank that waits leaves the core.
      if (polls > 2000)
        std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 500 : 20));
      const auto now = Clock::now();
      const double waited = std::chrono::duration<double>(now - t0).count();
      // A stop request (Ctrl-C reaches every rank) lets the collective
      // finish, so the ranks stop together at the step's end and rank 0
      // saves; only a collective still unfinished 2 s after it gives up.
      if (stop_requested() && stop_seen == Clock::time_point()) stop_seen = now;
      if (stop_seen != Clock::time_point() &&
          std::chrono::duration<double>(now - stop_seen).count() > kStopGraceSeconds) {
        throw Error("rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
                    ": stopped while waiting for " + what +
                    " (a signal; another rank may have died)");
      }
      if (waited > options_.timeout_seconds) {
        std::ostringstream os;
        os << "rank " << rank_ << " of " << size_ << ": " << what << " did not finish within "
           << options_.timeout_seconds << " s: another rank died or hangs; stopping (the last "
           << "checkpoint on disk is kept)";
        throw Error(os.str());
      }
    }
  }

  MpiOptions options_;
  int rank_ = 0;
  int size_ = 1;
  std::vector<Slot> slots_;
  std::unordered_map<Parameter*, std::size_t> slot_of_;
  std::vector<Bucket> buckets_;
  std::size_t next_launch_ = 0;
  DataParallelStats stats_;
};

std::shared_ptr<MpiDataParallel>& world() {
  static std::shared_ptr<MpiDataParallel> instance;
  return instance;
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<DataParallel> mpi_data_parallel(const MpiOptions& options) {
  std::shared_ptr<MpiDataParallel>& instance = world();
  if (!instance) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      // Only the thread that trains calls MPI.
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed");
      std::atexit(finalize_at_exit);
    }
    // Errors come back as codes (turned into Error), not as an abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    instance = std::make_shared<MpiDataParallel>(options);
  }
  instance->set_options(options);
  return instance;
}

void abort_ranks(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

#endif

}  // namespace sparsetrain
