// examples/queue_workers: a C++ producer feeds jobs into a plua::Queue, a
// pool of Lua workers (each on its own plua thread and lua_State) processes
// them, and the results come back to C++ on another Queue.
//
//     queue_workers WORKER.lua [JOBS] [WORKERS]
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <plua/queue.hpp>
#include <plua/runtime.hpp>

// What the worker should answer for a job: the text in capitals, and its word count.
std::string shout(const std::string& text) {
  std::string out;
  for (char c : text) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: queue_workers WORKER.lua [JOBS] [WORKERS]\n";
    return 2;
  }
  const int n_jobs = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int n_workers = argc > 3 ? std::atoi(argv[3]) : 4;

  plua::Runtime rt(plua::Runtime::Options{.memory_limit = 64u << 20});
  plua::Queue jobs = plua::Queue::create(100);  // bounded: the producer waits for the workers
  plua::Queue results = plua::Queue::create();

  std::vector<plua::Worker> workers;
  for (int i = 1; i <= n_workers; ++i)
    workers.push_back(rt.start_file(argv[1], {jobs, results, i}, {.name = "worker-" + std::to_string(i)}));

  std::map<std::int64_t, std::string> expected;
  int received = 0, wrong = 0;
  auto check = [&](const plua::Value& r) {
    std::int64_t id = r.find("id")->as_int();
    if (r.find("shout")->as_string() != shout(expected.at(id)) || r.find("words")->as_int() != 3) ++wrong;
    expected.erase(id);
    ++received;
  };
  for (int id = 1; id <= n_jobs; ++id) {
    std::string text = "job number " + std::to_string(id);
    expected[id] = text;
    jobs.put(plua::Value::Map{{"id", id}, {"text", text}});
    while (auto r = results.get_nowait()) check(*r);  // take what is ready meanwhile
  }
  for (int i = 0; i < n_workers; ++i) jobs.put("stop");
  while (received < n_jobs) {
    auto r = results.get(30.0);
    if (!r) {
      std::cerr << "timed out waiting for results\n";
      return 1;
    }
    check(*r);
  }

  std::int64_t done = 0;
  for (plua::Worker& w : workers) {
    if (!w.join(30.0)) {
      std::cerr << w.name() << " did not stop\n";
      return 1;
    }
    try {
      done += w.result().at(0).as_int();
    } catch (const plua::Error& e) {
      std::cerr << w.name() << " failed: " << e.message() << "\n" << e.traceback() << "\n";
      return 1;
    }
  }
  std::cout << "jobs: " << n_jobs << ", results: " << received << ", wrong: " << wrong
            << ", missing: " << expected.size() << ", done by workers: " << done << "\n";
  return wrong == 0 && expected.empty() && done == n_jobs ? 0 : 1;
}
