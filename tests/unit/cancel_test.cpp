#include "plua/core/cancel.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace plua::core;
using namespace std::chrono_literals;

TEST(Deadline, NeverDoesNotExpire) {
  auto d = Deadline::never();
  EXPECT_TRUE(d.is_never());
  EXPECT_FALSE(d.expired());
  EXPECT_EQ(d.next_slice(), std::chrono::nanoseconds(kWaitSlice));
}

TEST(Deadline, ZeroTimeoutHasExpired) {
  auto d = Deadline::after(0);
  EXPECT_FALSE(d.is_never());
  EXPECT_TRUE(d.expired());
  EXPECT_EQ(d.remaining(), std::chrono::nanoseconds::zero());
}

TEST(Deadline, HugeTimeoutIsNever) { EXPECT_TRUE(Deadline::after(1e300).is_never()); }

TEST(WaitUntil, ReturnsFalseAtTheDeadline) {
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock lock(mu);
  EXPECT_FALSE(wait_until(cv, lock, Deadline::after(0.03), [] { return false; }));
}

TEST(WaitUntil, SeesThePredicate) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  std::thread setter([&] {
    std::this_thread::sleep_for(10ms);
    std::lock_guard g(mu);
    ready = true;
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  EXPECT_TRUE(wait_until(cv, lock, Deadline::never(), [&] { return ready; }));
  lock.unlock();
  setter.join();
}

TEST(WaitUntil, AStopRequestEndsTheWait) {
  std::mutex mu;
  std::condition_variable cv;
  this_thread_stop_flag().request();
  std::unique_lock lock(mu);
  EXPECT_THROW(wait_until(cv, lock, Deadline::never(), [] { return false; }), Interrupted);
  EXPECT_FALSE(this_thread_stop_flag().requested()) << "the request is consumed";
}

TEST(SleepUntil, IsInterruptedFromAnotherThread) {
  StopFlag* flag = &this_thread_stop_flag();
  std::thread stopper([flag] {
    std::this_thread::sleep_for(30ms);
    flag->request();
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(sleep_until(Deadline::after(10)), Interrupted);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  stopper.join();
}
