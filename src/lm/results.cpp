// lm_results.json: writing and strict reading (README "bsbr-bench lm", "Results").
#include "lm/results.hpp"

#include <cmath>
#include <limits>

#include "core/errors.hpp"

namespace bsbr::lm {

using nlohmann::json;

double BucketNll::perplexity() const { return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : std::numeric_limits<double>::quiet_NaN(); }
double ContextEval::perplexity() const { return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : std::numeric_limits<double>::quiet_NaN(); }

namespace {

// NaN and infinities as null (JSON has no such numbers).
json num(double v) { return std::isfinite(v) ? json(v) : json(); }

json curve_json(const std::vector<LossPoint>& c) {
  json a = json::array();
  for (const LossPoint& p : c) a.push_back({{"step", p.step}, {"tokens", p.tokens}, {"seconds", p.seconds}, {"loss", num(p.loss)}});
  return a;
}

json interval_json(const Interval& i) { return {{"n", i.n}, {"mean", num(i.mean)}, {"half", num(i.half)}, {"lo", num(i.mean - i.half)}, {"hi", num(i.mean + i.half)}}; }

json context_json(const ContextEval& c) {
  json b = json::array();
  for (const BucketNll& k : c.buckets)
    b.push_back({{"lo", k.lo}, {"hi", k.hi}, {"nll", k.nll}, {"tokens", k.tokens}, {"perplexity", num(k.perplexity())}});
  return {{"context", c.context}, {"nll", c.nll}, {"tokens", c.tokens}, {"windows", c.windows}, {"perplexity", num(c.perplexity())}, {"buckets", b}};
}

// ---- reading -------------------------------------------------------------------------------------

[[noreturn]] void bad(const std::string& what, const std::string& where, const std::string& why) {
  throw UserError("lm results " + what + ": " + where + ": " + why);
}

const json& field(const json& j, const char* key, const std::string& what, const std::string& where) {
  if (!j.is_object()) bad(what, where, "must be an object");
  auto it = j.find(key);
  if (it == j.end()) bad(what, where, std::string("missing key '") + key + "'");
  return *it;
}

double real(const json& j, const char* key, const std::string& what, const std::string& where) {
  const json& v = field(j, key, what, where);
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!v.is_number()) bad(what, where + "." + key, "must be a number");
  return v.get<double>();
}

int64_t integer(const json& j, const char* key, const std::string& what, const std::string& where) {
  const json& v = field(j, key, what, where);
  if (!v.is_number_integer()) bad(what, where + "." + key, "must be an integer");
  return v.get<int64_t>();
}

std::string text(const json& j, const char* key, const std::string& what, const std::string& where) {
  const json& v = field(j, key, what, where);
  if (!v.is_string()) bad(what, where + "." + key, "must be a string");
  return v.get<std::string>();
}

bool boolean(const json& j, const char* key, const std::string& what, const std::string& where) {
  const json& v = field(j, key, what, where);
  if (!v.is_boolean()) bad(what, where + "." + key, "must be true or false");
  return v.get<bool>();
}

const json& array(const json& j, const char* key, const std::string& what, const std::string& where) {
  const json& v = field(j, key, what, where);
  if (!v.is_array()) bad(what, where + "." + key, "must be a list");
  return v;
}

std::vector<LossPoint> read_curve(const json& a, const std::string& what, const std::string& where) {
  std::vector<LossPoint> c;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string w = where + "[" + std::to_string(i) + "]";
    c.push_back({integer(a[i], "step", what, w), integer(a[i], "tokens", what, w), real(a[i], "seconds", what, w), real(a[i], "loss", what, w)});
  }
  return c;
}

Interval read_interval(const json& j, const std::string& what, const std::string& where) {
  return {integer(j, "n", what, where), real(j, "mean", what, where), real(j, "half", what, where)};
}

ContextEval read_context(const json& j, const std::string& what, const std::string& where) {
  ContextEval c;
  c.context = integer(j, "context", what, where);
  c.nll = real(j, "nll", what, where);
  c.tokens = integer(j, "tokens", what, where);
  c.windows = integer(j, "windows", what, where);
  const json& b = array(j, "buckets", what, where);
  for (std::size_t i = 0; i < b.size(); ++i) {
    const std::string w = where + ".buckets[" + std::to_string(i) + "]";
    c.buckets.push_back({integer(b[i], "lo", what, w), integer(b[i], "hi", what, w), real(b[i], "nll", what, w), integer(b[i], "tokens", what, w)});
  }
  return c;
}

}  // namespace

json to_json(const LmResults& r) {
  json models = json::array();
  for (const ModelResult& m : r.models) {
    json seeds = json::array();
    for (const SeedRun& s : m.seeds) {
      json ctx = json::array();
      for (const ContextEval& c : s.contexts) ctx.push_back(context_json(c));
      seeds.push_back({{"seed", s.seed},
                       {"steps", s.steps},
                       {"tokens", s.tokens},
                       {"train_seconds", s.train_seconds},
                       {"eval_seconds", s.eval_seconds},
                       {"tokens_per_second", num(s.tokens_per_second)},
                       {"stopped_by_time", s.stopped_by_time},
                       {"diverged", s.diverged},
                       {"train_curve", curve_json(s.train_curve)},
                       {"val_curve", curve_json(s.val_curve)},
                       {"target_reached", s.target_reached},
                       {"target_step", s.target_reached ? json(s.target_step) : json()},
                       {"target_tokens", s.target_reached ? json(s.target_tokens) : json()},
                       {"target_seconds", s.target_reached ? json(s.target_seconds) : json()},
                       {"final_val_loss", num(s.final_val_loss)},
                       {"test_perplexity", num(s.test_perplexity)},
                       {"contexts", ctx}});
    }
    json cost = json::array();
    for (const CostPoint& c : m.cost)
      cost.push_back({{"workload", c.workload},
                      {"n", c.n},
                      {"status", c.status},
                      {"reason", c.reason},
                      {"median_s", num(c.median_s)},
                      {"cv", num(c.cv)},
                      {"samples_s", c.samples_s},
                      {"peak_working_bytes", c.peak_working_bytes},
                      {"state_bytes", c.state_bytes},
                      {"params_bytes", c.params_bytes},
                      {"contended", c.contended},
                      {"contention_reason", c.contention_reason}});
    const ModelSummary& s = m.summary;
    json ctx_ppl = json::array(), buckets = json::array();
    for (const Interval& i : s.context_perplexity) ctx_ppl.push_back(interval_json(i));
    for (const auto& row : s.bucket_perplexity) {
      json a = json::array();
      for (const Interval& i : row) a.push_back(interval_json(i));
      buckets.push_back(a);
    }
    models.push_back({{"name", m.name},
                      {"params", m.params},
                      {"params_with_head", m.params_with_head},
                      {"seeds", seeds},
                      {"cost", cost},
                      {"summary",
                       {{"test_perplexity", interval_json(s.test_perplexity)},
                        {"final_val_loss", interval_json(s.final_val_loss)},
                        {"tokens_per_second", interval_json(s.tokens_per_second)},
                        {"target_steps", interval_json(s.target_steps)},
                        {"target_seconds", interval_json(s.target_seconds)},
                        {"target_reached", s.target_reached},
                        {"context_perplexity", ctx_ppl},
                        {"bucket_perplexity", buckets}}}});
  }
  json splits = json::array();
  for (const SplitInfo& s : r.splits)
    splits.push_back({{"name", s.name}, {"documents", s.documents}, {"text_tokens", s.text_tokens}, {"unk_share", s.unk_share}});
  json j = {{"format", "bsbr-lm-results"},
            {"schema_version", kLmSchemaVersion},
            {"partial", !r.partial_reason.empty()},
            {"partial_reason", r.partial_reason.empty() ? json() : json(r.partial_reason)},
            {"settings", r.settings},
            {"repro", r.repro},
            {"data", {{"vocab_size", r.vocab_size}, {"splits", splits}, {"eval_documents", r.eval_documents}, {"eval_text_tokens", r.eval_text_tokens}}},
            {"models", models},
            {"environment", r.environment},
            {"calibration", r.calibration},
            {"warnings", r.warnings},
            {"wall_seconds", r.wall_seconds}};
  return j;
}

LmResults lm_results_from_json(const json& j, const std::string& what) {
  try {
    if (!j.is_object() || j.value("format", "") != "bsbr-lm-results") bad(what, "format", "not a bsbr-bench lm results file");
    if (integer(j, "schema_version", what, "") != kLmSchemaVersion) bad(what, "schema_version", "must be " + std::to_string(kLmSchemaVersion));
    LmResults r;
    r.settings = field(j, "settings", what, "");
    r.repro = text(j, "repro", what, "");
    const json& partial = field(j, "partial_reason", what, "");
    if (!partial.is_null()) r.partial_reason = text(j, "partial_reason", what, "");
    if (boolean(j, "partial", what, "") != !r.partial_reason.empty()) bad(what, "partial", "disagrees with partial_reason");
    const json& data = field(j, "data", what, "");
    r.vocab_size = integer(data, "vocab_size", what, "data");
    r.eval_documents = integer(data, "eval_documents", what, "data");
    r.eval_text_tokens = integer(data, "eval_text_tokens", what, "data");
    for (const json& s : array(data, "splits", what, "data"))
      r.splits.push_back({text(s, "name", what, "data.splits"), integer(s, "documents", what, "data.splits"), integer(s, "text_tokens", what, "data.splits"),
                          real(s, "unk_share", what, "data.splits")});
    const json& models = array(j, "models", what, "");
    for (std::size_t mi = 0; mi < models.size(); ++mi) {
      const json& mj = models[mi];
      const std::string mw = "models[" + std::to_string(mi) + "]";
      ModelResult m;
      m.name = text(mj, "name", what, mw);
      m.params = integer(mj, "params", what, mw);
      m.params_with_head = integer(mj, "params_with_head", what, mw);
      const json& seeds = array(mj, "seeds", what, mw);
      for (std::size_t si = 0; si < seeds.size(); ++si) {
        const json& sj = seeds[si];
        const std::string sw = mw + ".seeds[" + std::to_string(si) + "]";
        SeedRun s;
        s.seed = static_cast<uint64_t>(integer(sj, "seed", what, sw));
        s.steps = integer(sj, "steps", what, sw);
        s.tokens = integer(sj, "tokens", what, sw);
        s.train_seconds = real(sj, "train_seconds", what, sw);
        s.eval_seconds = real(sj, "eval_seconds", what, sw);
        s.tokens_per_second = real(sj, "tokens_per_second", what, sw);
        s.stopped_by_time = boolean(sj, "stopped_by_time", what, sw);
        s.diverged = boolean(sj, "diverged", what, sw);
        s.train_curve = read_curve(array(sj, "train_curve", what, sw), what, sw + ".train_curve");
        s.val_curve = read_curve(array(sj, "val_curve", what, sw), what, sw + ".val_curve");
        s.target_reached = boolean(sj, "target_reached", what, sw);
        if (s.target_reached) {
          s.target_step = integer(sj, "target_step", what, sw);
          s.target_tokens = integer(sj, "target_tokens", what, sw);
          s.target_seconds = real(sj, "target_seconds", what, sw);
        }
        s.final_val_loss = real(sj, "final_val_loss", what, sw);
        s.test_perplexity = real(sj, "test_perplexity", what, sw);
        const json& ctx = array(sj, "contexts", what, sw);
        for (std::size_t ci = 0; ci < ctx.size(); ++ci) s.contexts.push_back(read_context(ctx[ci], what, sw + ".contexts[" + std::to_string(ci) + "]"));
        m.seeds.push_back(std::move(s));
      }
      const json& cost = array(mj, "cost", what, mw);
      for (std::size_t ci = 0; ci < cost.size(); ++ci) {
        const json& c = cost[ci];
        const std::string cw = mw + ".cost[" + std::to_string(ci) + "]";
        CostPoint p;
        p.workload = text(c, "workload", what, cw);
        p.n = integer(c, "n", what, cw);
        p.status = text(c, "status", what, cw);
        p.reason = text(c, "reason", what, cw);
        p.median_s = real(c, "median_s", what, cw);
        p.cv = real(c, "cv", what, cw);
        for (const json& v : array(c, "samples_s", what, cw)) {
          if (!v.is_number()) bad(what, cw + ".samples_s", "must hold numbers");
          p.samples_s.push_back(v.get<double>());
        }
        p.peak_working_bytes = static_cast<uint64_t>(integer(c, "peak_working_bytes", what, cw));
        p.state_bytes = static_cast<uint64_t>(integer(c, "state_bytes", what, cw));
        p.params_bytes = static_cast<uint64_t>(integer(c, "params_bytes", what, cw));
        p.contended = boolean(c, "contended", what, cw);
        p.contention_reason = text(c, "contention_reason", what, cw);
        m.cost.push_back(std::move(p));
      }
      const json& sj = field(mj, "summary", what, mw);
      const std::string sw = mw + ".summary";
      ModelSummary& s = m.summary;
      s.test_perplexity = read_interval(field(sj, "test_perplexity", what, sw), what, sw + ".test_perplexity");
      s.final_val_loss = read_interval(field(sj, "final_val_loss", what, sw), what, sw + ".final_val_loss");
      s.tokens_per_second = read_interval(field(sj, "tokens_per_second", what, sw), what, sw + ".tokens_per_second");
      s.target_steps = read_interval(field(sj, "target_steps", what, sw), what, sw + ".target_steps");
      s.target_seconds = read_interval(field(sj, "target_seconds", what, sw), what, sw + ".target_seconds");
      s.target_reached = integer(sj, "target_reached", what, sw);
      for (const json& i : array(sj, "context_perplexity", what, sw)) s.context_perplexity.push_back(read_interval(i, what, sw + ".context_perplexity"));
      for (const json& row : array(sj, "bucket_perplexity", what, sw)) {
        if (!row.is_array()) bad(what, sw + ".bucket_perplexity", "must be a list of lists");
        std::vector<Interval> v;
        for (const json& i : row) v.push_back(read_interval(i, what, sw + ".bucket_perplexity"));
        s.bucket_perplexity.push_back(std::move(v));
      }
      r.models.push_back(std::move(m));
    }
    r.environment = field(j, "environment", what, "");
    r.calibration = field(j, "calibration", what, "");
    for (const json& w : array(j, "warnings", what, "")) {
      if (!w.is_string()) bad(what, "warnings", "must hold strings");
      r.warnings.push_back(w.get<std::string>());
    }
    r.wall_seconds = real(j, "wall_seconds", what, "");
    return r;
  } catch (const json::exception& e) {
    throw UserError("lm results " + what + ": " + e.what());
  }
}

}  // namespace bsbr::lm
