// Background jobs across instances: two runners on one control store (two store handles, as two
// processes have), on SQLite and on PostgreSQL (CUSTOS_PG_DSN). The clock is a test clock moved
// by hand; the runners' passes are driven by the test (RunDue), so nothing depends on timing.
#include "jobs/jobs.h"

#include <atomic>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/store.h"
#include "testing/pg_test_db.h"
#include "testing/temp_dir.h"

namespace custos::jobs {
namespace {

class ManualClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::FromUnixMillis(now_ms_.load()); }
  void Advance(absl::Duration d) { now_ms_ += absl::ToInt64Milliseconds(d); }

 private:
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
};

TEST(JobDue, OnlyTheHolderAndOnlyOncePerPeriod) {
  const absl::Time now = absl::FromUnixMillis(10'000'000);
  const absl::Duration period = absl::Minutes(1);
  EXPECT_TRUE(JobDue({"a", 0, 0}, "a", now, period)) << "never ran";
  EXPECT_FALSE(JobDue({"b", 0, 0}, "a", now, period)) << "not the holder";
  EXPECT_FALSE(JobDue({"a", 0, 10'000'000 - 59'999}, "a", now, period));
  EXPECT_TRUE(JobDue({"a", 0, 10'000'000 - 60'000}, "a", now, period));
  // A last run ahead of now: skew between instances waits; a clock that moved back does not.
  EXPECT_FALSE(JobDue({"a", 0, 10'000'000 + 60'000}, "a", now, period));
  EXPECT_TRUE(JobDue({"a", 0, 10'000'000 + 60'001}, "a", now, period));
  EXPECT_TRUE(JobDue({"a", 0, 10'000'000 + 86'400'000}, "a", now, period));
}

class JobRunnerTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto server = testing::PgServerDsn();
      if (!server) GTEST_SKIP() << "CUSTOS_PG_DSN is not set";
      pg_ = std::make_unique<testing::PgTestDatabase>(*server);
    }
    store_a_ = Open(true);
    store_b_ = Open(false);
  }

  std::unique_ptr<store::ControlStore> Open(bool create) {
    return pg_ ? *store::OpenPostgresControlStore(pg_->dsn(), create)
               : *store::OpenSqliteControlStore(dir_.File("control.db"), create);
  }

  std::unique_ptr<JobRunner> Runner(store::ControlStore& store, std::string holder,
                                    std::atomic<int>& runs) {
    auto r = std::make_unique<JobRunner>(
        store, clock_, JobRunner::Options{std::move(holder), absl::Seconds(1), kTtl});
    EXPECT_TRUE(r->Register({"expire", kPeriod,
                             [&runs] {
                               ++runs;
                               return absl::OkStatus();
                             }})
                    .ok());
    return r;
  }

  static constexpr absl::Duration kPeriod = absl::Seconds(60);
  static constexpr absl::Duration kTtl = absl::Seconds(15);
  testing::TempDir dir_;
  std::unique_ptr<testing::PgTestDatabase> pg_;
  std::unique_ptr<store::ControlStore> store_a_, store_b_;
  ManualClock clock_;
};

INSTANTIATE_TEST_SUITE_P(Backends, JobRunnerTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Postgres" : "Sqlite"; });

TEST_P(JobRunnerTest, RunsOncePerPeriodAcrossInstancesAndTakesOverWhenTheHolderStops) {
  std::atomic<int> runs{0};
  auto a = Runner(*store_a_, "instance-a", runs);
  auto b = Runner(*store_b_, "instance-b", runs);

  // Both pass every 5 s for 5 periods: the job runs once per period, always on A (first taker).
  for (int step = 0; step < 60; ++step) {
    ASSERT_TRUE(a->RunDue().ok());
    ASSERT_TRUE(b->RunDue().ok());
    clock_.Advance(absl::Seconds(5));
  }
  EXPECT_EQ(runs.load(), 5);
  EXPECT_EQ(a->RunsForTest("expire"), 5);
  EXPECT_EQ(b->RunsForTest("expire"), 0);

  // A stops renewing (hung or killed: no release). B cannot take the lease before it expires,
  // then takes it and keeps the schedule: the next run is a period after A's last, not at once.
  auto lease = store_b_->AcquireJobLease("expire", "instance-b", absl::ToUnixMillis(clock_.Now()),
                                         absl::ToUnixMillis(clock_.Now() + kTtl));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->holder, "instance-a");
  const int64_t last_run_by_a = lease->last_run_ms;
  for (int step = 0; step < 36; ++step) {  // 3 more periods, B alone
    ASSERT_TRUE(b->RunDue().ok());
    clock_.Advance(absl::Seconds(5));
  }
  EXPECT_EQ(b->RunsForTest("expire"), 3);
  EXPECT_EQ(runs.load(), 8);
  lease = store_a_->AcquireJobLease("expire", "instance-a", absl::ToUnixMillis(clock_.Now()),
                                    absl::ToUnixMillis(clock_.Now() + kTtl));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->holder, "instance-b") << "A came back, but B holds and renews the lease";
  EXPECT_GE(lease->last_run_ms, last_run_by_a + absl::ToInt64Milliseconds(2 * kPeriod));

  // A clean stop releases the lease: A takes over on its very next pass.
  b->Stop();
  ASSERT_TRUE(a->RunDue().ok());
  lease = store_a_->AcquireJobLease("expire", "instance-a", absl::ToUnixMillis(clock_.Now()),
                                    absl::ToUnixMillis(clock_.Now() + kTtl));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->holder, "instance-a");
}

// An instance whose clock ran a day ahead (a fake clock, since restarted) took the lease and ran
// the job then. Back on the right time, instances take the lease over without waiting the day
// out, and the job runs at once instead of a day later. A lease from a clock less than an hour
// ahead (skew) still holds: instances never take it from each other back and forth.
TEST_P(JobRunnerTest, ALeaseAndARunFromAClockThatRanAheadDoNotStopTheJob) {
  std::atomic<int> runs{0};
  ManualClock ahead;
  ahead.Advance(absl::Hours(24));
  JobRunner a(*store_a_, ahead, {"instance-a", absl::Seconds(1), kTtl});
  ASSERT_TRUE(a.Register({"expire", kPeriod,
                          [&runs] {
                            ++runs;
                            return absl::OkStatus();
                          }})
                  .ok());
  ASSERT_TRUE(a.RunDue().ok());
  ASSERT_EQ(runs.load(), 1);
  auto b = Runner(*store_b_, "instance-b", runs);
  ASSERT_TRUE(b->RunDue().ok());
  EXPECT_EQ(b->RunsForTest("expire"), 1) << "the lease was not taken over, or the run waited";
  EXPECT_EQ(runs.load(), 2);
  // Taken at our time: held as usual against a second taker within the term.
  auto lease = store_a_->AcquireJobLease("expire", "instance-c", absl::ToUnixMillis(clock_.Now()),
                                         absl::ToUnixMillis(clock_.Now() + kTtl));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->holder, "instance-b");
  // Instance D's clock is 20 minutes ahead: the lease it takes holds against B.
  b->Stop();
  const absl::Time d_now = clock_.Now() + absl::Minutes(20);
  lease = store_a_->AcquireJobLease("expire", "instance-d", absl::ToUnixMillis(d_now),
                                    absl::ToUnixMillis(d_now + kTtl));
  ASSERT_TRUE(lease.ok());
  ASSERT_EQ(lease->holder, "instance-d");
  lease = store_b_->AcquireJobLease("expire", "instance-b", absl::ToUnixMillis(clock_.Now()),
                                    absl::ToUnixMillis(clock_.Now() + kTtl));
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->holder, "instance-d");
}

TEST_P(JobRunnerTest, FailedRunIsRetriedAndALostLeaseRecordsNothing) {
  int attempts = 0;
  JobRunner a(*store_a_, clock_, {"instance-a", absl::Seconds(1), kTtl});
  ASSERT_TRUE(a.Register({"flaky", kPeriod,
                          [&attempts] {
                            return ++attempts == 1 ? absl::UnavailableError("store down")
                                                   : absl::OkStatus();
                          }})
                  .ok());
  EXPECT_EQ(a.RunDue().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(a.RunDue().ok());
  EXPECT_EQ(attempts, 1) << "retried only after RetryDelay";
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(a.RunDue().ok());
  EXPECT_EQ(attempts, 2) << "a failed run is due again a second later";
  EXPECT_TRUE(a.RunDue().ok());
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(store_b_->RecordJobRun("flaky", "instance-b", 1).code(), absl::StatusCode::kAborted);
}

// A job that keeps failing (its store is down) is tried again after 1 s, 2 s, 4 s, … up to its
// period, not at every pass; a success resets the delay.
TEST_P(JobRunnerTest, AFailingJobBacksOff) {
  EXPECT_EQ(RetryDelay(1, absl::Hours(1)), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(4, absl::Hours(1)), absl::Seconds(8));
  EXPECT_EQ(RetryDelay(20, absl::Minutes(10)), absl::Minutes(10));
  EXPECT_EQ(RetryDelay(1000, absl::Minutes(10)), absl::Minutes(10));
  int attempts = 0;
  bool fail = true;
  JobRunner a(*store_a_, clock_, {"instance-a", absl::Seconds(1), kTtl});
  ASSERT_TRUE(a.Register({"down", absl::Minutes(10),
                          [&] {
                            ++attempts;
                            return fail ? absl::UnavailableError("down") : absl::OkStatus();
                          }})
                  .ok());
  // Passes every second for a minute: tried at 0, 1, 3, 7, 15, 31 s (then at 63 s).
  for (int second = 0; second < 60; ++second) {
    (void)a.RunDue();
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(attempts, 6);
  fail = false;
  clock_.Advance(absl::Seconds(3));  // now 63 s
  EXPECT_TRUE(a.RunDue().ok());
  EXPECT_EQ(attempts, 7);
  EXPECT_EQ(a.RunsForTest("down"), 1);
}

TEST_P(JobRunnerTest, RegistrationIsValidated) {
  JobRunner a(*store_a_, clock_, {"instance-a", absl::Seconds(1), kTtl});
  auto ok = [] { return absl::OkStatus(); };
  EXPECT_EQ(a.Register({"", kPeriod, ok}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Register({"has space", kPeriod, ok}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Register({"fast", absl::Milliseconds(10), ok}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Register({"none", kPeriod, nullptr}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a.Register({"once", kPeriod, ok}).ok());
  EXPECT_EQ(a.Register({"once", kPeriod, ok}).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace custos::jobs
