// Data-parallel training over several processes ("ranks"), with the
// conventions of PyTorch's DistributedDataParallel: every rank holds the whole
// model and takes its share of each global batch; after backward the
// gradients are summed over the ranks (in buckets, started while backward is
// still running), so the optimizer step is the same on every rank. A
// compressed layer's gradient holds only its stored entries (every rank has
// the same mask), so only those travel. The runtime's implementation runs on
// MPI (mpi_data_parallel); Trainer::set_data_parallel takes it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/parameter.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// What the gradient reductions moved (each rank's own contribution).
struct DataParallelStats {
  int64_t steps = 0;                   // steps whose gradients were reduced
  int64_t buckets_last_step = 0;       // all-reduce calls of the last step
  int64_t values_last_step = 0;        // floats all-reduced in the last step
  int64_t bytes_last_step = 0;         // their bytes (4 per float)
  int64_t bytes_total = 0;             // over every step
  int64_t dense_values_last_step = 0;  // what the same parameters hold densely
  double wait_seconds_total = 0;       // blocked after backward, waiting for reductions
};

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;

  // One step's gradients. begin_gradients() before backward, with the
  // parameters whose gradients are summed, in node order (the buckets are
  // formed from the last one backwards); gradients_ready() with a node's
  // parameters as soon as backward has finished them (the bucket holding
  // the last of them starts its reduction, buckets in order);
  // finish_gradients() after backward: every gradient is then the sum over
  // the ranks. Every rank makes the same calls in the same order.
  virtual void begin_gradients(const std::vector<Parameter*>& params) = 0;
  virtual void gradients_ready(const std::vector<Parameter*>& node_parameters) = 0;
  virtual void finish_gradients() = 0;

  // Sums `values` over the ranks in place (`what` names it in errors).
  virtual void sum(std::span<double> values, const std::string& what) = 0;
  // Throws Error naming `what` and the ranks that differ when `value` is
  // not the same on every rank.
  virtual void check_equal(uint64_t value, const std::string& what) = 0;
  // Waits until every rank is here.
  virtual void barrier(const std::string& what) = 0;

  virtual DataParallelStats stats() const = 0;
};

struct MpiOptions {
  // A collective that has not finished after this long stops the run with
  // an error (a rank died or hangs) instead of waiting for ever.
  double timeout_seconds = 300;
  // Gradient bytes per all-reduce bucket (DistributedDataParallel's
  // bucket_cap_mb, scaled to the models of a CPU: a dense ResNet-20's
  // gradients make 17 buckets, a 90%-sparse one's 2).
  int64_t bucket_bytes = 64 << 10;
};

// Whether this build has MPI (CMake option SPARSETRAIN_MPI).
bool mpi_available();
// Whether the process was started by mpirun / mpiexec (Open MPI's, or a
// PMI / PMIx launcher's, environment).
bool launched_by_mpi();
// Threads for one rank: the cores divided by the ranks on this machine
// (the launcher's local size; 1 when it does not say), at least 1.
int mpi_local_threads();
// The ranks of MPI_COMM_WORLD. Initialises MPI on the first call (and
// finalises it at exit); later calls return the same object. Throws Error
// when the build has no MPI.
std::shared_ptr<DataParallel> mpi_data_parallel(const MpiOptions& options = {});
// After an error on this rank: ends every rank at once (MPI_Abort), so none
// is left waiting for this one. Nothing when MPI is not running.
void abort_ranks(int code);

// A hash of which weights every prunable layer keeps (and in which order a
// compressed layer stores them): equal on two ranks exactly when their masks
// are.
uint64_t mask_fingerprint(Graph& graph);
// A hash of every parameter's and buffer's values (bit patterns).
uint64_t parameter_fingerprint(Graph& graph);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
