#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "http/http.h"

namespace custos::http {
namespace {

// Latency histogram bucket upper bounds in seconds.
constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

}  // namespace

void Metrics::Observe(std::string_view route, std::string_view method, int status,
                      absl::Duration d) {
  double seconds = absl::ToDoubleSeconds(d);
  std::lock_guard lock(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), RouteStats{}).first;
  RouteStats& r = it->second;
  if (r.buckets.empty()) r.buckets.assign(kBuckets.size(), 0);
  ++r.counts[{std::string(method), status}];
  ++r.count;
  r.sum_seconds += seconds;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++r.buckets[i];
      break;
    }
  }
}

std::string Metrics::Render() const {
  std::string out =
      "# HELP custos_http_requests_total HTTP requests by route, method and status.\n"
      "# TYPE custos_http_requests_total counter\n";
  std::string hist =
      "# HELP custos_http_request_duration_seconds Time to handle a request, by route.\n"
      "# TYPE custos_http_request_duration_seconds histogram\n";
  std::lock_guard lock(mu_);
  for (const auto& [route, r] : routes_) {
    for (const auto& [key, n] : r.counts) {
      absl::StrAppend(&out, "custos_http_requests_total{route=\"", route, "\",method=\"", key.first,
                      "\",status=\"", key.second, "\"} ", n, "\n");
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += r.buckets[i];
      absl::StrAppend(&hist, "custos_http_request_duration_seconds_bucket{route=\"", route,
                      "\",le=\"", kBuckets[i], "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&hist, "custos_http_request_duration_seconds_bucket{route=\"", route,
                    "\",le=\"+Inf\"} ", r.count, "\n");
    absl::StrAppend(&hist, "custos_http_request_duration_seconds_sum{route=\"", route, "\"} ",
                    absl::StrFormat("%.6f", r.sum_seconds), "\n");
    absl::StrAppend(&hist, "custos_http_request_duration_seconds_count{route=\"", route, "\"} ",
                    r.count, "\n");
  }
  absl::StrAppend(&out, hist,
                  "# HELP custos_http_unauthenticated_total Requests refused for no valid token.\n"
                  "# TYPE custos_http_unauthenticated_total counter\n"
                  "custos_http_unauthenticated_total ",
                  unauthenticated_.load(std::memory_order_relaxed), "\n");
  return out;
}

}  // namespace custos::http
