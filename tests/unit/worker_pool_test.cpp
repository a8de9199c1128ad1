// core::WorkerPool and pool_wire with a C++ worker (no Lua): frames, dispatch,
// dead workers, replacement, terminate.
#include "plua/core/worker_pool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "plua/core/pool_wire.hpp"

namespace {

using plua::core::ChunkOutcome;
using plua::core::Deadline;
using plua::core::PoolFunction;
using plua::core::WorkerPool;
using plua::core::pool_wire::Frame;
using plua::core::pool_wire::FrameType;
using plua::core::pool_wire::TaskMode;

TEST(PoolWire, FramesRoundTripThroughAPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string out;
  plua::core::pool_wire::append_def(out, 7, "fn");
  plua::core::pool_wire::append_task(out, 1, 7, TaskMode::starmap, "args");
  plua::core::pool_wire::append_result(out, 1, false, 0.25, "err");
  plua::core::pool_wire::append_quit(out);
  ASSERT_EQ(::write(fds[1], out.data(), out.size()), static_cast<ssize_t>(out.size()));
  ::close(fds[1]);
  plua::core::pool_wire::FrameReader reader;
  while (reader.read_from(fds[0]) > 0) {
  }
  ::close(fds[0]);
  Frame f;
  ASSERT_TRUE(reader.next(f));
  EXPECT_EQ(f.type, FrameType::def);
  EXPECT_EQ(f.id, 7u);
  EXPECT_EQ(f.payload, "fn");
  ASSERT_TRUE(reader.next(f));
  EXPECT_EQ(f.type, FrameType::task);
  EXPECT_EQ(f.function, 7u);
  EXPECT_EQ(f.mode, TaskMode::starmap);
  EXPECT_EQ(f.payload, "args");
  ASSERT_TRUE(reader.next(f));
  EXPECT_EQ(f.type, FrameType::result);
  EXPECT_FALSE(f.ok);
  EXPECT_DOUBLE_EQ(f.seconds, 0.25);
  EXPECT_EQ(f.payload, "err");
  ASSERT_TRUE(reader.next(f));
  EXPECT_EQ(f.type, FrameType::quit);
  EXPECT_FALSE(reader.next(f));
}

TEST(PoolWire, MalformedFramesAreRefused) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const char bad[] = {5, 0, 0, 0, 'Z', 0, 0, 0, 0};
  ASSERT_EQ(::write(fds[1], bad, sizeof bad), static_cast<ssize_t>(sizeof bad));
  ::close(fds[1]);
  plua::core::pool_wire::FrameReader reader;
  while (reader.read_from(fds[0]) > 0) {
  }
  ::close(fds[0]);
  Frame f;
  EXPECT_THROW(reader.next(f), std::runtime_error);
}

// A worker that echoes each task's payload; "die" kills the worker (a
// process) mid-task, "sleep" sleeps 30 s, "fail" returns an error outcome.
int echo_worker_limited(int in_fd, int out_fd, std::uint64_t limit) {
  plua::core::pool_wire::WorkerEndpoint ep(in_fd, out_fd);
  Frame f;
  std::uint64_t done = 0;
  while (ep.next(f)) {
    if (f.type == FrameType::quit) break;
    if (f.type != FrameType::task) continue;
    std::string payload(f.payload);
    if (payload == "die") ::kill(::getpid(), SIGKILL);
    if (payload == "sleep") {
      try {
        plua::core::sleep_until(Deadline::after(30));
      } catch (const plua::core::Interrupted&) {
        break;
      }
    }
    ep.send_result(f.id, payload != "fail", 0.0, payload);
    if (limit && ++done >= limit) break;
  }
  ep.flush();
  return 0;
}

int echo_worker(int in_fd, int out_fd, std::string) { return echo_worker_limited(in_fd, out_fd, 0); }

// Worker threads are stopped by a signal whose handler asks them to stop.
int stop_signal() {
  static const int sig = [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) { plua::core::this_thread_stop_flag().request(); };
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGUSR2, &sa, nullptr);
    return SIGUSR2;
  }();
  return sig;
}

WorkerPool::Options options(WorkerPool::Kind kind, std::size_t n) {
  WorkerPool::Options o;
  o.kind = kind;
  o.workers = n;
  o.main = echo_worker;
  o.interrupt_signal = kind == WorkerPool::Kind::threads ? stop_signal() : 0;
  return o;
}

std::string take(WorkerPool& pool, plua::core::PoolJob& job, std::size_t i) {
  return pool.take(job, i).payload;
}

class WorkerPoolKinds : public ::testing::TestWithParam<WorkerPool::Kind> {};

TEST_P(WorkerPoolKinds, RunsChunksInOrderOfSubmission) {
  WorkerPool pool(options(GetParam(), 2), {"kit"}, true);
  auto fn = std::make_shared<PoolFunction>(PoolFunction{pool.next_function_id(), "f"});
  std::vector<std::string> payloads;
  for (int i = 0; i < 500; ++i) payloads.push_back("item" + std::to_string(i));
  auto job = pool.submit(fn, TaskMode::map, payloads, false);
  ASSERT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_FALSE(pool.failure(*job));
  for (int i = 0; i < 500; ++i) EXPECT_EQ(take(pool, *job, i), "item" + std::to_string(i));
  EXPECT_EQ(take(pool, *job, 0), "");  // taken once
  pool.close();
  EXPECT_TRUE(pool.join(Deadline::after(20)));
  EXPECT_THROW(pool.submit(fn, TaskMode::map, {"x"}, false), plua::core::PoolNotRunning);
}

TEST_P(WorkerPoolKinds, AFailedChunkFailsTheJob) {
  WorkerPool pool(options(GetParam(), 1), {""}, true);
  auto job = pool.submit(std::make_shared<PoolFunction>(), TaskMode::apply, {"a", "fail", "c"}, true);
  ASSERT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  auto ready = pool.take_callback_jobs();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0], job);
  EXPECT_EQ(pool.failure(*job), std::optional<std::size_t>(1));
  EXPECT_EQ(pool.take(*job, 1).status, ChunkOutcome::Status::error);
}

TEST_P(WorkerPoolKinds, TerminateEndsRunningAndPendingChunks) {
  WorkerPool pool(options(GetParam(), 1), {""}, true);
  auto job = pool.submit(std::make_shared<PoolFunction>(), TaskMode::apply, {"sleep", "b"}, false);
  EXPECT_EQ(pool.wait_ready(*job, Deadline::after(0.1)), WorkerPool::Wake::timeout);
  auto t0 = std::chrono::steady_clock::now();
  pool.terminate();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(pool.ready(*job));
  EXPECT_EQ(pool.take(*job, 0).status, ChunkOutcome::Status::terminated);
  EXPECT_EQ(pool.take(*job, 1).status, ChunkOutcome::Status::terminated);
  EXPECT_TRUE(pool.finished());
}

TEST_P(WorkerPoolKinds, AStreamedJobRunsEachChunkAsItIsAdded) {
  WorkerPool pool(options(GetParam(), 2), {""}, true);
  auto job = pool.open_job(std::make_shared<PoolFunction>(), TaskMode::map, 3, true);
  pool.add_chunk(job, "a");
  // The first chunk runs before the others are added.
  ASSERT_EQ(pool.wait_progress(*job, 0, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_FALSE(pool.ready(*job));
  pool.add_chunk(job, "b");
  pool.add_chunk(job, "c");
  EXPECT_THROW(pool.add_chunk(job, "d"), std::logic_error);
  ASSERT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_FALSE(pool.failure(*job));
  EXPECT_EQ(take(pool, *job, 0), "a");
  EXPECT_EQ(take(pool, *job, 1), "b");
  EXPECT_EQ(take(pool, *job, 2), "c");
  EXPECT_EQ(pool.take_callback_jobs().size(), 1u);
}

// Chunk by chunk, a job wakes the manager thousands of times while it also
// reads results: no wake-up may be lost (one once was, and the pool hung
// with chunks queued and every worker idle).
TEST_P(WorkerPoolKinds, NoWakeUpIsLostWhenChunksComeOneByOne) {
  WorkerPool pool(options(GetParam(), 2), {""}, true);
  for (int round = 0; round < 5; ++round) {
    auto job = pool.open_job(std::make_shared<PoolFunction>(), TaskMode::map, 20000, false);
    for (int i = 0; i < 20000; ++i) pool.add_chunk(job, "x");
    ASSERT_EQ(pool.wait_ready(*job, Deadline::after(60)), WorkerPool::Wake::done) << "round " << round;
    EXPECT_FALSE(pool.failure(*job));
  }
}

TEST_P(WorkerPoolKinds, AnAbandonedJobEndsWithoutItsMissingChunksOrCallbacks) {
  WorkerPool pool(options(GetParam(), 1), {""}, true);
  auto job = pool.open_job(std::make_shared<PoolFunction>(), TaskMode::map, 4, true);
  pool.add_chunk(job, "sleep");
  pool.add_chunk(job, "b");  // waits behind the sleeping chunk: dropped by abandon
  pool.abandon(job);
  EXPECT_TRUE(pool.ready(*job));
  EXPECT_EQ(pool.take(*job, 1).status, ChunkOutcome::Status::terminated);
  EXPECT_EQ(pool.take(*job, 2).status, ChunkOutcome::Status::terminated);
  EXPECT_EQ(pool.take(*job, 3).status, ChunkOutcome::Status::terminated);
  EXPECT_TRUE(pool.take_callback_jobs().empty());
  pool.terminate();
}

TEST_P(WorkerPoolKinds, ChunksAddedAfterCloseEndAsTerminated) {
  WorkerPool pool(options(GetParam(), 1), {""}, true);
  auto job = pool.open_job(std::make_shared<PoolFunction>(), TaskMode::map, 2, false);
  pool.add_chunk(job, "a");
  pool.close();
  pool.add_chunk(job, "b");
  ASSERT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_EQ(pool.take(*job, 1).status, ChunkOutcome::Status::terminated);
  EXPECT_TRUE(pool.join(Deadline::after(20)));
  EXPECT_THROW(pool.open_job(std::make_shared<PoolFunction>(), TaskMode::map, 1, false),
               plua::core::PoolNotRunning);
}

INSTANTIATE_TEST_SUITE_P(Kinds, WorkerPoolKinds,
                         ::testing::Values(WorkerPool::Kind::processes, WorkerPool::Kind::threads));

TEST(WorkerPool, ADeadWorkerFailsItsChunkAndIsReplaced) {
  WorkerPool pool(options(WorkerPool::Kind::processes, 1), {""}, true);
  auto before = pool.worker_pids();
  ASSERT_EQ(before.size(), 1u);
  auto job = pool.submit(std::make_shared<PoolFunction>(), TaskMode::apply, {"a", "die", "c", "d"}, false);
  ASSERT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_EQ(pool.failure(*job), std::optional<std::size_t>(1));
  ChunkOutcome lost = pool.take(*job, 1);
  EXPECT_EQ(lost.status, ChunkOutcome::Status::lost);
  EXPECT_EQ(lost.pid, before[0]);
  EXPECT_EQ(lost.exitcode, -SIGKILL);
  // The chunks behind it were not lost: a new worker ran them.
  auto rest = pool.submit(std::make_shared<PoolFunction>(), TaskMode::apply, {"e"}, false);
  ASSERT_EQ(pool.wait_ready(*rest, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_EQ(take(pool, *rest, 0), "e");
  EXPECT_EQ(take(pool, *job, 2), "c");
  EXPECT_EQ(take(pool, *job, 3), "d");
  auto after = pool.worker_pids();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0], before[0]);
}

TEST(WorkerPool, KitsAreAskedForWhenWorkersNeedThem) {
  WorkerPool::Options o = options(WorkerPool::Kind::threads, 1);
  o.max_tasks = 1;
  o.main = [](int in_fd, int out_fd, std::string) { return echo_worker_limited(in_fd, out_fd, 1); };
  WorkerPool pool(o, {"first"}, false);
  auto job = pool.submit(std::make_shared<PoolFunction>(), TaskMode::apply, {"a", "b"}, false);
  // The first worker leaves after one chunk; its successor waits for a kit.
  WorkerPool::Wake wake = pool.wait_ready(*job, Deadline::after(20));
  ASSERT_EQ(wake, WorkerPool::Wake::service);
  EXPECT_EQ(pool.kits_wanted(), 1u);
  pool.add_kit("second");
  EXPECT_EQ(pool.wait_ready(*job, Deadline::after(20)), WorkerPool::Wake::done);
  EXPECT_EQ(take(pool, *job, 1), "b");
}

}  // namespace
