#include "common/wire/wire.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace converge::wire {

absl::StatusOr<FileVersion> FileVersionFromProto(const common::v1::FileVersion& p) {
  FileVersion v;
  v.file_id = p.file_id();
  v.path = p.path();
  switch (p.kind()) {
    case common::v1::FILE_KIND_FILE:
      v.kind = FileKind::kFile;
      break;
    case common::v1::FILE_KIND_DIRECTORY:
      v.kind = FileKind::kDirectory;
      break;
    case common::v1::FILE_KIND_SYMLINK:
      v.kind = FileKind::kSymlink;
      if (p.symlink_target().size() > kMaxSymlinkTarget) {
        return absl::InvalidArgumentError(absl::StrCat(p.path().substr(0, 256), ": symlink target too long"));
      }
      v.symlink_target = p.symlink_target();
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(p.path().substr(0, 256), ": unknown kind"));
  }
  v.mode = p.mode();  // ValidateFileVersion keeps it to 0777
  v.mtime_ns = p.mtime_ns();
  v.size = p.size();
  if ((v.kind == FileKind::kFile || v.kind == FileKind::kSymlink) && !p.deleted()) {
    CONVERGE_ASSIGN_OR_RETURN(v.content_sha256, DigestFromBytes(p.content_sha256()));
  }
  v.chunks.reserve(p.chunks_size());
  for (const common::v1::ChunkRef& c : p.chunks()) {
    ChunkRef ref;
    CONVERGE_ASSIGN_OR_RETURN(ref.sha256, DigestFromBytes(c.sha256()));
    ref.length = c.length();
    v.chunks.push_back(ref);
  }
  if (p.xattrs_size() > 0) {
    if (static_cast<size_t>(p.xattrs_size()) > kMaxXattrBytes / 8) {
      return absl::InvalidArgumentError(absl::StrCat(v.path, ": too many extended attributes"));
    }
    v.xattrs.reserve(p.xattrs_size());
    for (const common::v1::Xattr& x : p.xattrs()) v.xattrs.push_back(Xattr{x.name(), x.value()});
  }
  v.deleted = p.deleted();
  v.seq = p.seq();
  v.origin_device = p.origin_device();
  v.base_seq = p.base_seq();
  if (p.sealed_record().size() > kMaxSealedRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat(v.path, ": sealed record too large"));
  }
  v.sealed_record = p.sealed_record();
  v.conflict_original = p.conflict_original();
  CONVERGE_RETURN_IF_ERROR(ValidateFileVersion(v));
  return v;
}

void FileVersionToProto(const FileVersion& v, common::v1::FileVersion* p) {
  p->set_file_id(v.file_id);
  p->set_path(v.path);
  p->set_kind(v.kind == FileKind::kDirectory ? common::v1::FILE_KIND_DIRECTORY
              : v.kind == FileKind::kSymlink ? common::v1::FILE_KIND_SYMLINK
                                             : common::v1::FILE_KIND_FILE);
  if (v.kind == FileKind::kSymlink) p->set_symlink_target(v.symlink_target);
  p->set_mode(v.mode);
  p->set_mtime_ns(v.mtime_ns);
  p->set_size(v.size);
  if (v.kind != FileKind::kDirectory && !v.deleted) p->set_content_sha256(DigestToBytes(v.content_sha256));
  for (const ChunkRef& c : v.chunks) {
    common::v1::ChunkRef* out = p->add_chunks();
    out->set_sha256(DigestToBytes(c.sha256));
    out->set_length(c.length);
  }
  for (const Xattr& x : v.xattrs) {
    common::v1::Xattr* out = p->add_xattrs();
    out->set_name(x.name);
    out->set_value(x.value);
  }
  p->set_deleted(v.deleted);
  p->set_seq(v.seq);
  p->set_origin_device(v.origin_device);
  if (!v.sealed_record.empty()) p->set_sealed_record(v.sealed_record);
  if (!v.conflict_original.empty()) p->set_conflict_original(v.conflict_original);
  p->set_base_seq(v.base_seq);
}

absl::StatusOr<Commit> CommitFromProto(const common::v1::Commit& p) {
  Commit c;
  c.namespace_id = p.namespace_id();
  c.seq = p.seq();
  c.origin_device = p.origin_device();
  c.committed_at_unix_ms = p.committed_at_unix_ms();
  c.files.reserve(p.files_size());
  for (const common::v1::FileVersion& f : p.files()) {
    CONVERGE_ASSIGN_OR_RETURN(FileVersion v, FileVersionFromProto(f));
    c.files.push_back(std::move(v));
  }
  if (p.attestation().size() > kMaxAttestationBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a commit's attestation has at most ", kMaxAttestationBytes, " bytes"));
  }
  c.attestation = p.attestation();
  return c;
}

void CommitToProto(const Commit& c, common::v1::Commit* p) {
  p->set_namespace_id(c.namespace_id);
  p->set_seq(c.seq);
  p->set_origin_device(c.origin_device);
  p->set_committed_at_unix_ms(c.committed_at_unix_ms);
  for (const FileVersion& v : c.files) FileVersionToProto(v, p->add_files());
  p->set_attestation(c.attestation);
}

absl::StatusOr<std::vector<Digest>> DigestsFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& p) {
  std::vector<Digest> out;
  out.reserve(p.size());
  for (const std::string& bytes : p) {
    CONVERGE_ASSIGN_OR_RETURN(Digest d, DigestFromBytes(bytes));
    out.push_back(d);
  }
  return out;
}

}  // namespace converge::wire
