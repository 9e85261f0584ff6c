// A persistent pool: workers spin briefly for the next job (kernels come back-to-back within a
// training step), then sleep on a condition variable so an idle process burns no CPU.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace klear {
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  const std::function<void(int64_t, int64_t)>* job = nullptr;
  int64_t jobN = 0;
  int jobParts = 0;
  bool stop = false;
  int threads = 1;

  void RunPart(int part) {
    int64_t begin = jobN * part / jobParts;
    int64_t end = jobN * (part + 1) / jobParts;
    if (begin < end) (*job)(begin, end);
  }

  void WorkerLoop(int index) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      int spins = 0;
      while ((g = generation.load(std::memory_order_acquire)) == seen && spins < 4000) {
        spins++;
        __builtin_ia32_pause();
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || generation.load(std::memory_order_acquire) != seen; });
        if (stop) return;
        g = generation.load(std::memory_order_acquire);
      }
      seen = g;
      if (index + 1 < jobParts) RunPart(index + 1);
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void Start(int n) {
    threads = n < 1 ? 1 : n;
    for (int i = 0; i < threads - 1; i++) workers.emplace_back([this, i] { WorkerLoop(i); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  ~Pool() { Stop(); }
};

Pool* pool = nullptr;

int DefaultThreads() {
  const char* env = std::getenv("KLEAR_NUM_THREADS");
  if (env && std::atoi(env) > 0) return std::atoi(env);
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : (int)hc;
}

Pool& GetPool() {
  if (!pool) {
    pool = new Pool();
    pool->Start(DefaultThreads());
  }
  return *pool;
}

}  // namespace

int NumThreads() { return GetPool().threads; }

void SetNumThreads(int n) {
  Pool& p = GetPool();
  p.Stop();
  p.Start(n);
}

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  Pool& p = GetPool();
  int parts = p.threads;
  if (grain < 1) grain = 1;
  if (n / grain < parts) parts = (int)(n / grain);
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  p.job = &fn;
  p.jobN = n;
  p.jobParts = parts;
  p.pending.store((int)p.workers.size(), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.generation.fetch_add(1, std::memory_order_acq_rel);
  }
  p.cv.notify_all();
  p.RunPart(0);
  while (p.pending.load(std::memory_order_acquire) != 0) __builtin_ia32_pause();
}

}  // namespace klear
