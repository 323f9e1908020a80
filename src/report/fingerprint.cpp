// The settings fingerprint (see fingerprint.hpp).
#include "report/fingerprint.hpp"

#include <map>
#include <tuple>

#include "core/errors.hpp"

namespace bsbr {

namespace {

using nlohmann::json;

// The value at a dotted path, or nullptr when any step is missing.
const json* at_path(const json& root, const std::vector<std::string>& path) {
  const json* j = &root;
  for (const std::string& key : path) {
    if (!j->is_object() || !j->contains(key)) return nullptr;
    j = &(*j)[key];
  }
  return j;
}

std::string text(const json* j) { return j ? j->dump() : "(absent)"; }

void compare_field(const json& left, const json& right, const std::string& block, const std::vector<std::string>& path,
                   const std::set<std::string>& exempt, std::vector<FieldDifference>& out) {
  std::string name = block;
  for (const std::string& p : path) name += "." + p;
  if (exempt.count(name)) return;
  const json* l = at_path(left, path);
  const json* r = at_path(right, path);
  if (text(l) != text(r)) out.push_back({name, text(l), text(r)});
}

// The thread counts a file ran: environment.thread_counts, or [environment.threads] for files
// written before thread sweeps (one count), else absent.
json thread_counts_of(const Results& r) {
  if (const json* t = at_path(r.environment, {"thread_counts"})) return *t;
  if (const json* t = at_path(r.environment, {"threads"})) return json::array({*t});
  return json();
}

}  // namespace

std::vector<FieldDifference> fingerprint_differences(const Results& left, const Results& right, FingerprintScope scope,
                                                     const std::set<std::string>& exempt) {
  std::vector<FieldDifference> out;
  if (left.study_schema || right.study_schema) return out;
  compare_field(left.environment, right.environment, "environment", {"threads"}, exempt, out);
  // The sweep's counts, unless its first count (environment.threads) already differs.
  const bool first_differs = !out.empty();
  if (!first_differs && !exempt.count("environment.thread_counts")) {
    const json l = thread_counts_of(left), r = thread_counts_of(right);
    if (l != r) out.push_back({"environment.thread_counts", l.is_null() ? "(absent)" : l.dump(), r.is_null() ? "(absent)" : r.dump()});
  }
  if (scope == FingerprintScope::kSettingsAndMachine)
    for (const char* k : {"cpu_model", "cores", "onednn_isa", "hostname"})
      compare_field(left.environment, right.environment, "environment", {k}, exempt, out);
  for (const char* k : {"threads", "n_tokens"}) compare_field(left.config, right.config, "config", {"benchmark", k}, exempt, out);
  std::set<std::string> model_keys;  // the union of both files' model keys
  for (const Results* r : {&left, &right})
    if (const json* m = at_path(r->config, {"model"}); m && m->is_object())
      for (auto it = m->begin(); it != m->end(); ++it) model_keys.insert(it.key());
  for (const std::string& k : model_keys) compare_field(left.config, right.config, "config", {"model", k}, exempt, out);
  compare_field(left.config, right.config, "config", {"weights"}, exempt, out);
  // Every point both ran, paired as check and ab pair them: its batch, n_tokens and threads. With
  // runs.threads exempt (ab --b-set benchmark.threads) points pair by (model, workload, n) alone.
  const bool match_threads = !exempt.count("runs.threads");
  const bool sweep = left.thread_counts().size() > 1 || right.thread_counts().size() > 1;
  std::map<std::tuple<std::string, Workload, int64_t, int64_t>, const RunRecord*> right_runs;
  for (const RunRecord& r : right.runs) right_runs[{r.problem.model, r.problem.workload, r.problem.n, match_threads ? r.threads : 0}] = &r;
  for (const RunRecord& l : left.runs) {
    auto it = right_runs.find({l.problem.model, l.problem.workload, l.problem.n, match_threads ? l.threads : 0});
    if (it == right_runs.end()) continue;
    const RunRecord& r = *it->second;
    const std::string where = "runs[" + l.problem.model + " " + to_string(l.problem.workload) + " n=" + std::to_string(l.problem.n) +
                              (sweep ? " threads=" + std::to_string(l.threads) : "") + "].";
    const std::tuple<const char*, int64_t, int64_t> fields[] = {
        {"batch", l.batch, r.batch}, {"n_tokens", l.n_tokens, r.n_tokens}, {"threads", l.threads, r.threads}};
    for (const auto& [name, a, b] : fields)
      if (a != b && !exempt.count(std::string("runs.") + name)) out.push_back({where + name, std::to_string(a), std::to_string(b)});
  }
  return out;
}

void require_same_fingerprint(const Results& left, const std::string& left_name, const Results& right,
                              const std::string& right_name, FingerprintScope scope, const std::set<std::string>& exempt) {
  const std::vector<FieldDifference> d = fingerprint_differences(left, right, scope, exempt);
  if (d.empty()) return;
  std::string more = d.size() > 1 ? " (and " + std::to_string(d.size() - 1) + " more field(s): " : "";
  for (std::size_t i = 1; i < d.size() && i < 6; ++i) more += (i > 1 ? ", " : "") + d[i].field;
  if (d.size() > 6) more += ", ...";
  if (!more.empty()) more += ")";
  throw UserError("settings differ, refusing to compare: " + d[0].field + " is " + d[0].left + " in " + left_name + " and " +
                  d[0].right + " in " + right_name + more);
}

}  // namespace bsbr
