// `tandem bench --scenario=trace|zoo`: runs a cloud server and an edge agent
// in two network namespaces joined by a shaped link (tools/linkemu), each on
// a core of its own, the edge emulated as slower by dilation
// (--emulated_slowdown), replays a rate trace, and compares the policies
// edge_only, cloud_only, cloud_only_uint8, static_split, adaptive and oracle
// on the same requests, interleaved. Prints JSON and writes a per-request CSV
// and a PNG plot; `zoo` repeats the trace for AlexNet and VGG-16 at several
// slowdowns and writes a table. Needs root (namespaces).
#ifndef TANDEM_TOOLS_BENCH_COMMAND_H_
#define TANDEM_TOOLS_BENCH_COMMAND_H_

#include "absl/status/status.h"

namespace tandem {

absl::Status RunBenchCommandFromFlags();

}  // namespace tandem

#endif  // TANDEM_TOOLS_BENCH_COMMAND_H_
