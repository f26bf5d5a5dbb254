// Background jobs run exactly once across instances: every `custos serve` sharing a control store
// runs a JobRunner with the same registered jobs, and each run of a job happens on one instance
// only, the holder of the job's lease in the control store (table job_leases).
//
// Each job has its own lease, taken for lease_ttl and renewed on every pass of its holder. A
// holder that stops renewing (killed, hung, cut off from the store) loses the lease once it
// expires, and the next instance to pass takes it over. A job runs when its holder finds it due
// (JobDue: a period since the last completed run, recorded in the lease), so a takeover neither
// repeats nor skips a period. Limits: lease expiry compares the instances' wall clocks, so
// their skew must stay well under lease_ttl (NTP); a run longer than lease_ttl may overlap a
// takeover, and a holder that dies mid-run leaves the run to be redone by the next holder: jobs
// must be idempotent and short (do a bounded slice of work per run).
//
// Registration: build the runner, Register() every job, then Start(); e.g.
//   runner.Register({"grant-expiry", absl::Minutes(1), [&] { return grants.ExpireDue(); }});
// Job names are shared by every instance: the same name must mean the same job everywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "store/store.h"

namespace custos::jobs {

struct Job {
  std::string name;       // 1-100 bytes of printable ASCII; the lease's name
  absl::Duration period;  // at least a second
  // One run. Called on the runner's thread, never concurrently with itself on this instance.
  // A non-OK status is logged; the run is not recorded, so the job is due again, after
  // RetryDelay (so that a job failing on a store that is down does not retry every tick).
  std::function<absl::Status()> run;
};

// How long after its `failures`-th failure in a row a job is tried again: 1 s, doubling, at
// most its period.
absl::Duration RetryDelay(int failures, absl::Duration period);

// Pure scheduling: whether `holder`, given `lease` as stored after its acquire attempt, runs the
// job of `period` at `now`: it holds the lease and a period has passed since the last run (or
// the last run is more than a period ahead of `now`: the clock moved back).
bool JobDue(const store::JobLease& lease, std::string_view holder, absl::Time now,
            absl::Duration period);

class JobRunner {
 public:
  struct Options {
    std::string holder;                      // this instance's unique name (e.g. host:pid:random)
    absl::Duration tick = absl::Seconds(1);  // how often Start()'s thread passes
    absl::Duration lease_ttl = absl::Seconds(15);
  };
  // `store` and `clock` outlive the runner. The lease times and runs read `clock` (so a fake
  // clock moves them in tests); the pacing of the thread reads the monotonic clock.
  JobRunner(store::ControlStore& store, const Clock& clock, Options options);
  ~JobRunner();  // Stop()

  // Before Start() only. kInvalidArgument for a bad name, period or empty run; kAlreadyExists
  // for a name registered twice.
  absl::Status Register(Job job);

  // Starts a thread that calls RunDue() every tick. Call once.
  void Start();
  // Stops the thread and releases this instance's leases so another takes over at once.
  // Idempotent.
  void Stop();

  // One pass, on the calling thread: for each job, takes or renews its lease and, if JobDue,
  // runs it and records the run. Serialised with the thread's passes (callable from a test hook
  // to run what a clock advance made due). Returns the first failure (store unavailable, a job's
  // error); the other jobs still get their pass.
  absl::Status RunDue();

  // How many runs this instance completed, per job name; for tests.
  int64_t RunsForTest(std::string_view name);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace custos::jobs
