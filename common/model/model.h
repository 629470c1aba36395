// Converge's data model as domain types (see DESIGN.md, "The data model"). Protobuf types stay
// at the edges: wire.h converts, and RocksDB keeps these types in their own encoding
// (EncodeFileVersion / EncodeCommit below), never protobuf.
#ifndef CONVERGE_COMMON_MODEL_MODEL_H_
#define CONVERGE_COMMON_MODEL_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"

namespace converge {

// The largest chunk any component accepts.
inline constexpr uint32_t kMaxChunkBytes = 4 << 20;
// The number of file versions one commit may carry.
inline constexpr size_t kMaxFilesPerCommit = 10000;
// The bytes one commit may take (CommitBytes of its versions): what the store holds while it
// checks it and what one Pull message carries back, well under the 16 MiB message limit.
inline constexpr size_t kMaxCommitBytes = 4 << 20;
// The chunks one commit may carry itself (CommitRequest.chunks): how many, and their bytes in
// all. A device sends raw chunks up to half of that, so sealed ones (encrypted namespaces) fit.
inline constexpr size_t kMaxCommitChunks = 1024;
inline constexpr size_t kMaxCommitChunkBytes = 2 << 20;
// What a device reports of the remote versions it could not apply: the first few, each bounded.
inline constexpr size_t kMaxBlockedReported = 20;
inline constexpr size_t kMaxBlockedReportBytes = 512;
inline constexpr size_t kFileIdBytes = 16;

enum class FileKind : uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };

// The longest symlink target accepted (Linux's PATH_MAX less the NUL).
inline constexpr size_t kMaxSymlinkTarget = 4095;

// The longest hole one chunk entry stands for (a longer hole takes several entries).
inline constexpr uint32_t kMaxHoleBytes = 1u << 30;

// A chunk of a file's content, or a hole: a range of a sparse file that holds no data (it reads
// as zeros, is never read, hashed, stored or sent, and is recreated as a hole). A hole's digest
// is all zeros, which no SHA-256 of data is.
struct ChunkRef {
  Digest sha256{};
  uint32_t length = 0;
  bool operator==(const ChunkRef& o) const { return sha256 == o.sha256 && length == o.length; }
  bool hole() const { return sha256 == Digest{}; }
  static ChunkRef Hole(uint32_t length) { return ChunkRef{Digest{}, length}; }
};

// Extended attributes a version carries (when its namespace syncs them): only the "user."
// namespace for now; the name keeps its namespace prefix, so attributes of other systems
// (macOS, Windows) can join later under their own prefixes.
inline constexpr absl::string_view kUserXattrPrefix = "user.";
inline constexpr size_t kMaxXattrNameBytes = 255;    // Linux's XATTR_NAME_MAX
inline constexpr size_t kMaxXattrValueBytes = 16 << 10;
inline constexpr size_t kMaxXattrBytes = 64 << 10;   // names and values of one version

struct Xattr {
  std::string name;  // "user.xdg.origin.url"
  std::string value;
  bool operator==(const Xattr& o) const { return name == o.name && value == o.value; }
};

struct FileVersion {
  std::string file_id;  // kFileIdBytes bytes, stable across edits of one path
  std::string path;     // validated relative path
  FileKind kind = FileKind::kFile;
  uint32_t mode = 0644;
  int64_t mtime_ns = 0;
  uint64_t size = 0;
  Digest content_sha256{};      // files; for symlinks the SHA-256 of the target
  std::vector<ChunkRef> chunks;  // files only, in order
  bool deleted = false;
  uint64_t seq = 0;  // assigned by the store
  std::string origin_device;
  uint64_t base_seq = 0;  // the seq this change was made on top of; 0 for a new path
  // A symlink's target, as the link holds it (synced as a link, never followed).
  std::string symlink_target;
  // A live file's extended attributes, sorted by name (empty unless its namespace syncs them).
  std::vector<Xattr> xattrs;
  // End-to-end encrypted namespaces: the version as its device made it (real path, size, mtime,
  // mode, kind, chunk list, target, attributes), sealed with the namespace's record key; the
  // fields above are then what the store may know (docs/security.md). At most
  // kMaxSealedRecordBytes; empty otherwise.
  std::string sealed_record;
  // A sealed version that is a conflict copy: the encrypted path of the file it is a copy of (the
  // store cannot read that from the copy's encrypted name). Empty otherwise.
  std::string conflict_original;
};

inline constexpr size_t kMaxSealedRecordBytes = 256 << 10;

// ContentDigest names a file's content from its chunk list, so nobody reads the content twice:
// for an empty or one-chunk file it is the SHA-256 of the content itself (the chunk's digest);
// for more chunks (or a file that is one hole), the SHA-256 of the list (a tag, then each chunk's digest and little-endian
// 32-bit length). Every chunk is verified by its own digest wherever it is read or received.
Digest ContentDigest(const std::vector<ChunkRef>& chunks);

struct Commit {
  std::string namespace_id;
  uint64_t seq = 0;
  std::string origin_device;
  int64_t committed_at_unix_ms = 0;
  std::vector<FileVersion> files;
  // End-to-end encrypted namespaces: the committing device's signature over the commit and the
  // log head it had seen (common/crypto/log_chain.h). Kept by the store as sent; empty elsewhere.
  std::string attestation;
};

// An attestation's size, checked wherever one arrives.
inline constexpr size_t kMaxAttestationBytes = 512;

// ValidateFileVersion checks what a receiver must check before trusting a version from the
// network: a valid path and file_id; for live files, chunk lengths in (0, kMaxChunkBytes] (holes
// (0, kMaxHoleBytes]) that add up to size; no chunks for directories and tombstones. Returns InvalidArgument naming the
// path otherwise. Extended attributes only on live files: "user." names of at most
// kMaxXattrNameBytes without NUL, strictly ascending, values of at most kMaxXattrValueBytes,
// kMaxXattrBytes in all.
absl::Status ValidateFileVersion(const FileVersion& v);

// ValidateXattrs checks a list of extended attributes as ValidateFileVersion does.
absl::Status ValidateXattrs(absl::string_view path, const std::vector<Xattr>& xattrs);

// CommitBytes: what a version counts towards kMaxCommitBytes (about its wire size).
size_t CommitBytes(const FileVersion& v);

// ValidateChange checks a batch of changes as a whole: 1..kMaxFilesPerCommit versions, each
// valid, no path twice, at most kMaxCommitBytes in all.
absl::Status ValidateChanges(const std::vector<FileVersion>& files);

std::string EncodeFileVersion(const FileVersion& v);
// Returns DataLoss if `bytes` is not an encoded FileVersion.
absl::StatusOr<FileVersion> DecodeFileVersion(absl::string_view bytes);

std::string EncodeCommit(const Commit& c);
// Returns DataLoss if `bytes` is not an encoded Commit.
absl::StatusOr<Commit> DecodeCommit(absl::string_view bytes);

}  // namespace converge

#endif  // CONVERGE_COMMON_MODEL_MODEL_H_
