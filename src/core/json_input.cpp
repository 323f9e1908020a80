// See json_input.hpp.
#include "core/json_input.hpp"

#include <unordered_set>
#include <vector>

#include "core/errors.hpp"

namespace bsbr {

namespace {

// A key as it may appear in a one-line message: at most 80 bytes, control bytes as \xNN.
std::string printable_key(const std::string& k) {
  std::string s;
  for (std::size_t i = 0; i < k.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(k[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    } else {
      s += static_cast<char>(c);
    }
  }
  return k.size() > 80 ? s + "..." : s;
}

// Where the parser is: one frame per open object or array, tracked from the parser's callback
// events so an error can name the field ("runs[3].samples_s[0]"). Each object frame also keeps
// the keys seen so far: nlohmann keeps the last of two equal keys and drops the first without a
// word, so a duplicate is refused here, while parsing, for every reader alike.
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
  void open(bool array) { frames_.push_back({array, 0, {}, false, {}}); }
  // Records key `k` of the innermost object; false when that object already had it.
  bool key(const std::string& k) {
    if (frames_.empty()) return true;
    Frame& f = frames_.back();
    f.key = printable_key(k);
    f.has_key = true;
    return f.keys.insert(k).second;
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
    std::unordered_set<std::string> keys;  // objects: every key seen so far
  };
  std::vector<Frame> frames_;
};

struct TooDeep {};
struct DuplicateKey {
  std::string key;
};

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
      case E::key: {
        const std::string& k = parsed.template get_ref<const std::string&>();
        if (!path.key(k)) throw DuplicateKey{printable_key(k)};
        break;
      }
      case E::object_end:
      case E::array_end: path.close(); break;
      case E::value: path.value_done(); break;
    }
    return true;
  };
  try {
    return Json::parse(text, on_event);
  } catch (const DuplicateKey& e) {
    throw UserError(what + ": duplicate key '" + e.key + "' at " + path.str() + " (a key may appear once per object)");
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
