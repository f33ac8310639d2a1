// One thread count for the whole process. The sparse kernels run on TBB;
// Debian's oneDNN runs on OpenMP. Both pools are kept at the same size so a
// dense layer and a sparse layer use the same number of cores and neither
// oversubscribes the machine while the other is idle.
#pragma once

namespace sparsetrain::kernels {

// Sets the TBB limit (a global tbb::global_control on max_allowed_parallelism)
// and the OpenMP count (omp_set_num_threads, read by oneDNN) to n threads;
// n <= 0 means all hardware threads available to the process.
void set_num_threads(int n);

// The count last set, or the hardware count when set_num_threads was never
// called.
int num_threads();

// OpenMP keeps its thread count per calling thread: a oneDNN call from a
// thread that did not call set_num_threads (a TBB worker, a loader thread)
// would otherwise use the OpenMP default. The oneDNN wrappers call this before
// creating or running a primitive; it is cheap (one comparison when nothing
// changed).
void sync_openmp_threads();

}  // namespace sparsetrain::kernels
