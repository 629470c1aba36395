#include "common/wire/wire.h"

#include "common/model/model.h"
#include "gtest/gtest.h"

namespace converge {
namespace {

// A file of one chunk, with the fields the wire carries set.
FileVersion SampleFile() {
  FileVersion v;
  v.chunks = {{HashOf("wire"), 4}};
  v.size = 4;
  v.content_sha256 = ContentDigest(v.chunks);
  v.file_id = std::string(kFileIdBytes, 'w');
  v.path = "wire/sample.txt";
  v.mtime_ns = 1700000000000000001;
  v.origin_device = "dev2";
  return v;
}

TEST(WireTest, CommitRoundTrips) {
  Commit c;
  c.namespace_id = "ns";
  c.seq = 9;
  c.origin_device = "dev1";
  c.files = {SampleFile()};
  common::v1::Commit proto;
  wire::CommitToProto(c, &proto);
  absl::StatusOr<Commit> from = wire::CommitFromProto(proto);
  ASSERT_TRUE(from.ok()) << from.status();
  EXPECT_EQ(from->files[0].chunks, c.files[0].chunks);
  EXPECT_TRUE(from->files[0].sealed_record.empty());
  c.files[0].sealed_record = "sealed";
  c.files[0].path = "wire/sealedname";  // a sealed version's path is sealed (base32)
  proto.Clear();
  wire::CommitToProto(c, &proto);
  from = wire::CommitFromProto(proto);
  ASSERT_TRUE(from.ok()) << from.status();
  EXPECT_EQ(from->files[0].sealed_record, "sealed");
  proto.mutable_files(0)->set_sealed_record(std::string(kMaxSealedRecordBytes + 1, 's'));
  EXPECT_EQ(wire::CommitFromProto(proto).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WireTest, RejectsBadDigestAndKind) {
  common::v1::FileVersion p;
  wire::FileVersionToProto(SampleFile(), &p);
  p.mutable_chunks(0)->set_sha256("not-32-bytes");
  EXPECT_EQ(wire::FileVersionFromProto(p).status().code(), absl::StatusCode::kInvalidArgument);
  wire::FileVersionToProto(SampleFile(), &p);
  p.clear_chunks();
  wire::FileVersionToProto(SampleFile(), &p);
  p.set_kind(common::v1::FILE_KIND_UNSPECIFIED);
  EXPECT_FALSE(wire::FileVersionFromProto(p).ok());
}

}  // namespace
}  // namespace converge
