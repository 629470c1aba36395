#include "common/model/model.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/coding.h"
#include "common/base/status_macros.h"
#include "common/model/path.h"

namespace converge {
namespace {

// 1: no extended attributes; 2: a list of them at the end. Versions without any are still
// written as 1, so their bytes do not change.
constexpr uint64_t kFileVersionFormat = 1;
constexpr uint64_t kFileVersionFormatXattrs = 2;
constexpr uint64_t kFileVersionFormatSealed = 3;  // xattrs (maybe none), then the sealed record
constexpr uint64_t kCommitFormat = 1;

void PutFileVersion(std::string* out, const FileVersion& v) {
  const uint64_t format = !v.sealed_record.empty() ? kFileVersionFormatSealed
                         : v.xattrs.empty()        ? kFileVersionFormat
                                                   : kFileVersionFormatXattrs;
  PutVarint64(out, format);
  PutLengthPrefixed(out, v.file_id);
  PutLengthPrefixed(out, v.path);
  PutVarint64(out, static_cast<uint64_t>(v.kind));
  PutVarint64(out, v.mode);
  PutVarint64(out, static_cast<uint64_t>(v.mtime_ns));
  PutVarint64(out, v.size);
  PutLengthPrefixed(out, DigestToBytes(v.content_sha256));
  PutVarint64(out, v.chunks.size());
  for (const ChunkRef& c : v.chunks) {
    out->append(reinterpret_cast<const char*>(c.sha256.data()), kDigestSize);
    PutVarint64(out, c.length);
  }
  PutVarint64(out, v.deleted ? 1 : 0);
  PutVarint64(out, v.seq);
  PutLengthPrefixed(out, v.origin_device);
  PutVarint64(out, v.base_seq);
  if (v.kind == FileKind::kSymlink) PutLengthPrefixed(out, v.symlink_target);
  if (format == kFileVersionFormat) return;
  PutVarint64(out, v.xattrs.size());
  for (const Xattr& x : v.xattrs) {
    PutLengthPrefixed(out, x.name);
    PutLengthPrefixed(out, x.value);
  }
  if (format != kFileVersionFormatSealed) return;
  PutLengthPrefixed(out, v.sealed_record);
  PutLengthPrefixed(out, v.conflict_original);
}

size_t bytes_left(const Decoder* d) { return d->remaining(); }

bool GetFileVersion(Decoder* d, FileVersion* v) {
  uint64_t format, kind, mode, mtime, nchunks, deleted;
  absl::string_view digest;
  if (!d->GetVarint64(&format) || format < kFileVersionFormat || format > kFileVersionFormatSealed) return false;
  if (!d->GetLengthPrefixed(&v->file_id) || !d->GetLengthPrefixed(&v->path) ||
      !d->GetVarint64(&kind) || !d->GetVarint64(&mode) || !d->GetVarint64(&mtime) ||
      !d->GetVarint64(&v->size) || !d->GetLengthPrefixed(&digest) ||
      digest.size() != kDigestSize || !d->GetVarint64(&nchunks)) {
    return false;
  }
  if (kind != static_cast<uint64_t>(FileKind::kFile) && kind != static_cast<uint64_t>(FileKind::kDirectory) &&
      kind != static_cast<uint64_t>(FileKind::kSymlink)) {
    return false;
  }
  v->kind = static_cast<FileKind>(kind);
  v->mode = static_cast<uint32_t>(mode);
  v->mtime_ns = static_cast<int64_t>(mtime);
  std::copy(digest.begin(), digest.end(), v->content_sha256.begin());
  if (nchunks > bytes_left(d) / (kDigestSize + 1)) return false;
  v->chunks.clear();
  v->chunks.reserve(nchunks);
  for (uint64_t i = 0; i < nchunks; ++i) {
    absl::string_view raw;
    uint64_t len;
    ChunkRef ref;
    if (!d->GetRaw(kDigestSize, &raw) || !d->GetVarint64(&len)) return false;
    std::copy(raw.begin(), raw.end(), ref.sha256.begin());
    ref.length = static_cast<uint32_t>(len);
    v->chunks.push_back(ref);
  }
  if (!d->GetVarint64(&deleted) || !d->GetVarint64(&v->seq) ||
      !d->GetLengthPrefixed(&v->origin_device) || !d->GetVarint64(&v->base_seq)) {
    return false;
  }
  v->deleted = deleted != 0;
  v->symlink_target.clear();
  if (v->kind == FileKind::kSymlink && !d->GetLengthPrefixed(&v->symlink_target)) return false;
  v->xattrs.clear();
  v->sealed_record.clear();
  v->conflict_original.clear();
  if (format == kFileVersionFormat) return true;
  uint64_t n;
  if (!d->GetVarint64(&n) || n > bytes_left(d) / 2) return false;
  v->xattrs.resize(n);
  for (Xattr& x : v->xattrs) {
    if (!d->GetLengthPrefixed(&x.name) || !d->GetLengthPrefixed(&x.value)) return false;
  }
  v->conflict_original.clear();
  return format != kFileVersionFormatSealed ||
         (d->GetLengthPrefixed(&v->sealed_record) && d->GetLengthPrefixed(&v->conflict_original));
}

}  // namespace

Digest ContentDigest(const std::vector<ChunkRef>& chunks) {
  if (chunks.empty()) return HashOf("");
  if (chunks.size() == 1 && !chunks[0].hole()) return chunks[0].sha256;
  Sha256 h;
  h.Update(absl::string_view("converge chunk list v1\0", 23));
  for (const ChunkRef& c : chunks) {
    h.Update(absl::string_view(reinterpret_cast<const char*>(c.sha256.data()), c.sha256.size()));
    const char len[4] = {static_cast<char>(c.length & 0xff), static_cast<char>((c.length >> 8) & 0xff),
                         static_cast<char>((c.length >> 16) & 0xff), static_cast<char>((c.length >> 24) & 0xff)};
    h.Update(absl::string_view(len, sizeof(len)));
  }
  return h.Finish();
}

absl::Status ValidateXattrs(absl::string_view path, const std::vector<Xattr>& xattrs) {
  size_t total = 0;
  for (size_t i = 0; i < xattrs.size(); ++i) {
    const Xattr& x = xattrs[i];
    if (!absl::StartsWith(x.name, kUserXattrPrefix) || x.name.size() == kUserXattrPrefix.size() ||
        x.name.size() > kMaxXattrNameBytes || x.name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": extended attribute names are \"user.\" names of at most ",
                                                     kMaxXattrNameBytes, " bytes without NUL"));
    }
    if (i > 0 && !(xattrs[i - 1].name < x.name)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": extended attributes must be sorted by name, each once"));
    }
    if (x.value.size() > kMaxXattrValueBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": extended attribute ", x.name, " has over ", kMaxXattrValueBytes, " bytes"));
    }
    total += x.name.size() + x.value.size();
  }
  if (total > kMaxXattrBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": extended attributes over ", kMaxXattrBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFileVersion(const FileVersion& v) {
  // A sealed version's path is sealed too (longer than the name it hides); the engine that opens
  // it checks the plain one.
  CONVERGE_RETURN_IF_ERROR(v.sealed_record.empty() ? ValidateRelativePath(v.path) : ValidateSealedPath(v.path));
  if ((v.mode & ~0777u) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: mode 0%o has bits beyond 0777 (setuid, setgid, sticky or a file type)", v.path, v.mode));
  }
  if (v.file_id.size() != kFileIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(v.path, ": file_id must have ", kFileIdBytes, " bytes"));
  }
  if (!v.xattrs.empty() && (v.kind != FileKind::kFile || v.deleted)) {
    return absl::InvalidArgumentError(absl::StrCat(v.path, ": only a live file carries extended attributes"));
  }
  CONVERGE_RETURN_IF_ERROR(ValidateXattrs(v.path, v.xattrs));
  if (v.sealed_record.size() > kMaxSealedRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat(v.path, ": a sealed record has at most ", kMaxSealedRecordBytes, " bytes"));
  }
  if (!v.conflict_original.empty()) {
    if (v.sealed_record.empty() || v.kind != FileKind::kFile) {
      return absl::InvalidArgumentError(absl::StrCat(v.path, ": only a sealed file names the file it is a conflict copy of"));
    }
    CONVERGE_RETURN_IF_ERROR(ValidateSealedPath(v.conflict_original));
  }
  if (v.kind == FileKind::kSymlink && !v.deleted) {
    if (v.symlink_target.empty() || v.symlink_target.size() > kMaxSymlinkTarget ||
        v.symlink_target.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(v.path, ": a symlink target must have 1 to ", kMaxSymlinkTarget, " bytes and no NUL"));
    }
    if (!v.chunks.empty() || v.size != 0 || v.content_sha256 != HashOf(v.symlink_target)) {
      return absl::InvalidArgumentError(absl::StrCat(v.path, ": a symlink carries only its target"));
    }
    return absl::OkStatus();
  }
  if (!v.symlink_target.empty() && v.kind != FileKind::kSymlink) {
    return absl::InvalidArgumentError(absl::StrCat(v.path, ": only a symlink has a target"));
  }
  if (v.kind == FileKind::kDirectory || v.deleted) {
    if (!v.chunks.empty() || v.size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(v.path, ": a directory or tombstone carries no content"));
    }
    return absl::OkStatus();
  }
  uint64_t total = 0;
  for (const ChunkRef& c : v.chunks) {
    const uint32_t most = c.hole() ? kMaxHoleBytes : kMaxChunkBytes;
    if (c.length == 0 || c.length > most) {
      return absl::InvalidArgumentError(absl::StrCat(v.path, c.hole() ? ": hole length " : ": chunk length ",
                                                     c.length, " outside (0, ", most, "]"));
    }
    total += c.length;
  }
  if (total != v.size) {
    return absl::InvalidArgumentError(
        absl::StrCat(v.path, ": chunks add up to ", total, " bytes but size is ", v.size));
  }
  if (v.content_sha256 != ContentDigest(v.chunks)) {
    return absl::InvalidArgumentError(absl::StrCat(v.path, ": content hash does not match the chunk list"));
  }
  return absl::OkStatus();
}

size_t CommitBytes(const FileVersion& v) {
  // Fixed fields (ids, seqs, size, mode, mtime, hash) and each chunk's digest and length.
  size_t xattrs = 0;
  for (const Xattr& x : v.xattrs) xattrs += 8 + x.name.size() + x.value.size();
  return 128 + v.path.size() + v.symlink_target.size() + v.origin_device.size() + 40 * v.chunks.size() + xattrs +
         v.sealed_record.size() + v.conflict_original.size();
}

absl::Status ValidateChanges(const std::vector<FileVersion>& files) {
  if (files.empty()) return absl::InvalidArgumentError("a commit needs at least one file");
  if (files.size() > kMaxFilesPerCommit) {
    return absl::InvalidArgumentError(absl::StrCat("a commit carries at most ", kMaxFilesPerCommit,
                                                   " files, got ", files.size()));
  }
  size_t bytes = 0;
  for (const FileVersion& v : files) bytes += CommitBytes(v);
  if (bytes > kMaxCommitBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a commit carries at most ", kMaxCommitBytes, " bytes of versions, got ",
                                                   bytes, ": split it"));
  }
  absl::flat_hash_set<absl::string_view> seen;
  for (const FileVersion& v : files) {
    CONVERGE_RETURN_IF_ERROR(ValidateFileVersion(v));
    if (!seen.insert(v.path).second) {
      return absl::InvalidArgumentError(absl::StrCat(v.path, ": path appears twice in one commit"));
    }
  }
  return absl::OkStatus();
}

std::string EncodeFileVersion(const FileVersion& v) {
  std::string out;
  PutFileVersion(&out, v);
  return out;
}

absl::StatusOr<FileVersion> DecodeFileVersion(absl::string_view bytes) {
  Decoder d(bytes);
  FileVersion v;
  if (!GetFileVersion(&d, &v) || !d.done()) {
    return absl::DataLossError("corrupt file version record");
  }
  return v;
}

std::string EncodeCommit(const Commit& c) {
  std::string out;
  PutVarint64(&out, kCommitFormat);
  PutLengthPrefixed(&out, c.namespace_id);
  PutVarint64(&out, c.seq);
  PutLengthPrefixed(&out, c.origin_device);
  PutVarint64(&out, static_cast<uint64_t>(c.committed_at_unix_ms));
  PutVarint64(&out, c.files.size());
  for (const FileVersion& v : c.files) PutFileVersion(&out, v);
  if (!c.attestation.empty()) PutLengthPrefixed(&out, c.attestation);  // absent in older records
  return out;
}

absl::StatusOr<Commit> DecodeCommit(absl::string_view bytes) {
  Decoder d(bytes);
  Commit c;
  uint64_t format, at, n;
  if (!d.GetVarint64(&format) || format != kCommitFormat || !d.GetLengthPrefixed(&c.namespace_id) ||
      !d.GetVarint64(&c.seq) || !d.GetLengthPrefixed(&c.origin_device) || !d.GetVarint64(&at) ||
      !d.GetVarint64(&n)) {
    return absl::DataLossError("corrupt commit record");
  }
  c.committed_at_unix_ms = static_cast<int64_t>(at);
  // Every version takes well over 16 bytes: a count beyond that is corruption, not a request to
  // allocate (found by //tests/fuzz:wire_fuzz).
  if (n > d.remaining() / 16) return absl::DataLossError("corrupt commit record: file count");
  c.files.resize(n);
  for (FileVersion& v : c.files) {
    if (!GetFileVersion(&d, &v)) return absl::DataLossError("corrupt commit record");
  }
  if (!d.done() && (!d.GetLengthPrefixed(&c.attestation) || c.attestation.size() > kMaxAttestationBytes)) {
    return absl::DataLossError("corrupt commit record: attestation");
  }
  if (!d.done()) return absl::DataLossError("corrupt commit record: trailing bytes");
  return c;
}

}  // namespace converge
