// Two row-pointer indices over the same nonzeros, as the sparse weights keep
// them: one for forward (rows are outputs) and the transposed one for
// backward-data (rows are inputs).
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

namespace sparsetrain::kernels {

// Fills fwd_ptr and bwd_ptr (each sized rows + 1 and zeroed by the caller)
// by a stable counting sort: for_each_entry(visit) calls
// visit(fwd_row, bwd_row, entry) for every nonzero, always in the same order;
// the rows are counted, the counts turned into starts, and then
// place(entry, fwd_slot, bwd_slot) gets each entry's position in both
// indices (entries of a row keep the visiting order).
template <class ForEachEntry, class Place>
void build_csr_pair(std::vector<uint32_t>& fwd_ptr, std::vector<uint32_t>& bwd_ptr,
                    ForEachEntry for_each_entry, Place place) {
  for_each_entry([&](uint32_t fwd_row, uint32_t bwd_row, const auto&) {
    ++fwd_ptr[fwd_row + 1];
    ++bwd_ptr[bwd_row + 1];
  });
  std::partial_sum(fwd_ptr.begin(), fwd_ptr.end(), fwd_ptr.begin());
  std::partial_sum(bwd_ptr.begin(), bwd_ptr.end(), bwd_ptr.begin());
  std::vector<uint32_t> fwd_next(fwd_ptr.begin(), fwd_ptr.end() - 1);
  std::vector<uint32_t> bwd_next(bwd_ptr.begin(), bwd_ptr.end() - 1);
  for_each_entry([&](uint32_t fwd_row, uint32_t bwd_row, const auto& entry) {
    place(entry, fwd_next[fwd_row]++, bwd_next[bwd_row]++);
  });
}

}  // namespace sparsetrain::kernels
