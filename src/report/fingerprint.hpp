// The settings fingerprint (README "bsbr-bench ab", "bsbr-bench check"): two results files are
// comparable only when they ran the same work with the same settings. Fields, by their JSON path:
//  settings (check and ab):
//    environment.threads                 the threads the run actually used (a sweep: its first count)
//    environment.thread_counts           every count of a thread sweep ([environment.threads] when absent)
//    config.benchmark.threads            the threads asked for (0 = all cores)
//    config.benchmark.n_tokens           decode/generate steps per sample
//    config.model.<every key>            model sizes and options (hidden_dim, num_layers, ff_dim,
//                                        batch_size, chunk_size, ... as the files spell them)
//    config.weights                      the weights directory (null: seeded initialisation)
//    runs[model/workload/n/threads].batch, .n_tokens, .threads   of every point both files ran
//  machine (ab only; check compares machines through their calibration instead):
//    environment.cpu_model, environment.cores, environment.onednn_isa, environment.hostname
// A field present in one file and absent from the other differs. Files in the study's plain schema
// record no settings: they are not fingerprinted.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr {

enum class FingerprintScope { kSettings, kSettingsAndMachine };

struct FieldDifference {
  std::string field;      // e.g. "config.model.hidden_dim"
  std::string left, right;  // the values as JSON text; "(absent)" when missing
};

// Every differing field, skipping the paths in `exempt` (e.g. config.model.ff_dim when ab's
// --b-set changes it on purpose).
std::vector<FieldDifference> fingerprint_differences(const Results& left, const Results& right, FingerprintScope scope,
                                                     const std::set<std::string>& exempt = {});

// Throws UserError naming the first differing field and both values when the files differ:
// "settings differ: config.model.hidden_dim is \"256\" in <left_name> and \"512\" in <right_name>".
void require_same_fingerprint(const Results& left, const std::string& left_name, const Results& right,
                              const std::string& right_name, FingerprintScope scope, const std::set<std::string>& exempt = {});

}  // namespace bsbr
