#include "jobs/jobs.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "base/strings.h"
#include "spdlog/spdlog.h"

namespace custos::jobs {
namespace {

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

bool JobDue(const store::JobLease& lease, std::string_view holder, absl::Time now,
            absl::Duration period) {
  if (lease.holder != holder) return false;
  if (lease.last_run_ms == 0) return true;
  const absl::Duration since = now - absl::FromUnixMillis(lease.last_run_ms);
  // A last run more than a period ahead was recorded by a clock that has since moved back (a
  // fake clock after a restart, a wall clock corrected by NTP): waiting for the clock to catch
  // up would stop the job for as long as it ran ahead. A little ahead is clock skew between
  // instances, and waits as usual.
  return since >= period || since < -period;
}

absl::Duration RetryDelay(int failures, absl::Duration period) {
  const absl::Duration delay = absl::Seconds(int64_t{1} << std::clamp(failures - 1, 0, 20));
  return std::min(delay, period);
}

struct JobRunner::State {
  State(store::ControlStore& store, const Clock& clock, Options options)
      : store(store), clock(clock), options(std::move(options)) {}

  absl::Status PassOne(Job& job) {
    const absl::Time now = clock.Now();
    auto lease = store.AcquireJobLease(job.name, options.holder, UnixMillis(now),
                                       UnixMillis(now + options.lease_ttl));
    if (!lease.ok()) return lease.status();
    if (!JobDue(*lease, options.holder, now, job.period)) return absl::OkStatus();
    Failures& failed = failures[job.name];
    if (failed.count > 0 && now < failed.retry_at) return absl::OkStatus();
    if (absl::Status s = job.run(); !s.ok()) {
      ++failed.count;
      failed.retry_at = now + RetryDelay(failed.count, job.period);
      return absl::Status(s.code(), StrCat("job ", job.name, ": ", s.message()));
    }
    failed = {};
    ++runs[job.name];
    // The run's time is when it started: periods do not drift by the runs' durations.
    return store.RecordJobRun(job.name, options.holder, UnixMillis(now));
  }

  store::ControlStore& store;
  const Clock& clock;
  const Options options;
  std::mutex pass_mu;  // one pass at a time; guards jobs' use and runs
  std::map<std::string, Job, std::less<>> jobs;
  std::map<std::string, int64_t, std::less<>> runs;
  struct Failures {
    int count = 0;  // failed runs in a row
    absl::Time retry_at;
  };
  std::map<std::string, Failures, std::less<>> failures;  // guarded by pass_mu
  std::mutex thread_mu;                                   // guards stop and the thread
  std::condition_variable wake;
  bool stop = false;
  bool started = false;
  std::thread thread;
};

JobRunner::JobRunner(store::ControlStore& store, const Clock& clock, Options options)
    : state_(std::make_unique<State>(store, clock, std::move(options))) {}

JobRunner::~JobRunner() { Stop(); }

absl::Status JobRunner::Register(Job job) {
  if (!ValidName(job.name)) {
    return absl::InvalidArgumentError("job name must be 1-100 printable ASCII bytes");
  }
  if (job.period < absl::Seconds(1)) return absl::InvalidArgumentError("job period under 1 s");
  if (!job.run) return absl::InvalidArgumentError(StrCat("job ", job.name, " has nothing to run"));
  std::lock_guard lock(state_->pass_mu);
  std::string name = job.name;
  if (!state_->jobs.emplace(std::move(name), std::move(job)).second) {
    return absl::AlreadyExistsError("job registered twice");
  }
  return absl::OkStatus();
}

absl::Status JobRunner::RunDue() {
  std::lock_guard lock(state_->pass_mu);
  absl::Status first;
  for (auto& [name, job] : state_->jobs) {
    if (absl::Status s = state_->PassOne(job); !s.ok() && first.ok()) first = s;
  }
  return first;
}

void JobRunner::Start() {
  State& s = *state_;
  std::lock_guard lock(s.thread_mu);
  if (s.started) return;
  s.started = true;
  s.thread = std::thread([this, &s] {
    std::unique_lock lock(s.thread_mu);
    while (!s.stop) {
      lock.unlock();
      if (absl::Status st = RunDue(); !st.ok()) {
        spdlog::warn("jobs: {}", StdView(st.message()));
      }
      lock.lock();
      s.wake.wait_for(lock, absl::ToChronoNanoseconds(s.options.tick), [&s] { return s.stop; });
    }
  });
}

void JobRunner::Stop() {
  State& s = *state_;
  {
    std::lock_guard lock(s.thread_mu);
    if (s.stop) return;
    s.stop = true;
  }
  s.wake.notify_all();
  if (s.thread.joinable()) s.thread.join();
  std::lock_guard lock(s.pass_mu);
  for (const auto& [name, job] : s.jobs) {
    // Best effort: if the store is down, the lease simply expires.
    (void)s.store.ReleaseJobLease(name, s.options.holder);
  }
}

int64_t JobRunner::RunsForTest(std::string_view name) {
  std::lock_guard lock(state_->pass_mu);
  auto it = state_->runs.find(name);
  return it == state_->runs.end() ? 0 : it->second;
}

}  // namespace custos::jobs
