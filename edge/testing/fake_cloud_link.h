// A cloud link for tests: pings and probes answer at once, the cloud reports a
// profile in which each of `blocks` blocks takes 1 us, and Continue is refused
// (subclasses script it).
#ifndef TANDEM_EDGE_TESTING_FAKE_CLOUD_LINK_H_
#define TANDEM_EDGE_TESTING_FAKE_CLOUD_LINK_H_

#include <atomic>
#include <string>

#include "edge/cloud_link.h"

namespace tandem {
namespace testing {

class FakeCloudLink : public CloudLink {
 public:
  explicit FakeCloudLink(int blocks) : blocks_(blocks) {}
  absl::StatusOr<tandem::v1::ContinueResponse> Continue(
      const tandem::v1::ContinueRequest&, absl::Time) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<tandem::v1::ProbeResponse> Probe(
      const tandem::v1::ProbeRequest& request, absl::Time) override {
    ++(request.payload().empty() ? pings : probes);
    return tandem::v1::ProbeResponse();
  }
  absl::StatusOr<tandem::v1::GetProfileResponse> GetProfile(
      const std::string& model, absl::Time) override {
    ++profiles;
    tandem::v1::GetProfileResponse response;
    response.mutable_profile()->set_model_name(model);
    for (int b = 0; b < blocks_; ++b) {
      auto* block = response.mutable_profile()->add_blocks();
      block->set_block(b);
      block->set_latency_us(1);
    }
    return response;
  }

  // Calls seen, for tests of who calls when.
  std::atomic<int> pings{0};   // Probes without payload (round trips).
  std::atomic<int> probes{0};  // Probes with a payload (bandwidth).
  std::atomic<int> profiles{0};

 private:
  const int blocks_;
};

}  // namespace testing
}  // namespace tandem

#endif  // TANDEM_EDGE_TESTING_FAKE_CLOUD_LINK_H_
