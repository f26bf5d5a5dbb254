// Fails when a component includes one it must not: lower layers never reach up (STYLE.md §1),
// and no folder includes another folder's internal/ headers.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace custos {
namespace {

namespace fs = std::filesystem;

// What each component may include besides itself; the layers of DESIGN.md's diagram.
const std::map<std::string, std::set<std::string>>& AllowedDependencies() {
  static const auto* kAllowed = new std::map<std::string, std::set<std::string>>{
      {"base", {}},
      {"crypto", {"base"}},
      {"store", {"base"}},
      {"residency", {"base"}},
      {"jobs", {"base", "store"}},
      {"ledger", {"base", "crypto", "store"}},
      {"data", {"base", "crypto", "store", "ledger"}},
      {"access", {"base", "crypto", "store", "ledger", "jobs"}},
      {"tenants", {"base", "crypto", "store", "ledger", "residency", "data"}},
      {"legal",
       {"base", "crypto", "store", "ledger", "residency", "data", "access", "tenants", "jobs"}},
      {"lifecycle",
       {"base", "crypto", "store", "ledger", "residency", "data", "access", "tenants", "jobs"}},
      {"http", {"base"}},
      {"api",
       {"base", "crypto", "store", "ledger", "residency", "data", "access", "tenants", "legal",
        "lifecycle", "http", "jobs"}},
      {"cli",
       {"base", "crypto", "store", "ledger", "residency", "data", "access", "tenants", "legal",
        "lifecycle", "http", "api", "jobs"}},
  };
  return *kAllowed;
}

TEST(Architecture, ComponentsIncludeOnlyLowerLayersAndNoForeignInternals) {
  const fs::path src = fs::path(CUSTOS_SOURCE_DIR) / "src";
  const std::regex include_re(R"re(^\s*#\s*include\s+"([a-z_]+)/([^"]+)")re");
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (!entry.is_regular_file()) continue;
    fs::path rel = fs::relative(entry.path(), src);
    if (rel.begin() == rel.end() || ++rel.begin() == rel.end()) continue;  // src/main.cpp
    const std::string component = rel.begin()->string();
    auto allowed = AllowedDependencies().find(component);
    ASSERT_NE(allowed, AllowedDependencies().end())
        << "src/" << component << " is not in the layer table of this test";
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (!std::regex_search(line, m, include_re)) continue;
      const std::string target = m[1], rest = m[2];
      if (!AllowedDependencies().contains(target)) continue;  // a third-party header
      if (target == component) continue;
      EXPECT_TRUE(allowed->second.contains(target))
          << rel << " includes " << target << "/" << rest << ": " << component
          << " must not depend on " << target;
      EXPECT_EQ(rest.find("internal/"), std::string::npos)
          << rel << " includes another component's internal header " << target << "/" << rest;
    }
  }
  EXPECT_GT(files, 20);
}

}  // namespace
}  // namespace custos
