// safetensors: round trips in F32/F16/BF16, and every malformed file rejected cleanly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "io/safetensors.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

std::string dir() {
  static std::string d = test::temp_dir("safetensors");
  return d;
}

TEST(Safetensors, RoundTripAllDtypes) {
  std::vector<float> a = test::random_vector(6, 1), b = test::random_vector(5, 2, 10.f);
  std::vector<TensorToWrite> ts = {{"a.weight", {2, 3}, a.data()}, {"b", {5}, b.data()}};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    std::string p = dir() + "/rt_" + to_string(dt) + ".safetensors";
    write_safetensors(p, ts, dt, {{"format", "pt"}});
    SafetensorsFile f(p);
    ASSERT_EQ(f.tensors().size(), 2u);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    const TensorInfo* ta = f.find("a.weight");
    ASSERT_NE(ta, nullptr);
    EXPECT_EQ(ta->shape, (Shape{2, 3}));
    EXPECT_EQ(ta->dtype, dt);
    auto ra = f.read_f32(*ta), rb = f.read_f32(*f.find("b"));
    double tol = dt == DType::kF32 ? 0 : dt == DType::kF16 ? 1e-3 : 8e-3;  // half precision's relative step
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(ra[i], a[i], tol * std::fabs(a[i]) + 1e-7) << to_string(dt);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(rb[i], b[i], tol * std::fabs(b[i]) + 1e-7) << to_string(dt);
  }
}

TEST(Safetensors, HalfConversionsExactValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  for (uint16_t h : {0x0000, 0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x8001, 0xbc00}) EXPECT_EQ(f32_to_f16(f16_to_f32(h)), h);
}

// Writes raw bytes: 8-byte length + header text + data bytes.
std::string raw(const std::string& name, const std::string& header, std::size_t data_bytes, int64_t len_override = -1) {
  std::string p = dir() + "/" + name + ".safetensors";
  std::ofstream out(p, std::ios::binary);
  uint64_t len = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
  return p;
}

struct Bad {
  const char* name;
  std::string path;
  const char* expect;
};

TEST(Safetensors, MalformedFilesRejected) {
  std::vector<Bad> cases = {
      {"bad_json", raw("bad_json", "{\"a\": {", 0), "not valid JSON"},
      {"not_object", raw("not_object", "[1]", 0), "not a safetensors file"},
      {"past_end", raw("past_end", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "past the end"},
      {"overlap", raw("overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       "overlapping"},
      {"wrong_shape", raw("wrong_shape", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "does not match shape"},
      {"bad_dtype", raw("bad_dtype", R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8), "unsupported dtype I64"},
      {"neg_dim", raw("neg_dim", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "negative dimension"},
      {"begin_gt_end", raw("begin_gt_end", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8), "begin > end"},
      {"no_offsets", raw("no_offsets", R"({"a":{"dtype":"F32","shape":[1]}})", 4), "data_offsets"},
      {"header_too_long", raw("header_too_long", "{}", 0, 1000), "header length 1000 exceeds the file"},
      // Issue 12: an empty tensor sorted between two overlapping ones must not hide the overlap.
      {"overlap_behind_empty",
       raw("overlap_behind_empty",
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       "tensors 'a' and 'b' have overlapping byte ranges"},
      {"contained_behind_empty",
       raw("contained_behind_empty",
           R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 16),
       "tensors 'a' and 'b' have overlapping byte ranges"},
      // Dimensions past 2^62 (printed as [0, -1] once): refused, the shape is printed as written.
      {"huge_dim", raw("huge_dim", R"({"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", 0),
       "shape [0,18446744073709551615] has more than 2^62 elements"},
      {"huge_product", raw("huge_product", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0), "more than 2^62 elements"},
      {"huge_rank", raw("huge_rank", R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4), "17 dimensions"},
      {"overflow_number", raw("overflow_number", R"({"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", 4), "number overflow"},
      {"deep_metadata", raw("deep_metadata", R"({"__metadata__":{"a":[[[[[]]]]]}})", 0), "nesting deeper than 4 levels"},
      {"huge_header", raw("huge_header", "{}", 0, int64_t{1} << 40), "implausibly large"},
  };
  {  // shorter than the length field
    std::string p = dir() + "/tiny.safetensors";
    std::ofstream(p, std::ios::binary) << "abc";
    cases.push_back({"tiny", p, "not a safetensors file"});
  }
  {  // a valid file cut in the middle of its data
    std::vector<float> v(64, 1.f);
    std::string p = dir() + "/cut.safetensors";
    write_safetensors(p, {{"w", {64}, v.data()}});
    std::ifstream in(p, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(p, std::ios::binary | std::ios::trunc) << all.substr(0, all.size() - 10);
    cases.push_back({"cut", p, "past the end"});
  }
  cases.push_back({"missing", dir() + "/does_not_exist.safetensors", "not found"});
  {  // some other kind of file: its first 8 bytes read as a huge length, but it is not "truncated"
    std::string p = dir() + "/text.safetensors";
    std::ofstream(p, std::ios::binary) << "This is a README, not a tensor file.\n";
    cases.push_back({"text", p, "not a safetensors file"});
  }
  for (const Bad& c : cases) {
    try {
      SafetensorsFile f(c.path);
      ADD_FAILURE() << "accepted " << c.name;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace bsbr
