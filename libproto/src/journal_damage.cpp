// Replay's reading window and its torn-tail versus corruption rule
// (JOURNAL.md §4 "Damage"): what a crash can leave behind the last intact
// record is cut, anything else stops the open with kCorrupt naming the
// file and offset.
#include <algorithm>
#include <cstring>
#include <string>

#include "crc32c.h"
#include "journal_files.h"

namespace rejoin {

using namespace journal_internal;

int SegmentReader::Get(std::size_t offset, std::size_t n, const char** out) {
  if (offset < base_ || offset + n > base_ + len_) {
    std::size_t want = std::max(n, std::min(kReadChunkBytes, size_ - offset));
    std::size_t keep = 0;
    if (offset >= base_ && offset < base_ + len_) {
      keep = base_ + len_ - offset;
      std::memmove(buf_.data(), buf_.data() + (offset - base_), keep);
    }
    if (buf_.size() < want) buf_.resize(want);
    base_ = offset;
    len_ = keep;
    if (int err = file_.ReadAt(offset + keep, want - keep, buf_.data() + keep);
        err != 0) {
      return err;
    }
    len_ = want;
  }
  *out = buf_.data() + (offset - base_);
  return 0;
}

int SegmentReader::AllZeroFrom(std::size_t offset, bool* zero) {
  *zero = false;
  std::size_t pos = offset;
  while (pos < size_) {
    std::uint64_t data = 0, hole = 0;
    if (int err = file_.NextData(pos, &data, &hole); err != 0) return err;
    if (data >= size_) break;  // only a hole is left
    pos = std::max(pos, static_cast<std::size_t>(data));
    std::size_t end = std::min(size_, static_cast<std::size_t>(hole));
    if (end <= pos) end = size_;
    while (pos < end) {
      std::size_t n = std::min(kReadChunkBytes, end - pos);
      const char* p = nullptr;
      if (int err = Get(pos, n, &p); err != 0) return err;
      if (std::any_of(p, p + n, [](char c) { return c != 0; })) return 0;
      pos += n;
    }
  }
  *zero = true;
  return 0;
}

namespace {

// Whether the record framed at `offset` is intact: a known type, a length
// within the limit and the file, and a matching checksum. *crc_bytes counts
// the bytes checksummed.
int IsIntactRecordAt(SegmentReader& r, std::size_t offset, bool* intact,
                     std::size_t* crc_bytes) {
  *intact = false;
  if (r.size() - offset < kRecordHeaderBytes) return 0;
  const char* rec = nullptr;
  if (int err = r.Get(offset, kRecordHeaderBytes, &rec); err != 0) return err;
  auto type = static_cast<std::uint8_t>(rec[8]);
  if (type < static_cast<std::uint8_t>(RecordType::kOpen) ||
      type > static_cast<std::uint8_t>(RecordType::kSession)) {
    return 0;
  }
  std::size_t length = DecodeFixed32(rec + 4);
  if (length > kMaxBodyBytes ||
      length > r.size() - offset - kRecordHeaderBytes) {
    return 0;
  }
  if (int err = r.Get(offset, kRecordHeaderBytes + length, &rec); err != 0) {
    return err;
  }
  *crc_bytes += length + 5;
  *intact =
      crc32c::Unmask(DecodeFixed32(rec)) == crc32c::Value(rec + 4, length + 5);
  return 0;
}

// Looks for an intact record starting anywhere in [from, end of file).
// *found is the offset of the first one, or 0 when there is none; the
// search gives up (sets *gave_up) after checksumming a bounded number of
// bytes, so a hostile file cannot make it quadratic.
int FindIntactRecord(SegmentReader& r, std::size_t from, std::size_t* found,
                     bool* gave_up) {
  *found = 0;
  *gave_up = false;
  const std::size_t budget = 8 * (r.size() - from) + kMaxBodyBytes;
  std::size_t spent = 0;
  for (std::size_t at = from; at + kRecordHeaderBytes <= r.size(); ++at) {
    bool intact = false;
    if (int err = IsIntactRecordAt(r, at, &intact, &spent); err != 0) {
      return err;
    }
    if (intact) {
      *found = at;
      return 0;
    }
    if (spent > budget) {
      *gave_up = true;
      return 0;
    }
  }
  return 0;
}

}  // namespace

Status Journal::Files::DamageAt(const std::string& name, std::size_t offset,
                                const std::string& what, ReplayContext* ctx) {
  ctx->damaged_segment = name;
  ctx->damaged_offset = offset;
  return Corrupt("journal in " + dir_ + ": " + Path(name) + " at offset " +
                 std::to_string(offset) + ": " + what +
                 ". Nothing was changed; `rejoin-ctl journal inspect` shows "
                 "the journal, `rejoin-ctl journal salvage` is the way out "
                 "(JOURNAL.md \"Damage\")");
}

Status Journal::Files::ClassifyTail(SegmentReader& reader,
                                    const std::string& name, bool last,
                                    std::size_t offset,
                                    const std::string& problem,
                                    bool checksummed, std::string* torn,
                                    ReplayContext* ctx) {
  const std::string path = Path(name);
  const std::size_t size = reader.size();
  const std::size_t left = size - offset;
  auto read_error = [&](int err) { return IoError("cannot read", path, err); };
  if (checksummed) {
    // Its checksum matched, so the record was written whole: no crash
    // produces it.
    return DamageAt(name, offset,
                    problem + " in a record whose checksum matches (" +
                        std::to_string(left) + " bytes from there to the end)",
                    ctx);
  }
  if (!last) {
    // Later segments were started after this one was complete.
    return DamageAt(name, offset,
                    problem + ", followed by " + std::to_string(left) +
                        " bytes and by newer segments",
                    ctx);
  }
  bool zero = false;
  if (int err = reader.AllZeroFrom(offset, &zero); err != 0) {
    return read_error(err);
  }
  if (zero) {
    *torn = "zero-filled tail";
    return Status::Ok();
  }
  if (left < kRecordHeaderBytes) {
    *torn = "incomplete record header";
    return Status::Ok();
  }
  const char* rec = nullptr;
  if (int err = reader.Get(offset, kRecordHeaderBytes, &rec); err != 0) {
    return read_error(err);
  }
  const std::size_t length = DecodeFixed32(rec + 4);
  if (length > kMaxBodyBytes) {
    return DamageAt(name, offset,
                    "record length " + std::to_string(length) +
                        " is above the limit, which no writer produces (" +
                        std::to_string(left) + " bytes to the end)",
                    ctx);
  }
  if (kRecordHeaderBytes + length > left &&
      left - kRecordHeaderBytes <= kMaxBodyBytes) {
    // A kill -9 leaves the record's true length and a prefix of it. If the
    // bytes to the end checksum as a whole record under the length they
    // actually span, the record is complete and its length field damaged.
    if (int err = reader.Get(offset, left, &rec); err != 0) {
      return read_error(err);
    }
    {
      char covered[5];
      EncodeFixed32(covered,
                    static_cast<std::uint32_t>(left - kRecordHeaderBytes));
      covered[4] = rec[8];
      std::uint32_t crc =
          crc32c::Extend(crc32c::Value(covered, 5), rec + kRecordHeaderBytes,
                         left - kRecordHeaderBytes);
      if (crc32c::Unmask(DecodeFixed32(rec)) == crc) {
        return DamageAt(name, offset,
                        "the length field of the last record is damaged "
                        "(the record is complete and checksums with its "
                        "true length)",
                        ctx);
      }
    }
  }
  std::size_t intact_at = 0;
  bool gave_up = false;
  if (int err = FindIntactRecord(reader, offset + 1, &intact_at, &gave_up);
      err != 0) {
    return read_error(err);
  }
  if (intact_at != 0) {
    return DamageAt(name, offset,
                    problem + ", followed by an intact record at offset " +
                        std::to_string(intact_at) +
                        ": damage before intact records is never a torn tail",
                    ctx);
  }
  if (gave_up) {
    return DamageAt(name, offset,
                    problem + ", followed by " + std::to_string(left) +
                        " bytes that could not be shown to hold no intact "
                        "record",
                    ctx);
  }
  if (kRecordHeaderBytes + length <= left) {
    // A record of complete length whose checksum fails: a crash in either
    // level cannot be told apart from damage to acknowledged bytes.
    return DamageAt(name, offset,
                    problem + " in a record of complete length (" +
                        std::to_string(kRecordHeaderBytes + length) + " of " +
                        std::to_string(left) +
                        " bytes to the end): not a torn write",
                    ctx);
  }
  *torn = "record of " + std::to_string(kRecordHeaderBytes + length) +
          " bytes runs past the end of the file";
  return Status::Ok();
}

}  // namespace rejoin
