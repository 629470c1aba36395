#include "engine/chunker.h"

#include <string>

#include "common/status_macros.h"

namespace converge::engine {

absl::StatusOr<FileContent> ChunkFile(ReadableFile* file, uint32_t chunk_bytes) {
  FileContent content;
  Sha256 whole;
  std::string buf;
  while (true) {
    CONVERGE_RETURN_IF_ERROR(file->Read(content.size, chunk_bytes, &buf));
    if (buf.empty()) break;
    whole.Update(buf);
    content.chunks.push_back(ChunkRef{HashOf(buf), static_cast<uint32_t>(buf.size())});
    content.size += buf.size();
    if (buf.size() < chunk_bytes) break;
  }
  content.sha256 = whole.Finish();
  return content;
}

}  // namespace converge::engine
