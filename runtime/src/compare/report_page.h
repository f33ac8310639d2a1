// The compare report's page around its parts (runtime/src/compare/).
#pragma once

#include <string>

namespace sparsetrain::detail {

struct ReportParts {
  std::string title, summary;
  std::string models, groups, classes, pies, dominoes, potentials;  // HTML
  std::string data_json;  // what the plots draw, safe inside <script>
  double uncertain_below = 0.9;
  int bins = 15;
  double tolerance = 0.005;
};

// The whole self-contained page: CSS, the parts, Chart.js and the plots' script.
std::string report_page(const ReportParts& parts, const char* chartjs);

}  // namespace sparsetrain::detail
