// A persistent pool with work claiming: a job is split into parts that any thread, the caller included,
// claims from an atomic counter. On a busy machine a worker may not be scheduled in time; the caller
// then runs the remaining parts itself instead of waiting a whole time slice for it. Workers spin
// briefly for the next job (kernels come back to back within a step), then sleep on a condition variable.
#include <atomic>
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
  // (job id << 32) | (parts << 16) | next unclaimed part. The part count travels in the same atomic word
  // as the id: a worker still looking at a finished job must never pair that job's claim word with the
  // next job's (non-atomic) part count, or its CAS could claim a part of the new job twice.
  std::atomic<uint64_t> claim{0};
  std::atomic<int> donePart{0};
  // Held by the thread that owns the current job; a nested call, or a call from a second JS thread
  // (worker_threads), finds it taken and runs its loop inline instead of corrupting the job.
  std::atomic<bool> busy{false};
  const std::function<void(int64_t, int64_t)>* job = nullptr;
  int64_t jobN = 0;
  bool stop = false;
  int threads = 1;

  // Claims and runs parts of job `id` until none are left.
  void Drain(uint32_t id) {
    for (;;) {
      uint64_t c = claim.load(std::memory_order_acquire);
      if ((uint32_t)(c >> 32) != id) return;
      uint32_t parts = (uint32_t)(c >> 16) & 0xffffu;
      uint32_t part = (uint32_t)c & 0xffffu;
      if (part >= parts) return;
      if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
      int64_t begin = jobN * part / parts;
      int64_t end = jobN * (part + 1) / parts;
      if (begin < end) (*job)(begin, end);
      donePart.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void WorkerLoop() {
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
      Drain((uint32_t)g);
    }
  }

  void Start(int n) {
    threads = n < 1 ? 1 : n;
    for (int i = 0; i < threads - 1; i++) workers.emplace_back([this] { WorkerLoop(); });
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
  if (grain < 1) grain = 1;
  int64_t maxParts = n / grain;
  // A few parts per thread, so the caller can take over a late worker's share.
  int64_t want = (int64_t)p.threads * 2;
  int parts = (int)(maxParts < want ? maxParts : want);
  if (parts > 0xffff) parts = 0xffff;
  bool expected = false;
  if (parts <= 1 || p.threads <= 1 || !p.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
    fn(0, n);
    return;
  }
  p.job = &fn;
  p.jobN = n;
  p.donePart.store(0, std::memory_order_relaxed);
  uint64_t g = p.generation.load(std::memory_order_relaxed) + 1;
  p.claim.store(((g & 0xffffffffu) << 32) | ((uint64_t)parts << 16), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.generation.store(g, std::memory_order_release);
  }
  p.cv.notify_all();
  p.Drain((uint32_t)g);
  while (p.donePart.load(std::memory_order_acquire) < parts) __builtin_ia32_pause();
  p.busy.store(false, std::memory_order_release);
}

}  // namespace klear
