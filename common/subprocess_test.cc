#include "common/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

// Whether `pid` is a live process (not gone, not a zombie).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  if (!(stat >> pid_field >> comm >> state)) return false;
  return state != "Z" && state != "X";
}

TEST(Subprocess, AGroupLeaderDiesWithTheProcessThatStartedIt) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  // An intermediate process starts a long-running child as the benchmarks
  // start their daemons, reports its pid, and is then SIGKILLed: it has no
  // chance to clean up, yet the child must not outlive it.
  const pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    close(pipe_fds[0]);
    absl::StatusOr<Subprocess> child =
        Subprocess::Start({"sleep", "300"}, {}, /*own_group=*/true);
    const pid_t pid = child.ok() ? child->pid() : -1;
    (void)!write(pipe_fds[1], &pid, sizeof(pid));
    pause();  // Until killed.
    _exit(0);
  }
  close(pipe_fds[1]);
  pid_t child = -1;
  ASSERT_EQ(read(pipe_fds[0], &child, sizeof(child)),
            static_cast<ssize_t>(sizeof(child)));
  close(pipe_fds[0]);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(Alive(child));

  kill(middle, SIGKILL);
  waitpid(middle, nullptr, 0);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Alive(child) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(Alive(child)) << "the child outlived its parent";
}

TEST(Subprocess, WaitReturnsTheExitStatus) {
  ASSERT_OK_AND_ASSIGN(Subprocess child,
                       Subprocess::Start({"bash", "-c", "exit 3"}));
  ASSERT_OK_AND_ASSIGN(const int status, child.Wait(absl::Seconds(10)));
  EXPECT_EQ(status, 3);
}

TEST(ProcessUsage, CountsTheFilesAProcessOpens) {
  const ProcessUsage before = ReadProcessUsage(getpid());
  ASSERT_GT(before.open_fds, 0);
  ASSERT_GT(before.threads, 0);
  std::vector<std::ifstream> files;
  for (int i = 0; i < 5; ++i) files.emplace_back("/proc/self/status");
  EXPECT_EQ(ReadProcessUsage(getpid()).open_fds, before.open_fds + 5);
}

TEST(ProcessUsage, CountsTheMemoryAProcessTouches) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  GTEST_SKIP() << "under TSan the resident set is its shadow memory's, which "
                  "it releases in the background";
#endif
#endif
  const ProcessUsage before = ReadProcessUsage(getpid());
  ASSERT_GT(before.rss_mib, 0);
  std::vector<char> block(64 << 20, 1);  // 64 MiB, touched: resident.
  const ProcessUsage after = ReadProcessUsage(getpid());
  EXPECT_GE(after.rss_mib, before.rss_mib + 60) << static_cast<int>(block[7]);
}

TEST(ProcessUsage, AProcessThatIsGoneReadsAsZeros) {
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start({"true"}));
  const pid_t pid = child.pid();
  ASSERT_OK(child.Wait(absl::Seconds(10)).status());
  const ProcessUsage gone = ReadProcessUsage(pid);
  EXPECT_EQ(gone.open_fds, 0);
  EXPECT_EQ(gone.rss_mib, 0);
}

}  // namespace
}  // namespace tandem
