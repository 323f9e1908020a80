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

}  // namespace

std::vector<FieldDifference> fingerprint_differences(const Results& left, const Results& right, FingerprintScope scope,
                                                     const std::set<std::string>& exempt) {
  std::vector<FieldDifference> out;
  if (left.study_schema || right.study_schema) return out;
  compare_field(left.environment, right.environment, "environment", {"threads"}, exempt, out);
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
  // Every point both ran: its batch, n_tokens and threads.
  std::map<std::tuple<std::string, Workload, int64_t>, const RunRecord*> right_runs;
  for (const RunRecord& r : right.runs) right_runs[{r.problem.model, r.problem.workload, r.problem.n}] = &r;
  for (const RunRecord& l : left.runs) {
    auto it = right_runs.find({l.problem.model, l.problem.workload, l.problem.n});
    if (it == right_runs.end()) continue;
    const RunRecord& r = *it->second;
    const std::string where = "runs[" + l.problem.model + " " + to_string(l.problem.workload) + " n=" + std::to_string(l.problem.n) + "].";
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
