// The environment block recorded with every results file (SPEC §3): what ran where.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace bsbr {

struct Environment {
  std::string cpu_model;
  int cores = 0;
  int threads = 0;
  std::string onednn_version;
  std::string onednn_isa;  // the ISA oneDNN dispatches on this machine
  std::string compiler, cxx_flags, build_type;
  std::string git_commit;  // "<sha>[-dirty]" or "unknown"
  std::string utc_time;    // ISO 8601
  std::string hostname;
  std::string tool_version;
};

Environment collect_environment(int threads);
nlohmann::json to_json(const Environment& e);

}  // namespace bsbr
