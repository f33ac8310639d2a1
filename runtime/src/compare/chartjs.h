// Chart.js (Debian's libjs-chart.js, inlined at build time): the plots of
// the compare report (runtime/src/compare/report_html.cc).
#pragma once

namespace sparsetrain::detail {
extern const char kChartJs[];
}  // namespace sparsetrain::detail
