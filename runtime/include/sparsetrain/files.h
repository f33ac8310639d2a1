// Writing files so that a crash or a full disk never leaves a half-written
// one: every file the library and the command-line program write (checkpoints,
// recipes, metrics summaries, plots) goes through here.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// Writes the concatenation of `parts` to `path`: into a temporary file
// "<path>.tmp.<pid>" in the same folder, flushed to disk (fsync), renamed
// over `path`, and the folder synced so the rename is durable too. A reader
// sees the old file or the new one, never a part of either. The folder must
// exist. On failure the temporary file is removed, `path` is
// left as it was, and Error says "<what>: <step> ... failed: <reason>"
// (`what` names the file for the user; default: the path).
void write_file_atomic(const std::string& path, std::span<const std::string_view> parts,
                       const std::string& what = {});
void write_file_atomic(const std::string& path, std::string_view text,
                       const std::string& what = {});

// Removes the temporary files ("<name>.tmp.<pid>") that a writer killed
// mid-write left in `dir` and in its subfolders one level down, when the
// process that made them is gone. Returns how many were removed. A missing
// folder has none.
int remove_stale_temporaries(const std::string& dir);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain
