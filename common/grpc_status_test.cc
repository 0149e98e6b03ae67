#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(GrpcStatus, RoundTripsEveryCanonicalCode) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code),
                              code == 0 ? "" : "message");
    const grpc::Status grpc_status = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(grpc_status.error_code()), code);
    EXPECT_EQ(FromGrpcStatus(grpc_status), status);
  }
}

TEST(GrpcStatus, MapsNamedCodesExactly) {
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("big")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("model")).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"))
          .code(),
      absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace tandem
