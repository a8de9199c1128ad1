// The SIGPIPE-safe pipe writer: writing to a pipe whose reader is gone fails
// with EPIPE under the default SIGPIPE disposition (which would kill us).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "plua/core/owned_fd.hpp"
#include "plua/core/pipe_writer.hpp"

using plua::core::make_pipe;
using plua::core::open_pipe_writer;

namespace {

// Restores SIGPIPE's disposition when the test ends.
struct DefaultSigpipe {
  struct sigaction saved {};
  DefaultSigpipe() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, &saved);
  }
  ~DefaultSigpipe() { sigaction(SIGPIPE, &saved, nullptr); }
};

bool sigpipe_pending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

}  // namespace

TEST(PipeWriter, WritesReachTheReader) {
  auto [r, w] = make_pipe();
  std::FILE* f = open_pipe_writer(w.release());
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fputs("hello", f), 1);
  ASSERT_EQ(std::fflush(f), 0);
  char buf[8] = {};
  ASSERT_EQ(::read(r.get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(std::fclose(f), 0);
  EXPECT_EQ(::read(r.get(), buf, sizeof buf), 0) << "fclose closed the write end";
}

TEST(PipeWriter, AGoneReaderIsEpipeNotSigpipe) {
  DefaultSigpipe dfl;
  auto [r, w] = make_pipe();
  std::FILE* f = open_pipe_writer(w.release());
  ASSERT_NE(f, nullptr);
  r.reset();
  // Buffered: the flush meets the closed pipe.
  EXPECT_EQ(std::fputs("x", f), 1);
  errno = 0;
  EXPECT_EQ(std::fflush(f), EOF);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_TRUE(std::ferror(f));
  // Unbuffered and large writes report it from fwrite itself.
  std::clearerr(f);
  std::setvbuf(f, nullptr, _IONBF, 0);
  std::string big(1 << 20, 'b');
  errno = 0;
  EXPECT_LT(std::fwrite(big.data(), 1, big.size(), f), big.size());
  EXPECT_EQ(errno, EPIPE);
  EXPECT_FALSE(sigpipe_pending()) << "the signal raised meanwhile was discarded";
  std::fclose(f);
}

TEST(PipeWriter, SeekAndReadFailAsOnThePipe) {
  auto [r, w] = make_pipe();
  std::FILE* f = open_pipe_writer(w.release());
  ASSERT_NE(f, nullptr);
  errno = 0;
  EXPECT_EQ(std::fseek(f, 0, SEEK_CUR), -1);
  EXPECT_EQ(errno, ESPIPE);
  std::fclose(f);
}
