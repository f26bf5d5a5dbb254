// Durability of files on POSIX: what every writer of a file that must survive a crash needs.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace custos {

// fsyncs the directory holding `path`, so that a file created or renamed there is still there
// after a crash (fsyncing the file itself does not persist its directory entry).
// kUnavailable naming the directory and the reason.
absl::Status SyncDirectoryOf(const std::string& path);

}  // namespace custos
