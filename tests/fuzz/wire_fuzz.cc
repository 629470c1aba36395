// Fuzz target: messages from the network and records from disk. Bytes parsed as a Commit proto
// and converted to the domain model either fail or yield only valid versions (paths inside the
// folder); bytes decoded as a stored commit or file version either fail or re-encode to a record
// that decodes to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model/model.h"
#include "common/model/path.h"
#include "common/wire/wire.h"
#include "converge/common/v1/types.pb.h"

#define FUZZ_CHECK(cond) \
  if (!(cond)) abort()

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  converge::common::v1::Commit proto;
  if (proto.ParseFromArray(data, static_cast<int>(size))) {
    auto commit = converge::wire::CommitFromProto(proto);
    if (commit.ok()) {
      for (const converge::FileVersion& v : commit->files) {
        FUZZ_CHECK(converge::ValidateRelativePath(v.path).ok());
        FUZZ_CHECK(converge::ValidateFileVersion(v).ok());
      }
    }
  }
  if (auto c = converge::DecodeCommit(bytes); c.ok()) {
    auto again = converge::DecodeCommit(converge::EncodeCommit(*c));
    FUZZ_CHECK(again.ok() && converge::EncodeCommit(*again) == converge::EncodeCommit(*c));
  }
  if (auto v = converge::DecodeFileVersion(bytes); v.ok()) {
    auto again = converge::DecodeFileVersion(converge::EncodeFileVersion(*v));
    FUZZ_CHECK(again.ok() && converge::EncodeFileVersion(*again) == converge::EncodeFileVersion(*v));
  }
  return 0;
}
