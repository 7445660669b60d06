// The in-memory FaultEnv: paths are plain strings ("/j/seg-...rjl"), a
// directory's children are the entries whose parent is it. See fault_env.h
// for the durability model.
#include "support/fault_env.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>

namespace rejoin::testing {
namespace {

std::string Parent(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Base(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

class FaultEnv::Writable final : public JournalWritableFile {
 public:
  Writable(FaultEnv* env, std::shared_ptr<Inode> inode)
      : env_(env), inode_(std::move(inode)) {}
  int Append(std::string_view data) override {
    return env_->Append(inode_, data);
  }
  int Sync() override { return env_->Sync(inode_); }
  int Truncate(std::uint64_t size) override {
    return env_->Truncate(inode_, size);
  }

 private:
  FaultEnv* env_;
  std::shared_ptr<Inode> inode_;
};

class FaultEnv::Readable final : public JournalReadableFile {
 public:
  // Reads a copy taken at open: nobody writes a segment while it is read.
  explicit Readable(std::string data)
      : JournalReadableFile(data.size()), data_(std::move(data)) {}
  int ReadAt(std::uint64_t offset, std::size_t n, char* out) override {
    if (offset > data_.size() || n > data_.size() - offset) return EIO;
    std::copy_n(data_.data() + offset, n, out);
    return 0;
  }

 private:
  std::string data_;
};

class FaultEnv::Lock final : public JournalFileLock {
 public:
  Lock(FaultEnv* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~Lock() override { env_->Unlock(path_); }

 private:
  FaultEnv* env_;
  std::string path_;
};

FaultEnv::FaultEnv(std::uint64_t seed) : random_(seed) { dirs_.insert("/"); }

FaultEnv::~FaultEnv() = default;

void FaultEnv::FailFrom(std::uint64_t n, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_from_ = n;
  fail_err_ = err;
}

void FaultEnv::LimitSpace(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  space_limited_ = true;
  space_left_ = bytes;
}

void FaultEnv::FailFileSyncs(int err) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_err_ = err;
}

void FaultEnv::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_from_ = UINT64_MAX;
  fail_err_ = 0;
  space_limited_ = false;
  sync_err_ = 0;
}

std::uint64_t FaultEnv::mutations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mutations_;
}

void FaultEnv::PowerLoss(PowerLossMode mode, std::size_t torn_bytes,
                         bool keep_unsynced_entries) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!locked_.empty()) std::abort();  // a Journal is still open
    if (keep_unsynced_entries) {
      durable_entries_ = entries_;
    } else {
      entries_ = durable_entries_;
    }
    std::set<Inode*> done;
    for (auto& [path, inode] : entries_) {
      if (!done.insert(inode.get()).second) continue;
      std::string& data = inode->data;
      const std::string& durable = inode->durable;
      // Only bytes appended after the last sync can partly survive; a
      // truncation or rewrite since then is simply lost.
      const bool appended = data.size() > durable.size() &&
                            data.compare(0, durable.size(), durable) == 0;
      switch (mode) {
        case PowerLossMode::kDropUnsynced:
          data = durable;
          break;
        case PowerLossMode::kTearLastWrite:
          if (appended && inode == last_written_) {
            data.resize(durable.size() +
                        std::min(torn_bytes, data.size() - durable.size()));
          } else {
            data = durable;
          }
          break;
        case PowerLossMode::kZeroFillUnsynced:
          if (appended) {
            std::fill(
                data.begin() + static_cast<std::ptrdiff_t>(durable.size()),
                data.end(), '\0');
          } else {
            data = durable;
          }
          break;
      }
      // What survived a restart is on the disk.
      inode->durable = data;
      inode->diverged = false;
    }
    last_written_ = nullptr;
  }
  ClearFaults();
}

std::vector<std::string> FaultEnv::FileNames(const std::string& dir) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [path, inode] : entries_) {
    if (Parent(path) == dir) names.push_back(Base(path));
  }
  return names;
}

std::string FaultEnv::Contents(const std::string& path) const {
  std::shared_ptr<Inode> inode = Find(path);
  std::lock_guard<std::mutex> lock(mu_);
  return inode == nullptr ? std::string() : inode->data;
}

std::size_t FaultEnv::FileCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

int FaultEnv::Mutate() {
  if (mutations_++ >= fail_from_) return fail_err_;
  return 0;
}

std::shared_ptr<FaultEnv::Inode> FaultEnv::Find(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(path);
  return it == entries_.end() ? nullptr : it->second;
}

int FaultEnv::Append(const std::shared_ptr<Inode>& inode,
                     std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (int err = Mutate(); err != 0) return err;
  last_written_ = inode;
  if (space_limited_ && data.size() > space_left_) {
    inode->data.append(data.substr(0, space_left_));
    space_left_ = 0;
    return ENOSPC;
  }
  if (space_limited_) space_left_ -= data.size();
  inode->data.append(data);
  return 0;
}

int FaultEnv::Sync(const std::shared_ptr<Inode>& inode) {
  std::lock_guard<std::mutex> lock(mu_);
  if (int err = Mutate(); err != 0) return err;
  if (sync_err_ != 0) return sync_err_;
  if (inode->diverged || inode->durable.size() > inode->data.size()) {
    inode->durable = inode->data;
  } else {
    inode->durable.append(inode->data, inode->durable.size());
  }
  inode->diverged = false;
  return 0;
}

int FaultEnv::Truncate(const std::shared_ptr<Inode>& inode,
                       std::uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (int err = Mutate(); err != 0) return err;
  if (size < inode->data.size()) inode->data.resize(size);
  if (size < inode->durable.size()) inode->diverged = true;
  return 0;
}

void FaultEnv::Unlock(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  locked_.erase(path);
}

int FaultEnv::NewWritableFile(const std::string& path,
                              std::unique_ptr<JournalWritableFile>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirs_.count(Parent(path)) == 0) return ENOENT;
  if (int err = Mutate(); err != 0) return err;
  auto inode = std::make_shared<Inode>();
  entries_[path] = inode;  // O_TRUNC of an existing file: a new one here
  *out = std::make_unique<Writable>(this, std::move(inode));
  return 0;
}

int FaultEnv::OpenAppendableFile(const std::string& path,
                                 std::unique_ptr<JournalWritableFile>* out) {
  std::shared_ptr<Inode> inode = Find(path);
  if (inode == nullptr) return ENOENT;
  *out = std::make_unique<Writable>(this, std::move(inode));
  return 0;
}

int FaultEnv::OpenReadableFile(const std::string& path,
                               std::unique_ptr<JournalReadableFile>* out) {
  std::shared_ptr<Inode> inode = Find(path);
  if (inode == nullptr) return ENOENT;
  std::lock_guard<std::mutex> lock(mu_);
  *out = std::make_unique<Readable>(inode->data);
  return 0;
}

int FaultEnv::FileSize(const std::string& path, std::uint64_t* size) {
  std::shared_ptr<Inode> inode = Find(path);
  if (inode == nullptr) return ENOENT;
  std::lock_guard<std::mutex> lock(mu_);
  *size = inode->data.size();
  return 0;
}

bool FaultEnv::FileExists(const std::string& path) {
  return Find(path) != nullptr;
}

int FaultEnv::RenameFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(from);
  if (it == entries_.end()) return ENOENT;
  if (int err = Mutate(); err != 0) return err;
  std::shared_ptr<Inode> inode = it->second;
  entries_.erase(it);
  entries_[to] = std::move(inode);
  return 0;
}

int FaultEnv::RemoveFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(path);
  if (it == entries_.end()) return ENOENT;
  if (int err = Mutate(); err != 0) return err;
  entries_.erase(it);
  return 0;
}

int FaultEnv::LinkFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(from);
  if (it == entries_.end()) return ENOENT;
  if (entries_.count(to) != 0) return EEXIST;
  if (int err = Mutate(); err != 0) return err;
  entries_[to] = it->second;
  return 0;
}

int FaultEnv::ListDir(const std::string& dir, std::vector<std::string>* names) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirs_.count(dir) == 0) return ENOENT;
  for (const auto& [path, inode] : entries_) {
    if (Parent(path) == dir) names->push_back(Base(path));
  }
  return 0;
}

bool FaultEnv::IsDirectory(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return dirs_.count(path) != 0;
}

int FaultEnv::CreateDirs(const std::string& dir, bool* created) {
  std::lock_guard<std::mutex> lock(mu_);
  *created = false;
  for (std::string d = dir; dirs_.count(d) == 0; d = Parent(d)) {
    dirs_.insert(d);
    *created = true;
  }
  return 0;
}

int FaultEnv::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirs_.count(dir) == 0) return ENOENT;
  if (int err = Mutate(); err != 0) return err;
  for (auto it = durable_entries_.begin(); it != durable_entries_.end();) {
    it = Parent(it->first) == dir ? durable_entries_.erase(it) : std::next(it);
  }
  for (const auto& [path, inode] : entries_) {
    if (Parent(path) == dir) durable_entries_[path] = inode;
  }
  return 0;
}

int FaultEnv::LockFile(const std::string& path,
                       std::unique_ptr<JournalFileLock>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirs_.count(Parent(path)) == 0) return ENOENT;
  if (entries_.count(path) == 0) {
    if (int err = Mutate(); err != 0) return err;
    entries_[path] = std::make_shared<Inode>();
  }
  if (!locked_.insert(path).second) return EWOULDBLOCK;
  *out = std::make_unique<Lock>(this, path);
  return 0;
}

bool FaultEnv::LockHeld(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return locked_.count(path) != 0;
}

int FaultEnv::Random64(std::uint64_t* out) {
  std::lock_guard<std::mutex> lock(mu_);
  *out = random_();
  return 0;
}

}  // namespace rejoin::testing
