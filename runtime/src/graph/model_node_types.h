// The model files' node-type registry (sparsetrain/model_file.h).
#pragma once

#include <memory>
#include <string>

#include "sparsetrain/model_file.h"

namespace sparsetrain::detail {

// The registered type `type`; null when there is none.
std::shared_ptr<const ModelNodeType> find_model_node_type(const std::string& type);

}  // namespace sparsetrain::detail
