// Tests of SafetensorsFile and SafetensorsWriter: round trips of every dtype, the golden files, and a
// hand-made malformed corpus with one case per validation rule.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "fusedmoe/error.hpp"
#include "fusedmoe/safetensors.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp directory, removed with its contents afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("fusedmoe_safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(stream.good()) << path;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

std::string le64(std::uint64_t value) {
  std::string bytes(8, '\0');
  for (int index = 0; index < 8; ++index)
    bytes[static_cast<std::size_t>(index)] = static_cast<char>(value >> (8 * index));
  return bytes;
}

// A file: the header length (the JSON's own unless `length` overrides it), the JSON, then `data`.
std::string make_file(std::string_view json, std::string_view data,
                      std::optional<std::uint64_t> length = {}) {
  return le64(length.value_or(json.size())) + std::string(json) + std::string(data);
}

std::span<const std::byte> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

SafetensorsFile from_string(std::string_view bytes, std::string label = "memory.safetensors") {
  return SafetensorsFile::from_buffer(as_bytes(bytes), std::move(label));
}

// ---- the malformed corpus ---------------------------------------------------------------------

struct MalformedCase {
  std::string name;      // the rule, also the test name
  std::string bytes;     // the whole file
  std::string expected;  // a message substring that shows this rule fired
  std::string tensor;    // the tensor the message must name ("" when none is involved)
};

std::string entry(std::string_view dtype, std::string_view shape, std::string_view offsets) {
  return "{\"dtype\":\"" + std::string(dtype) + "\",\"shape\":" + std::string(shape) +
         ",\"data_offsets\":" + std::string(offsets) + "}";
}

std::vector<MalformedCase> malformed_corpus() {
  const std::string eight(8, '\x01');
  const std::string w4 = "{\"w\":" + entry("F32", "[2]", "[0,8]") + "}";  // a valid file: w4 + eight
  std::vector<MalformedCase> cases = {
      {"EmptyFile", "", "file is too short: expected at least 8 bytes", ""},
      {"TruncatedLength", std::string("\x10\x00\x00\x00\x00", 5), "file is too short", ""},
      {"HeaderLengthZero", make_file("", ""), "header length: expected 1 to", ""},
      {"HeaderLength2Pow63", make_file(w4, eight, std::uint64_t{1} << 63),
       "header length: expected at most 104857600", ""},
      {"HeaderLengthMaxU64", make_file(w4, eight, ~std::uint64_t{0}), "(the format's cap)", ""},
      {"HeaderLengthAboveCap", make_file(w4, eight, (std::uint64_t{100} << 20) + 1), "(the format's cap)",
       ""},
      {"HeaderLengthPastEnd", make_file(w4, eight, w4.size() + eight.size() + 1),
       "header length runs past the end of the file", ""},
      {"TruncatedFile", make_file(w4, eight).substr(0, 8 + w4.size() + 5),
       "data_offsets [0, 8] end beyond the data region: expected end <= 5", "w"},
      {"InvalidUtf8Byte", make_file("{\"w\xff\":" + entry("F32", "[2]", "[0,8]") + "}", eight),
       "header is not valid UTF-8", ""},
      {"OverlongUtf8", make_file("{\"\xc0\xaf\":{}}", ""), "header is not valid UTF-8", ""},
      {"Utf8Surrogate", make_file("{\"\xed\xa0\x80\":{}}", ""), "header is not valid UTF-8", ""},
      {"TruncatedUtf8", make_file("{\"w\":1}\xe2\x82", ""), "header is not valid UTF-8", ""},
      {"InvalidJson", make_file("{\"w\": ", ""), "header: not valid JSON", ""},
      {"JsonComment", make_file("{/* c */}", ""), "header: not valid JSON", ""},
      {"JsonTrailingGarbage", make_file("{} x", ""), "header: not valid JSON", ""},
      {"JsonNulByte", make_file(std::string("{}\0", 3), ""), "header: not valid JSON", ""},
      {"HeaderNotObject", make_file("[1,2]", ""), "header: expected a JSON object, got array", ""},
      {"HeaderString", make_file("\"w\"", ""), "header: expected a JSON object, got string", ""},
      {"DeepNesting", make_file("{\"w\":" + std::string(40, '[') + std::string(40, ']') + "}", ""),
       "JSON nests too deeply", ""},
      {"ShapeOfArrays", make_file("{\"w\":" + entry("F32", "[[2]]", "[0,8]") + "}", eight),
       "header: JSON nests too deeply: expected at most 3 levels", ""},
      {"EntryNotObject", make_file("{\"w\":3}", ""),
       "expected an object with dtype, shape and data_offsets, got number", "w"},
      {"MissingDtype", make_file("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
       "is missing 'dtype'", "w"},
      {"MissingShape", make_file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", eight),
       "is missing 'shape'", "w"},
      {"MissingOffsets", make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight),
       "is missing 'data_offsets'", "w"},
      {"DtypeNotString", make_file("{\"w\":" + entry("F32", "[2]", "[0,8]").replace(9, 5, "32") + "}", eight),
       "dtype: expected a string, got number", "w"},
      {"ShapeNotArray", make_file("{\"w\":" + entry("F32", "\"2\"", "[0,8]") + "}", eight),
       "shape: expected an array of non-negative integers, got string", "w"},
      {"OffsetsNotArray", make_file("{\"w\":" + entry("F32", "[2]", "{\"b\":0}") + "}", eight),
       "data_offsets: expected two non-negative integers [begin, end], got object", "w"},
      {"UnknownKey",
       make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", eight),
       "has unknown key 'extra': expected only dtype, shape and data_offsets", "w"},
      {"DuplicateTensor",
       make_file("{\"w\":" + entry("F32", "[2]", "[0,8]") + ",\"w\":" + entry("F32", "[2]", "[8,16]") + "}",
                 eight + eight),
       "duplicate tensor name 'w'", "w"},
      {"DuplicateKeyInEntry",
       make_file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
       "entry 'w' has duplicate key 'dtype'", "w"},
      {"UnsupportedDtypeF64", make_file("{\"w\":" + entry("F64", "[1]", "[0,8]") + "}", eight),
       "unsupported dtype 'F64': supported are F32, F16, BF16, I32, I64", "w"},
      {"UnsupportedDtypeF8", make_file("{\"w\":" + entry("F8_E4M3", "[8]", "[0,8]") + "}", eight),
       "unsupported dtype 'F8_E4M3'", "w"},
      {"UnknownDtype", make_file("{\"w\":" + entry("Q7", "[8]", "[0,8]") + "}", eight),
       "unknown dtype 'Q7': supported are F32", "w"},
      {"NegativeDim", make_file("{\"w\":" + entry("F32", "[1,-2]", "[0,8]") + "}", eight),
       "shape[1]: expected a non-negative integer, got number -2", "w"},
      {"FractionalDim", make_file("{\"w\":" + entry("F32", "[2.5]", "[0,8]") + "}", eight),
       "shape[0]: expected a non-negative integer, got number 2.5", "w"},
      {"FloatDim", make_file("{\"w\":" + entry("F32", "[2.0]", "[0,8]") + "}", eight),
       "shape[0]: expected a non-negative integer", "w"},
      {"StringDim", make_file("{\"w\":" + entry("F32", "[\"2\"]", "[0,8]") + "}", eight),
       "shape[0]: expected a non-negative integer, got string", "w"},
      {"DimAboveInt64", make_file("{\"w\":" + entry("F32", "[9223372036854775808]", "[0,8]") + "}", eight),
       "shape[0]: expected at most 9223372036854775807", "w"},
      {"DimAboveUint64", make_file("{\"w\":" + entry("F32", "[18446744073709551616]", "[0,8]") + "}", eight),
       "shape[0]: expected a non-negative integer", "w"},
      {"ElementCountOverflow",
       make_file("{\"w\":" + entry("U8", "[4294967296,4294967296]", "[0,8]") + "}", eight),
       "element count overflows", "w"},
      {"ElementCountOverflowBeforeZero",
       make_file("{\"w\":" + entry("U8", "[4294967296,4294967296,0]", "[0,0]") + "}", ""),
       "element count overflows", "w"},
      {"ByteCountOverflow",
       make_file("{\"w\":" + entry("F32", "[4611686018427387904]", "[0,8]") + "}", eight),
       "byte count overflows", "w"},
      {"OffsetsOneEntry", make_file("{\"w\":" + entry("F32", "[2]", "[8]") + "}", eight),
       "data_offsets: expected two non-negative integers [begin, end], got array [8]", "w"},
      {"OffsetsThreeEntries", make_file("{\"w\":" + entry("F32", "[2]", "[0,8,8]") + "}", eight),
       "data_offsets: expected two non-negative integers", "w"},
      {"OffsetsNegative", make_file("{\"w\":" + entry("F32", "[2]", "[-8,0]") + "}", eight),
       "data_offsets: expected two non-negative integers", "w"},
      {"OffsetsFractional", make_file("{\"w\":" + entry("F32", "[2]", "[0,8.5]") + "}", eight),
       "data_offsets: expected two non-negative integers", "w"},
      {"OffsetsAboveUint64",
       make_file("{\"w\":" + entry("F32", "[2]", "[0,18446744073709551616]") + "}", eight),
       "data_offsets: expected two non-negative integers", "w"},
      {"OffsetsInverted", make_file("{\"w\":" + entry("F32", "[0]", "[8,0]") + "}", eight),
       "data_offsets [8, 0] are inverted: expected begin <= end", "w"},
      {"OffsetsPastData", make_file("{\"w\":" + entry("F32", "[4]", "[0,16]") + "}", eight),
       "data_offsets [0, 16] end beyond the data region: expected end <= 8", "w"},
      {"OffsetsHuge",
       make_file("{\"w\":" + entry("F32", "[2]", "[18446744073709551608,18446744073709551615]") + "}", eight),
       "end beyond the data region", "w"},
      {"SizeMismatch", make_file("{\"w\":" + entry("F32", "[4]", "[0,8]") + "}", eight),
       "data_offsets [0, 8] span 8 bytes: expected 16 for shape [4] of F32", "w"},
      {"SizeMismatchDtype", make_file("{\"w\":" + entry("BF16", "[2]", "[0,8]") + "}", eight),
       "span 8 bytes: expected 4 for shape [2] of BF16", "w"},
      {"Overlap",
       make_file("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("F32", "[2]", "[4,12]") + "}",
                 eight + eight),
       "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]", "b"},
      {"SameRange",
       make_file("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("I32", "[2]", "[0,8]") + "}",
                 eight),
       "overlap tensor 'a' [0, 8]", "b"},
      {"EmptyTensorInsideAnother",
       make_file("{\"a\":" + entry("F32", "[2]", "[0,8]") + ",\"b\":" + entry("F32", "[0]", "[4,4]") + "}",
                 eight),
       "tensor 'b' data_offsets [4, 4] overlap tensor 'a'", "b"},
      {"Gap",
       make_file("{\"a\":" + entry("F32", "[1]", "[0,4]") + ",\"b\":" + entry("F32", "[1]", "[8,12]") + "}",
                 eight + "1234"),
       "data region bytes [4, 8) before tensor 'b' belong to no tensor", "b"},
      {"GapAtStart", make_file("{\"a\":" + entry("F32", "[1]", "[4,8]") + "}", eight),
       "data region bytes [0, 4) before tensor 'a' belong to no tensor", "a"},
      {"TrailingBytes", make_file(w4, eight + "xyz"),
       "data region bytes [8, 11) after the last tensor belong to no tensor: expected no trailing bytes", ""},
      {"TrailingBytesNoTensors", make_file("{}", "x"), "data region bytes [0, 1) after the last tensor", ""},
      {"MetadataNotObject", make_file("{\"__metadata__\":[\"a\"]}", ""),
       "__metadata__: expected an object of string values, got array", ""},
      {"MetadataValueNotString", make_file("{\"__metadata__\":{\"k\":1}}", ""),
       "__metadata__ key 'k': expected a string value, got number 1", ""},
      {"MetadataNestedObject", make_file("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", ""),
       "__metadata__ key 'k': expected a string value, got object", ""},
      {"MetadataDuplicateKey", make_file("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", ""),
       "entry '__metadata__' has duplicate key 'k'", ""},
  };
  return cases;
}

// Test names are enough in failure output (the default would hex-dump the struct).
void PrintTo(const MalformedCase& test, std::ostream* stream) {
  *stream << test.name;
}

class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, OpenThrowsIoErrorNamingTheRule) {
  const MalformedCase& test = GetParam();
  TempDir dir;
  const fs::path path = dir.path() / "bad.safetensors";
  write_bytes(path, test.bytes);
  try {
    (void)SafetensorsFile::open(path);
    FAIL() << "no exception; expected IoError containing \"" << test.expected << "\"";
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(test.expected), std::string::npos) << message;
    EXPECT_EQ(message.rfind("[safetensors] " + path.string(), 0), 0u) << message;  // names the file first
    if (!test.tensor.empty()) {
      EXPECT_NE(message.find("'" + test.tensor + "'"), std::string::npos) << message;
    }
  }
  // from_buffer applies the same rules, naming its label.
  try {
    (void)from_string(test.bytes, "label.st");
    FAIL() << "from_buffer accepted it";
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(test.expected), std::string::npos) << message;
    EXPECT_EQ(message.rfind("[safetensors] label.st", 0), 0u) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedTest, ::testing::ValuesIn(malformed_corpus()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST(SafetensorsOpen, MissingFileAndDirectory) {
  TempDir dir;
  EXPECT_THROW(
      {
        try {
          (void)SafetensorsFile::open(dir.path() / "absent.safetensors");
        } catch (const IoError& error) {
          EXPECT_NE(std::string(error.what()).find("absent.safetensors: cannot open: No such file"),
                    std::string::npos)
              << error.what();
          throw;
        }
      },
      IoError);
  EXPECT_THROW(
      {
        try {
          (void)SafetensorsFile::open(dir.path());
        } catch (const IoError& error) {
          EXPECT_NE(std::string(error.what()).find("expected a regular file, got a directory"),
                    std::string::npos)
              << error.what();
          throw;
        }
      },
      IoError);
}

TEST(SafetensorsOpen, HostileNamesAreEscapedInMessages) {
  const std::string bytes =
      make_file("{\"a\\nb\\u001b[31m\":" + entry("F64", "[1]", "[0,8]") + "}", "12345678");
  try {
    (void)from_string(bytes);
    FAIL();
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("tensor 'a\\x0ab\\x1b[31m'"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
}

// ---- valid edge cases -------------------------------------------------------------------------

TEST(SafetensorsValid, EmptyHeaderAndPadding) {
  const SafetensorsFile empty = from_string(make_file("{}", ""));
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.names().empty());
  EXPECT_TRUE(empty.metadata().empty());
  const SafetensorsFile padded =
      from_string(make_file("{\"w\":" + entry("F32", "[2]", "[0,8]") + "}   \t\n ", std::string(8, '\0')));
  EXPECT_EQ(padded.names(), std::vector<std::string>{"w"});
}

TEST(SafetensorsValid, EmptyTensors) {
  const std::string json = "{\"a\":" + entry("F32", "[0,4]", "[0,0]") +
                           ",\"b\":" + entry("F32", "[1]", "[0,4]") +
                           ",\"c\":" + entry("I64", "[3,0]", "[4,4]") + "}";
  const SafetensorsFile file = from_string(make_file(json, "abcd"));
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b", "c"}));
  const TensorView view = file.view("a");
  EXPECT_EQ(view.numel(), 0);
  EXPECT_EQ(view.rank(), 2);
  const Tensor loaded = file.load("c");
  EXPECT_EQ(loaded.numel(), 0);
  EXPECT_EQ(loaded.dtype(), DType::int64);
  EXPECT_EQ(file.load_as("a", DType::bf16).numel(), 0);
}

TEST(SafetensorsValid, ScalarsAndHighRankAreInfoOnly) {
  const std::string json =
      "{\"s\":" + entry("F32", "[]", "[0,4]") + ",\"r5\":" + entry("U8", "[1,1,1,2,2]", "[4,8]") + "}";
  const SafetensorsFile file = from_string(make_file(json, "abcdefgh"));
  EXPECT_TRUE(file.info("s").shape.empty());
  EXPECT_EQ(file.info("s").numel(), 1);
  EXPECT_EQ(file.raw_bytes("s").size(), 4u);
  EXPECT_EQ(file.info("r5").shape.size(), 5u);
  for (const char* name : {"s", "r5"}) {
    for (const auto& call :
         std::vector<std::function<void()>>{[&] { (void)file.view(name); }, [&] { (void)file.load(name); },
                                            [&] { (void)file.load_as(name, DType::fp32); }}) {
      try {
        call();
        FAIL() << name;
      } catch (const Unsupported& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(std::string("tensor '") + name + "'"), std::string::npos) << message;
        EXPECT_NE(message.find("expected 1 to 4 dimensions"), std::string::npos) << message;
      } catch (const InvalidArgument&) {
        // load_as of the U8 rank-5 tensor to fp32 is refused for its dtype first: also fine.
        EXPECT_STREQ(name, "r5");
      }
    }
  }
}

TEST(SafetensorsValid, MisalignedDataNeedsLoad) {
  // Header of 13 bytes: the data region starts at file offset 21, so an F32 tensor there is misaligned.
  std::string json = "{\"w\":" + entry("F32", "[2]", "[0,8]") + "}";
  const float values[2] = {1.5f, -2.25f};
  std::string data(8, '\0');
  std::memcpy(data.data(), values, 8);
  while ((8 + json.size()) % 4 == 0) json += ' ';
  const SafetensorsFile file = from_string(make_file(json, data));
  try {
    (void)file.view("w");
    FAIL();
  } catch (const Unsupported& error) {
    EXPECT_NE(std::string(error.what()).find("use load()"), std::string::npos) << error.what();
  }
  const Tensor loaded = file.load("w");
  EXPECT_EQ(loaded.data_as<float>()[1], -2.25f);
  const Tensor half = file.load_as("w", DType::fp16);
  EXPECT_EQ(fp16_to_float(half.data_as<std::uint16_t>()[0]), 1.5f);
}

TEST(SafetensorsValid, FromBufferKeepsItsOwnCopy) {
  std::string bytes = make_file("{\"w\":" + entry("U8", "[4]", "[0,4]") + "}", "abcd");
  const SafetensorsFile file = from_string(bytes);
  bytes.assign(bytes.size(), 'z');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_EQ(file.view("w").data_as<char>()[3], 'd');
  EXPECT_EQ(file.path(), fs::path("memory.safetensors"));
}

TEST(SafetensorsValid, AbsentTensorAndBadConversions) {
  const std::string json =
      "{\"i\":" + entry("I64", "[1]", "[0,8]") + ",\"f\":" + entry("F32", "[2]", "[8,16]") + "}";
  const SafetensorsFile file = from_string(make_file(json, std::string(16, '\0')), "conv.st");
  EXPECT_FALSE(file.contains("nope"));
  try {
    (void)file.info("nope");
    FAIL();
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("[safetensors] conv.st: tensor 'nope' is not in the file"),
              std::string::npos)
        << error.what();
  }
  EXPECT_THROW((void)file.view("nope"), IoError);
  EXPECT_THROW((void)file.load_as("i", DType::fp32), InvalidArgument);
  EXPECT_THROW((void)file.load_as("i", DType::int32), InvalidArgument);
  EXPECT_THROW((void)file.load_as("f", DType::int32), InvalidArgument);
  EXPECT_THROW((void)file.load_as("f", DType::uint8), InvalidArgument);
  EXPECT_EQ(file.load_as("i", DType::int64).dtype(), DType::int64);
}

// ---- writer -> reader round trips -------------------------------------------------------------

template <class T>
Tensor make_tensor(DType dtype, std::initializer_list<std::int64_t> shape, const std::vector<T>& values) {
  Tensor tensor = Tensor::empty(dtype, shape);
  EXPECT_EQ(static_cast<std::size_t>(tensor.numel()), values.size());
  std::memcpy(tensor.data(), values.data(), values.size() * sizeof(T));
  return tensor;
}

// Values exact in bf16, fp16 and fp32.
const std::vector<float> kExact = {0.0f, 1.0f, -1.5f, 0.25f, 3.0f, -0.125f, 96.0f, 2.5f};

std::vector<std::uint16_t> encode(const std::vector<float>& values, std::uint16_t (*convert)(float)) {
  std::vector<std::uint16_t> bits;
  for (float value : values) bits.push_back(convert(value));
  return bits;
}

void expect_same_bytes(const TensorView& a, const TensorView& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(std::vector<std::int64_t>(a.shape().begin(), a.shape().end()),
            std::vector<std::int64_t>(b.shape().begin(), b.shape().end()));
  ASSERT_EQ(a.nbytes(), b.nbytes());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0);
}

SafetensorsWriter every_dtype_writer(std::map<std::string, Tensor>& expected) {
  expected["f32"] = make_tensor<float>(DType::fp32, {2, 4}, kExact);
  expected["bf16"] = make_tensor<std::uint16_t>(DType::bf16, {4, 2}, encode(kExact, float_to_bf16));
  expected["f16"] = make_tensor<std::uint16_t>(DType::fp16, {1, 2, 2, 2}, encode(kExact, float_to_fp16));
  expected["i32"] = make_tensor<std::int32_t>(DType::int32, {3}, {-7, 0, 2147483647});
  expected["i64"] = make_tensor<std::int64_t>(DType::int64, {2, 1}, {-1, std::int64_t{1} << 40});
  expected["u8"] = make_tensor<std::uint8_t>(DType::uint8, {5}, {0, 1, 127, 128, 255});
  expected["empty"] = Tensor::empty(DType::fp32, {0, 3});
  SafetensorsWriter writer;
  // Odd sizes first, so alignment depends on the writer's ordering, not on insertion order.
  for (const char* name : {"u8", "bf16", "i32", "f16", "empty", "i64", "f32"})
    writer.add(name, expected[name]);
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "caf\xc3\xa9");
  return writer;
}

TEST(SafetensorsRoundTrip, EveryDtype) {
  TempDir dir;
  std::map<std::string, Tensor> expected;
  const SafetensorsWriter writer = every_dtype_writer(expected);
  const fs::path path = dir.path() / "all.safetensors";
  writer.write(path);
  const std::string bytes = read_bytes(path);
  const std::vector<std::byte> serialized = writer.serialize();
  ASSERT_EQ(as_bytes(bytes).size(), serialized.size());
  EXPECT_TRUE(std::equal(serialized.begin(), serialized.end(), as_bytes(bytes).begin()));

  // The header is padded to a multiple of 8 bytes with spaces.
  std::uint64_t header_size = 0;
  for (int index = 7; index >= 0; --index)
    header_size = (header_size << 8) | static_cast<unsigned char>(bytes[index]);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes[8 + header_size - 1] == ' ' || bytes[8 + header_size - 1] == '}', true);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.data_offset(), 8 + header_size);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"bf16", "empty", "f16", "f32", "i32", "i64", "u8"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "caf\xc3\xa9");
  for (const auto& [name, tensor] : expected) {
    SCOPED_TRACE(name);
    EXPECT_EQ(file.info(name).dtype, tensor.dtype());
    expect_same_bytes(file.view(name), tensor);  // view() works: every tensor is aligned
    expect_same_bytes(file.load(name), tensor);
    expect_same_bytes(file.load_as(name, tensor.dtype()), tensor);
  }
  EXPECT_EQ(file.info("i64").dtype, DType::int64);
  EXPECT_EQ(file.info("u8").shape, (std::vector<std::int64_t>{5}));

  // Converted loads among the floating dtypes.
  for (const char* source : {"f32", "bf16", "f16"}) {
    for (DType target : {DType::fp32, DType::bf16, DType::fp16}) {
      SCOPED_TRACE(std::string(source) + " -> " + std::string(to_string(target)));
      const Tensor converted = file.load_as(source, target);
      ASSERT_EQ(converted.dtype(), target);
      EXPECT_EQ(converted.numel(), 8);
      EXPECT_EQ(std::vector<std::int64_t>(converted.shape().begin(), converted.shape().end()),
                file.info(source).shape);
      const Tensor as_float = converted.to_dtype(DType::fp32);
      for (std::size_t index = 0; index < kExact.size(); ++index) {
        EXPECT_EQ(as_float.data_as<float>()[index], kExact[index]);
      }
    }
  }
  // Nothing but the file was left behind (the temporary was renamed).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(SafetensorsRoundTrip, ConversionRounds) {
  SafetensorsWriter writer;
  const std::vector<float> values = {1.0f + 1.0f / 256.0f, 70000.0f, 1e-8f, -3.1415926f};
  writer.add("x", make_tensor<float>(DType::fp32, {4}, values));
  const std::vector<std::byte> bytes = writer.serialize();
  const SafetensorsFile file = SafetensorsFile::from_buffer(bytes, "rounding");
  const Tensor bf16 = file.load_as("x", DType::bf16);
  const Tensor fp16 = file.load_as("x", DType::fp16);
  for (std::size_t index = 0; index < values.size(); ++index) {
    EXPECT_EQ(bf16.data_as<std::uint16_t>()[index], float_to_bf16(values[index]));
    EXPECT_EQ(fp16.data_as<std::uint16_t>()[index], float_to_fp16(values[index]));
  }
}

TEST(SafetensorsWriter, RejectsBadInput) {
  SafetensorsWriter writer;
  const Tensor tensor = Tensor::zeros(DType::fp32, {2});
  writer.add("a", tensor);
  try {
    writer.add("a", tensor);
    FAIL();
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("tensor 'a' was already added"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(writer.add("", tensor), InvalidArgument);
  EXPECT_THROW(writer.add("__metadata__", tensor), InvalidArgument);
  EXPECT_THROW(writer.add("bad\xff", tensor), InvalidArgument);
  EXPECT_THROW(writer.add("undefined", TensorView()), InvalidArgument);
  EXPECT_THROW(writer.add("cuda", TensorView(tensor.data(), DType::fp32, {2}, Device::cuda(0))),
               InvalidArgument);
  EXPECT_THROW(writer.set_metadata("k", "\xc0\xaf"), InvalidArgument);
  EXPECT_EQ(writer.size(), 1u);
  // A header past the format's 100 MiB cap would make a file that readers (this one too) refuse.
  writer.set_metadata("long", std::string(kSafetensorsMaxHeaderBytes, 'x'));
  try {
    (void)writer.serialize();
    ADD_FAILURE() << "a header over the cap was written";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("the format allows at most"), std::string::npos) << error.what();
  }
}

TEST(SafetensorsWriter, CopiesOnAddAndWritesEmptyFiles) {
  Tensor tensor = make_tensor<float>(DType::fp32, {2}, {1.0f, 2.0f});
  SafetensorsWriter writer;
  writer.add("w", tensor);
  tensor.data_as<float>()[0] = 99.0f;  // after add(): must not show in the file
  const std::vector<std::byte> bytes = writer.serialize();
  EXPECT_EQ(SafetensorsFile::from_buffer(bytes, "copy").load("w").data_as<float>()[0], 1.0f);

  const SafetensorsWriter empty;
  const std::vector<std::byte> empty_bytes = empty.serialize();
  EXPECT_EQ(empty_bytes.size(), 16u);  // length + "{}" padded to 8
  EXPECT_EQ(SafetensorsFile::from_buffer(empty_bytes, "empty").size(), 0u);
}

TEST(SafetensorsWriter, WriteFailuresAreIoErrors) {
  TempDir dir;
  SafetensorsWriter writer;
  writer.add("w", Tensor::zeros(DType::fp32, {2}));
  EXPECT_THROW(writer.write(dir.path() / "no" / "such" / "dir.safetensors"), IoError);
  // Overwriting an existing file replaces it.
  const fs::path path = dir.path() / "out.safetensors";
  write_bytes(path, "old contents");
  writer.write(path);
  EXPECT_EQ(SafetensorsFile::open(path).names(), std::vector<std::string>{"w"});
}

// ---- golden Hugging Face files ----------------------------------------------------------------

fs::path golden_dir() {
#ifdef FUSEDMOE_GOLDEN_DIR
  return fs::path(FUSEDMOE_GOLDEN_DIR);
#else
  return {};
#endif
}

#define SKIP_WITHOUT_GOLDEN(file)                                                                         \
  do {                                                                                                    \
    if (golden_dir().empty()) GTEST_SKIP() << "FUSEDMOE_GOLDEN_DIR is not defined by the build";          \
    if (!fs::exists(golden_dir() / (file)))                                                               \
      GTEST_SKIP() << "golden data missing: " << (golden_dir() / (file)) << " (set FUSEDMOE_GOLDEN_DIR)"; \
  } while (0)

TEST(SafetensorsGolden, Qwen3MoeBlockBf16) {
  SKIP_WITHOUT_GOLDEN("qwen3moe_block_bf16.safetensors");
  const SafetensorsFile file = SafetensorsFile::open(golden_dir() / "qwen3moe_block_bf16.safetensors");
  EXPECT_EQ(file.metadata().at("case"), "qwen3moe_block");
  EXPECT_EQ(file.metadata().at("dtype"), "bf16");
  for (const char* name : {"experts.gate_up_proj", "experts.down_proj", "gate.weight", "io.input",
                           "io.output", "io.router_logits", "io.gate_out0", "io.gate_out1", "io.gate_out2"}) {
    EXPECT_TRUE(file.contains(name)) << name;
  }
  const SafetensorsTensorInfo& gate_up = file.info("experts.gate_up_proj");
  EXPECT_EQ(gate_up.dtype, DType::bf16);
  EXPECT_EQ(gate_up.shape, (std::vector<std::int64_t>{16, 256, 256}));
  EXPECT_EQ(file.info("experts.down_proj").shape, (std::vector<std::int64_t>{16, 256, 128}));
  EXPECT_EQ(file.info("gate.weight").shape, (std::vector<std::int64_t>{16, 256}));

  const TensorView view = file.view("experts.gate_up_proj");
  EXPECT_EQ(view.rank(), 3);
  EXPECT_EQ(view.nbytes(), gate_up.nbytes());

  // Top-k ids are int64 expert indices.
  const Tensor ids = file.load("io.gate_out2");
  ASSERT_EQ(ids.dtype(), DType::int64);
  EXPECT_EQ(ids.size(1), 4);
  for (std::int64_t index = 0; index < ids.numel(); ++index) {
    EXPECT_GE(ids.data_as<std::int64_t>()[index], 0);
    EXPECT_LT(ids.data_as<std::int64_t>()[index], 16);
  }

  // The fp32 run's input is the bf16 input upcast exactly.
  if (fs::exists(golden_dir() / "qwen3moe_block_fp32.safetensors")) {
    const SafetensorsFile fp32 = SafetensorsFile::open(golden_dir() / "qwen3moe_block_fp32.safetensors");
    const Tensor upcast = file.load_as("io.input", DType::fp32);
    expect_same_bytes(upcast, fp32.view("io.input"));
  }
}

TEST(SafetensorsGolden, EveryGoldenFileOpens) {
  if (golden_dir().empty() || !fs::is_directory(golden_dir())) GTEST_SKIP() << "golden directory missing";
  int opened = 0;
  for (const fs::directory_entry& item : fs::recursive_directory_iterator(golden_dir())) {
    if (item.path().extension() != ".safetensors") continue;
    SCOPED_TRACE(item.path().string());
    const SafetensorsFile file = SafetensorsFile::open(item.path());
    for (const std::string& name : file.names()) {
      const SafetensorsTensorInfo& info = file.info(name);
      if (info.shape.empty() || info.shape.size() > 4) continue;
      EXPECT_EQ(file.view(name).nbytes(), info.nbytes());
    }
    ++opened;
  }
  EXPECT_GE(opened, 1);
}

}  // namespace
}  // namespace fusedmoe
