#include "common/daemon.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;

TEST(PortFile, IsWrittenWhole) {
  const std::string path = "/tmp/tandem_port_" + std::to_string(getpid());
  ASSERT_THAT(WritePortFile(path, 43210), IsOk());
  std::ifstream in(path);
  int port = 0;
  in >> port;
  EXPECT_EQ(port, 43210);
  std::remove(path.c_str());
}

TEST(NotifySystemd, IsANoOpWithoutSocket) {
  unsetenv("NOTIFY_SOCKET");
  EXPECT_THAT(NotifySystemd("READY=1"), IsOk());
}

TEST(NotifySystemd, SendsTheStateAsOneDatagram) {
  const std::string path = "/tmp/tandem_notify_" + std::to_string(getpid());
  const int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  unlink(path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ASSERT_THAT(NotifySystemd("READY=1\nSTATUS=serving"), IsOk());
  char buffer[128] = {};
  const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
  EXPECT_EQ(std::string(buffer, got > 0 ? got : 0), "READY=1\nSTATUS=serving");
  unsetenv("NOTIFY_SOCKET");
  close(fd);
  unlink(path.c_str());
}

}  // namespace
}  // namespace tandem
