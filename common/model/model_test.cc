#include "common/model/model.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace converge {
namespace {

FileVersion SampleFile() {
  FileVersion v;
  v.file_id = std::string(kFileIdBytes, 'i');
  v.path = "docs/readme.txt";
  v.mode = 0640;
  v.mtime_ns = 1700000000123456789;
  v.size = 5;
  v.chunks = {{HashOf("hel"), 3}, {HashOf("lo"), 2}};
  v.content_sha256 = ContentDigest(v.chunks);
  v.seq = 7;
  v.origin_device = "dev1";
  v.base_seq = 3;
  return v;
}

TEST(ModelTest, FileVersionEncodingRoundTrips) {
  FileVersion v = SampleFile();
  absl::StatusOr<FileVersion> back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->path, v.path);
  EXPECT_EQ(back->chunks, v.chunks);
  EXPECT_EQ(back->content_sha256, v.content_sha256);
  EXPECT_EQ(back->mtime_ns, v.mtime_ns);
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->base_seq, 3u);
}

TEST(ModelTest, CorruptRecordsAreDataLoss) {
  std::string bytes = EncodeFileVersion(SampleFile());
  EXPECT_EQ(DecodeFileVersion(bytes.substr(0, bytes.size() - 1)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeCommit("garbage").status().code(), absl::StatusCode::kDataLoss);
}

TEST(ModelTest, ACommitClaimingHugeFileCountsIsDataLossNotAnAllocation) {
  // Found by //tests/fuzz:wire_fuzz: the count was trusted and resized to.
  Commit c;
  c.namespace_id = "ns";
  c.seq = 1;
  std::string bytes = EncodeCommit(c);
  bytes.back() = '\xff';  // the file count's varint now goes on...
  for (int i = 0; i < 4; ++i) bytes.push_back('\xff');
  bytes.push_back('\x3f');  // ...to about 2^41
  EXPECT_TRUE(absl::IsDataLoss(DecodeCommit(bytes).status()));
}

TEST(ModelTest, CommitRoundTripsThroughEncoding) {
  Commit c;
  c.namespace_id = "ns";
  c.seq = 9;
  c.origin_device = "dev1";
  c.files = {SampleFile()};
  absl::StatusOr<Commit> back = DecodeCommit(EncodeCommit(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->files.size(), 1u);
  EXPECT_EQ(back->files[0].chunks, c.files[0].chunks);
}

TEST(ModelTest, ValidationRejectsBadVersions) {
  FileVersion v = SampleFile();
  v.size = 6;
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  v = SampleFile();
  v.path = "../escape";
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  v = SampleFile();
  v.file_id = "short";
  EXPECT_FALSE(ValidateFileVersion(v).ok());
  v = SampleFile();
  v.kind = FileKind::kDirectory;
  EXPECT_FALSE(ValidateFileVersion(v).ok());  // a directory has no chunks
  v = SampleFile();
  v.content_sha256 = HashOf("hello");  // a content hash the chunk list does not name
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  v = SampleFile();
  std::swap(v.chunks[0], v.chunks[1]);  // same chunks, other order, same size
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  for (uint32_t mode : {04755u, 02755u, 01777u, 0100644u}) {  // setuid, setgid, sticky, a type
    v = SampleFile();
    v.mode = mode;
    EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument) << mode;
  }
  v = SampleFile();
  v.mode = 0777;
  EXPECT_TRUE(ValidateFileVersion(v).ok());
  EXPECT_FALSE(ValidateChanges({SampleFile(), SampleFile()}).ok());  // duplicate path
  EXPECT_FALSE(ValidateChanges({}).ok());
}

TEST(ModelTest, HolesAreBoundedAndNamedApartFromData) {
  FileVersion v = SampleFile();
  v.chunks = {{HashOf("hel"), 3}, ChunkRef::Hole(kMaxHoleBytes), {HashOf("lo"), 2}};
  v.size = 5 + uint64_t{kMaxHoleBytes};
  v.content_sha256 = ContentDigest(v.chunks);
  EXPECT_TRUE(ValidateFileVersion(v).ok()) << ValidateFileVersion(v);
  absl::StatusOr<FileVersion> back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->chunks[1].hole());
  EXPECT_FALSE(back->chunks[0].hole());

  v.chunks[1] = ChunkRef::Hole(kMaxHoleBytes + 1);  // past the longest hole one entry may stand for
  v.size += 1;
  v.content_sha256 = ContentDigest(v.chunks);
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  v.chunks[1] = ChunkRef::Hole(0);
  v.size = 5;
  v.content_sha256 = ContentDigest(v.chunks);
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);

  // A file that is one hole is not named by the zero digest, and differs from zeros as data.
  const std::vector<ChunkRef> hole = {ChunkRef::Hole(4096)};
  EXPECT_NE(ContentDigest(hole), Digest{});
  EXPECT_NE(ContentDigest(hole), ContentDigest({{HashOf(std::string(4096, '\0')), 4096}}));
}

TEST(ModelTest, ASealedRecordRoundTripsWithOrWithoutAttributesAndIsBounded) {
  FileVersion v = SampleFile();
  v.sealed_record = std::string("sealed\0bytes", 12);
  v.path = "docsabc/readme" + std::string(400, 'x');  // sealed names: base32, up to 440 characters
  EXPECT_TRUE(ValidateFileVersion(v).ok()) << ValidateFileVersion(v);
  FileVersion plain_named = v;
  plain_named.path = "docs/readme.txt";  // a sealed version's path is sealed too
  EXPECT_EQ(ValidateFileVersion(plain_named).code(), absl::StatusCode::kInvalidArgument);
  plain_named.sealed_record.clear();
  EXPECT_TRUE(ValidateFileVersion(plain_named).ok());
  plain_named.path = v.path;  // and a plain one's plain: no 400-character name
  EXPECT_EQ(ValidateFileVersion(plain_named).code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<FileVersion> back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sealed_record, v.sealed_record);
  v.xattrs = {{"user.a", "1"}};
  back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->sealed_record, v.sealed_record);
  EXPECT_EQ(back->xattrs, v.xattrs);
  EXPECT_EQ(CommitBytes(v), CommitBytes(*back));
  EXPECT_GE(CommitBytes(v), v.sealed_record.size());
  // Records made before sealed ones decode with none; a truncated one is corrupt.
  EXPECT_TRUE(DecodeFileVersion(EncodeFileVersion(SampleFile()))->sealed_record.empty());
  const std::string bytes = EncodeFileVersion(v);
  EXPECT_EQ(DecodeFileVersion(bytes.substr(0, bytes.size() - 1)).status().code(), absl::StatusCode::kDataLoss);
  // A sealed conflict copy names its original (encrypted); only a sealed file may.
  v.conflict_original = "abc/def";
  back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->conflict_original, "abc/def");
  EXPECT_TRUE(ValidateFileVersion(v).ok()) << ValidateFileVersion(v);
  FileVersion unsealed = SampleFile();
  unsealed.conflict_original = "abc";
  EXPECT_EQ(ValidateFileVersion(unsealed).code(), absl::StatusCode::kInvalidArgument);
  v.conflict_original = "../up";
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
  v.conflict_original.clear();
  v.sealed_record.assign(kMaxSealedRecordBytes + 1, 's');
  EXPECT_EQ(ValidateFileVersion(v).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelTest, ExtendedAttributesRoundTripAndAreBounded) {
  FileVersion v = SampleFile();
  const std::string plain = EncodeFileVersion(v);
  v.xattrs = {{"user.a", "1"}, {"user.xdg.origin.url", std::string("https://x\0y", 11)}};
  EXPECT_TRUE(ValidateFileVersion(v).ok()) << ValidateFileVersion(v);
  absl::StatusOr<FileVersion> back = DecodeFileVersion(EncodeFileVersion(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->xattrs, v.xattrs);
  EXPECT_GT(CommitBytes(v), CommitBytes(SampleFile()));
  // A version without them keeps the first format's bytes, and decodes with none.
  back = DecodeFileVersion(plain);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->xattrs.empty());

  auto invalid = [&](std::vector<Xattr> xattrs) {
    FileVersion bad = SampleFile();
    bad.xattrs = std::move(xattrs);
    return ValidateFileVersion(bad).code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid({{"security.selinux", "x"}}));  // not the user namespace
  EXPECT_TRUE(invalid({{"trusted.x", "x"}}));
  EXPECT_TRUE(invalid({{"user.", "x"}}));
  EXPECT_TRUE(invalid({{std::string("user.a\0b", 8), "x"}}));
  EXPECT_TRUE(invalid({{"user." + std::string(kMaxXattrNameBytes, 'n'), "x"}}));
  EXPECT_TRUE(invalid({{"user.b", "1"}, {"user.a", "2"}}));  // unsorted
  EXPECT_TRUE(invalid({{"user.a", "1"}, {"user.a", "2"}}));  // twice
  EXPECT_TRUE(invalid({{"user.a", std::string(kMaxXattrValueBytes + 1, 'v')}}));
  std::vector<Xattr> many;
  for (int i = 0; i < 5; ++i) many.push_back({absl::StrCat("user.", i), std::string(kMaxXattrValueBytes, 'v')});
  EXPECT_TRUE(invalid(many));  // over kMaxXattrBytes in all
  FileVersion dir = SampleFile();
  dir.kind = FileKind::kDirectory;
  dir.chunks.clear();
  dir.size = 0;
  dir.xattrs = {{"user.a", "1"}};
  EXPECT_EQ(ValidateFileVersion(dir).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge
