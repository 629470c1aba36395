#include "common/codec/rsync_delta.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/base/coding.h"
#include "common/base/sha256.h"

namespace converge {
namespace {

enum Op : uint64_t { kLiteral = 0, kCopy = 1 };

// rsync's weak checksum: a = sum of bytes, b = sum of the running a's, both mod 2^16.
struct Rolling {
  uint32_t a = 0, b = 0;
  size_t n = 0;
  void Init(const uint8_t* p, size_t len) {
    a = b = 0;
    n = len;
    for (size_t i = 0; i < len; ++i) {
      a += p[i];
      b += static_cast<uint32_t>(len - i) * p[i];
    }
    a &= 0xffff;
    b &= 0xffff;
  }
  void Roll(uint8_t out, uint8_t in) {
    a = (a - out + in) & 0xffff;
    b = (b - static_cast<uint32_t>(n) * out + a) & 0xffff;
  }
  uint32_t Value() const { return (b << 16) | a; }
};

uint64_t Strong(absl::string_view block) {
  const Digest d = HashOf(block);
  uint64_t v;
  memcpy(&v, d.data(), sizeof(v));
  return v;
}

void FlushLiteral(std::string* out, absl::string_view target, size_t from, size_t to) {
  if (to <= from) return;
  PutVarint64(out, kLiteral);
  PutLengthPrefixed(out, target.substr(from, to - from));
}

}  // namespace

uint32_t BlockBytesFor(size_t length) {
  const double root = std::sqrt(static_cast<double>(length));
  uint32_t block = 512;
  while (block < root && block < 8192) block *= 2;
  return block;
}

Signature MakeSignature(absl::string_view base, uint32_t block_bytes) {
  Signature sig;
  sig.block_bytes = block_bytes;
  sig.length = static_cast<uint32_t>(base.size());
  for (size_t off = 0; off < base.size(); off += block_bytes) {
    const absl::string_view block = base.substr(off, block_bytes);
    Rolling r;
    r.Init(reinterpret_cast<const uint8_t*>(block.data()), block.size());
    sig.weak.push_back(r.Value());
    sig.strong.push_back(Strong(block));
  }
  return sig;
}

std::string MakeDelta(absl::string_view target, const Signature& sig) {
  std::string out;
  const size_t bs = sig.block_bytes;
  // Full blocks only are searched for (the base's short last block is matched only at the end).
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> by_weak;
  for (uint32_t i = 0; i < sig.weak.size(); ++i) {
    const size_t len = std::min<size_t>(bs, sig.length - static_cast<size_t>(i) * bs);
    if (len == bs) by_weak[sig.weak[i]].push_back(i);
  }
  const auto* t = reinterpret_cast<const uint8_t*>(target.data());
  size_t literal_from = 0;
  size_t pos = 0;
  Rolling r;
  bool rolling = false;
  while (bs > 0 && pos + bs <= target.size()) {
    if (!rolling) {
      r.Init(t + pos, bs);
      rolling = true;
    }
    auto it = by_weak.find(r.Value());
    int64_t match = -1;
    if (it != by_weak.end()) {
      const uint64_t strong = Strong(target.substr(pos, bs));
      for (uint32_t idx : it->second) {
        if (sig.strong[idx] == strong) {
          match = idx;
          break;
        }
      }
    }
    if (match >= 0) {
      FlushLiteral(&out, target, literal_from, pos);
      PutVarint64(&out, kCopy);
      PutVarint64(&out, static_cast<uint64_t>(match));
      pos += bs;
      literal_from = pos;
      rolling = false;
      continue;
    }
    if (pos + bs < target.size()) r.Roll(t[pos], t[pos + bs]);
    ++pos;
  }
  FlushLiteral(&out, target, literal_from, target.size());
  return out;
}

absl::StatusOr<std::string> ApplyDelta(absl::string_view delta, absl::string_view base, uint32_t block_bytes,
                                       size_t max_bytes) {
  if (block_bytes == 0) return absl::InvalidArgumentError("delta block size 0");
  Decoder d(delta);
  std::string out;
  while (!d.done()) {
    uint64_t op;
    if (!d.GetVarint64(&op)) return absl::InvalidArgumentError("malformed delta");
    if (op == kLiteral) {
      absl::string_view bytes;
      if (!d.GetLengthPrefixed(&bytes)) return absl::InvalidArgumentError("malformed delta literal");
      if (out.size() + bytes.size() > max_bytes) return absl::InvalidArgumentError("delta too large");
      out.append(bytes.data(), bytes.size());
    } else if (op == kCopy) {
      uint64_t block;
      if (!d.GetVarint64(&block)) return absl::InvalidArgumentError("malformed delta copy");
      if (block >= (base.size() + block_bytes - 1) / block_bytes) {
        return absl::InvalidArgumentError(absl::StrCat("delta copies block ", block, " the base does not have"));
      }
      const absl::string_view piece = base.substr(block * block_bytes, block_bytes);
      if (out.size() + piece.size() > max_bytes) return absl::InvalidArgumentError("delta too large");
      out.append(piece.data(), piece.size());
    } else {
      return absl::InvalidArgumentError("unknown delta op");
    }
  }
  return out;
}

}  // namespace converge
