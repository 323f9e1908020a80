// See json_input.hpp.
#include "core/json_input.hpp"

#include <vector>

#include "core/errors.hpp"

namespace bsbr {

namespace {

// Where the parser is: one frame per open object or array, tracked from the parser's callback
// events so an error can name the field ("runs[3].samples_s[0]").
class JsonPath {
 public:
  // The path, its first `max_frames` levels only (a refused deep file would print a huge path).
  std::string str(std::size_t max_frames = 32) const {
    std::string s;
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (i == max_frames) return s + "...";
      if (f.array) s += "[" + std::to_string(f.index) + "]";
      else if (f.has_key) s += (s.empty() ? "" : ".") + f.key;
    }
    return s.empty() ? "the top level" : s;
  }
  void open(bool array) { frames_.push_back({array, 0, {}, false}); }
  void key(const std::string& k) {
    if (!frames_.empty()) {
      frames_.back().key = k.size() > 80 ? k.substr(0, 80) + "..." : k;
      frames_.back().has_key = true;
    }
  }
  void value_done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }
  void close() {
    if (!frames_.empty()) frames_.pop_back();
    value_done();
  }

 private:
  struct Frame {
    bool array;
    std::size_t index;
    std::string key;
    bool has_key;
  };
  std::vector<Frame> frames_;
};

struct TooDeep {};

template <class Json>
Json parse_bounded(const std::string& text, const std::string& what, int max_depth) {
  JsonPath path;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, Json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        if (depth >= max_depth) throw TooDeep{};
        path.open(event == E::array_start);
        break;
      case E::key: path.key(parsed.template get<std::string>()); break;
      case E::object_end:
      case E::array_end: path.close(); break;
      case E::value: path.value_done(); break;
    }
    return true;
  };
  try {
    return Json::parse(text, on_event);
  } catch (const TooDeep&) {
    throw UserError(what + ": nesting deeper than " + std::to_string(max_depth) + " levels at " + path.str(4));
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(what + " is not valid JSON: " + e.what());
  } catch (const nlohmann::json::exception& e) {  // out_of_range 406: a number that overflows a double
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    throw UserError(what + ": " + msg + " at " + path.str());
  }
}

}  // namespace

nlohmann::json parse_json_input(const std::string& text, const std::string& what, int max_depth) {
  return parse_bounded<nlohmann::json>(text, what, max_depth);
}

nlohmann::ordered_json parse_ordered_json_input(const std::string& text, const std::string& what, int max_depth) {
  return parse_bounded<nlohmann::ordered_json>(text, what, max_depth);
}

}  // namespace bsbr
