// tandem-edge as systemd runs it: a real process speaking the notify
// protocol, reloading its configuration on SIGHUP (keeping the old one when
// the new one is invalid) and draining on SIGTERM.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tandem/client.h"

namespace tandem {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              0);
    timeval timeout{60, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  // The next message, or "" after the 60 s timeout.
  std::string Next() {
    char buffer[512];
    const ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
    return got > 0 ? std::string(buffer, got) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

void WriteConfig(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

TEST(EdgeDaemon, NotifiesReloadsAndDrains) {
  const std::string dir = MakeTempDir("edge_daemon");
  const std::string config = dir + "/edge.pbtxt";
  WriteConfig(config,
              "models { model_name: \"fmnist_branchy\" split_point: 4 }\n");
  NotifySocket notify(dir + "/notify.sock");
  ASSERT_OK_AND_ASSIGN(
      Subprocess edge,
      Subprocess::Start(
          {Env("TANDEM_EDGE_BINARY", "tandem-edge"),
           "--listen=unix:" + dir + "/edge.sock",
           // Never called: GetPlan alone does not reach the cloud.
           "--cloud=127.0.0.1:1",
           "--model_repository=" +
               Env("TANDEM_MODEL_REPOSITORY", "model_repository"),
           "--config=" + config},
          {{"NOTIFY_SOCKET", dir + "/notify.sock"}}));
  EXPECT_TRUE(absl::StartsWith(notify.Next(), "READY=1"));
  ASSERT_OK_AND_ASSIGN(auto client,
                       Client::Connect("unix:" + dir + "/edge.sock"));
  ASSERT_OK_AND_ASSIGN(tandem::v1::Plan plan,
                       client->GetPlan("fmnist_branchy"));
  EXPECT_EQ(plan.split_point(), 4);

  // A valid new configuration takes effect.
  WriteConfig(config,
              "models { model_name: \"fmnist_branchy\" split_point: 3 }\n");
  edge.Signal(SIGHUP);
  EXPECT_EQ(notify.Next(), "RELOADING=1");
  EXPECT_EQ(notify.Next(), "READY=1");
  ASSERT_OK_AND_ASSIGN(plan, client->GetPlan("fmnist_branchy"));
  EXPECT_EQ(plan.split_point(), 3);

  // An invalid one is refused and the old one stays.
  WriteConfig(config,
              "models { model_name: \"fmnist_branchy\" split_point: 99 }\n");
  edge.Signal(SIGHUP);
  EXPECT_EQ(notify.Next(), "RELOADING=1");
  EXPECT_EQ(notify.Next(), "READY=1");
  ASSERT_OK_AND_ASSIGN(plan, client->GetPlan("fmnist_branchy"));
  EXPECT_EQ(plan.split_point(), 3);

  edge.Signal(SIGTERM);
  EXPECT_EQ(notify.Next(), "STOPPING=1");
  ASSERT_OK_AND_ASSIGN(int exit_code, edge.Wait(absl::Seconds(30)));
  EXPECT_EQ(exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
