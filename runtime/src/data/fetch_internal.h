// What fetch.cc does between a verified download and a usable dataset folder,
// exposed for the tests (an official archive cannot be made up for them).
#pragma once

#include <filesystem>

#include "sparsetrain/fetch.h"

namespace sparsetrain::data {

// Unpacks the members of `src` (its member_prefix folder in a .tar.gz) into
// `folder`, each through a .part file and a rename. Throws Error for a
// damaged archive, a missing member or a data batch of the wrong size.
void unpack_archive(const std::filesystem::path& archive_path, const DatasetSource& src,
                    const std::filesystem::path& folder);

}  // namespace sparsetrain::data
