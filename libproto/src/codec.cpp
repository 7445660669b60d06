// The wire codec of protocol v1 (PROTOCOL.md §2-4, §8). This is the only file
// that includes msgpack: its exceptions end here as kMalformed or kTooLarge,
// and its leniency (trailing bytes, short or long arrays, loose conversions)
// is closed off by checking every step by hand instead of using as<T>().
#include "rejoin/proto/codec.h"

#include <algorithm>
#include <array>
#include <limits>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "codec_flat.h"
#include "schema.h"

namespace rejoin {
namespace {

using codec_internal::kIndex;
using codec_internal::kName;

constexpr char kSignature0 = 0x52;  // 'R'
constexpr char kSignature1 = 0x4A;  // 'J'
constexpr std::size_t kPrefixBytes = 4;
// ERROR.message and GOODBYE.reason.
constexpr std::size_t kMaxTextBytes = 1024;
// The deepest v1 message: body, list, struct, list, struct.
constexpr std::size_t kMaxDepth = 5;
// First zone chunk: enough for the msgpack objects of every common header, so
// a decode makes one allocation for them.
constexpr std::size_t kZoneChunkBytes = 2048;

using FieldNames = std::span<const std::string_view>;

// Field names in wire order, from the schema (schema.h): the semantic
// checks below name fields by these.
constexpr const auto& kServiceSpecFields =
    codec_internal::kFieldNames<ServiceSpec>;
constexpr const auto& kClientVectorFields =
    codec_internal::kFieldNames<ClientVector>;
constexpr const auto& kHeldOpFields = codec_internal::kFieldNames<HeldOp>;
constexpr const auto& kServerVectorFields =
    codec_internal::kFieldNames<ServerVector>;
constexpr const auto& kOpDecisionFields =
    codec_internal::kFieldNames<OpDecision>;
constexpr const auto& kRecoverSessionFields =
    codec_internal::kFieldNames<RecoverSession>;
constexpr const auto& kHelloFields = codec_internal::kFieldNames<Hello>;
constexpr const auto& kWelcomeFields = codec_internal::kFieldNames<Welcome>;
constexpr const auto& kRequestFields = codec_internal::kFieldNames<Request>;
constexpr const auto& kResponseFields = codec_internal::kFieldNames<Response>;
constexpr const auto& kAckFields = codec_internal::kFieldNames<Ack>;
constexpr const auto& kHeartbeatFields = codec_internal::kFieldNames<Heartbeat>;
constexpr const auto& kStateExchangeFields =
    codec_internal::kFieldNames<StateExchange>;
constexpr const auto& kRecoverFields = codec_internal::kFieldNames<Recover>;
constexpr const auto& kProbeFields = codec_internal::kFieldNames<Probe>;
constexpr const auto& kProbeReplyFields =
    codec_internal::kFieldNames<ProbeReply>;
constexpr const auto& kErrorFields = codec_internal::kFieldNames<Error>;
constexpr const auto& kGoodbyeFields = codec_internal::kFieldNames<Goodbye>;

// "field 2 (seq)": how errors name a top-level field, numbered from 1.
std::string FieldLabel(FieldNames names, std::size_t index) {
  std::string out = "field ";
  out += std::to_string(index + 1);
  out += " (";
  out += names[index];
  out += ')';
  return out;
}

std::string ItemLabel(std::size_t index) {
  return "[" + std::to_string(index) + "]";
}

// ---------------------------------------------------------------------------
// Encoding

// msgpack's packer writes through any type with write(const char*, size_t).
class StringSink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  void write(const char* data, std::size_t size) { out_.append(data, size); }

 private:
  std::string& out_;
};

using Packer = msgpack::packer<StringSink>;

// The packer picks the shortest form for every unsigned value, which is what
// makes encodings canonical (PROTOCOL.md §3).
void PackUnsigned(Packer& pk, std::uint64_t v) { pk.pack_uint64(v); }

template <typename E>
void PackEnum(Packer& pk, E e) {
  pk.pack_uint64(static_cast<std::uint64_t>(e));
}

void PackBool(Packer& pk, bool b) {
  if (b) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
}

void PackStr(Packer& pk, std::string_view s) {
  const auto size = static_cast<std::uint32_t>(s.size());
  pk.pack_str(size);
  pk.pack_str_body(s.data(), size);
}

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

template <typename S>
void PackBody(Packer& pk, const S& m);

// One field, by the type of the member it travels in.
template <typename T>
void PackField(Packer& pk, const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    PackStr(pk, v);
  } else if constexpr (std::is_same_v<T, bool>) {
    PackBool(pk, v);
  } else if constexpr (std::is_enum_v<T>) {
    PackEnum(pk, v);
  } else if constexpr (std::is_unsigned_v<T>) {
    PackUnsigned(pk, v);
  } else if constexpr (IsVector<T>::value) {
    pk.pack_array(static_cast<std::uint32_t>(v.size()));
    for (const auto& item : v) PackField(pk, item);
  } else {
    PackBody(pk, v);  // a struct nested in a list
  }
}

template <typename S>
void PackBody(Packer& pk, const S& m) {
  pk.pack_array(codec_internal::kArity<S>);
  codec_internal::ForEachMember<S>(m,
                                   [&pk](const auto& v) { PackField(pk, v); });
}

// ---------------------------------------------------------------------------
// Decoding, step 1: msgpack objects to structs, checking shape and types only.

// The first failure inside a body. `path` is built from the inside out as the
// failure travels up through nested lists and structs.
struct DecodeError {
  std::string path;     // e.g. "field 6 (services)[1].credit"; empty: body
  std::string problem;  // e.g. "must be a bool, got str"
};

std::string Describe(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
      return "integer " + std::to_string(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "array of " + std::to_string(o.via.array.size);
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown msgpack type";
}

template <typename T>
bool ToUnsigned(const msgpack::object& o, T& out) {
  static_assert(std::is_unsigned_v<T>);
  if (o.type != msgpack::type::POSITIVE_INTEGER ||
      o.via.u64 > std::numeric_limits<T>::max()) {
    return false;
  }
  out = static_cast<T>(o.via.u64);
  return true;
}

template <typename T>
std::string UnsignedProblem(const msgpack::object& o) {
  return "must be an unsigned integer <= " +
         std::to_string(std::numeric_limits<T>::max()) + ", got " + Describe(o);
}

bool CheckArity(const msgpack::object& o, std::size_t arity,
                DecodeError& error) {
  if (o.type == msgpack::type::ARRAY && o.via.array.size == arity) return true;
  error.problem = "must be an array of " + std::to_string(arity) +
                  " fields, got " + Describe(o);
  return false;
}

template <typename S>
bool ReadStruct(const msgpack::object& o, S& out, bool top, DecodeError& error);

// Reads the fields of one array whose arity was already checked, in order.
// After the first failure every further read is a no-op.
class FieldReader {
 public:
  FieldReader(const msgpack::object& array, FieldNames names, bool top,
              DecodeError& error)
      : items_(array.via.array.ptr), names_(names), top_(top), error_(error) {}

  bool ok() const { return ok_; }

  template <typename T>
  void Unsigned(T& out) {
    const msgpack::object* o = Next();
    if (o != nullptr && !ToUnsigned(*o, out)) Fail(UnsignedProblem<T>(*o));
  }

  // Enums are read at the width of their underlying type; whether the value
  // names an enumerator is a semantic check (ValidateMessage).
  template <typename E>
  void Enum(E& out) {
    std::underlying_type_t<E> raw{};
    Unsigned(raw);
    if (ok_) out = static_cast<E>(raw);
  }

  void Bool(bool& out) {
    const msgpack::object* o = Next();
    if (o == nullptr) return;
    if (o->type != msgpack::type::BOOLEAN) {
      Fail("must be a bool, got " + Describe(*o));
      return;
    }
    out = o->via.boolean;
  }

  void Str(std::string& out) {
    const msgpack::object* o = Next();
    if (o == nullptr) return;
    if (o->type != msgpack::type::STR) {
      Fail("must be a str, got " + Describe(*o));
      return;
    }
    out.assign(o->via.str.ptr, o->via.str.size);
  }

  void Seqs(std::vector<Seq>& out) {
    const msgpack::object* o = Next();
    if (o == nullptr || !IsList(*o)) return;
    const msgpack::object_array& list = o->via.array;
    out.resize(list.size);
    for (std::uint32_t i = 0; i < list.size; ++i) {
      if (!ToUnsigned(list.ptr[i], out[i])) {
        Fail(UnsignedProblem<Seq>(list.ptr[i]));
        error_.path += ItemLabel(i);
        return;
      }
    }
  }

  // One field, by the type of the member it travels in (schema.h).
  template <typename T>
  void Read(T& out) {
    if constexpr (std::is_same_v<T, std::string>) {
      Str(out);
    } else if constexpr (std::is_same_v<T, bool>) {
      Bool(out);
    } else if constexpr (std::is_enum_v<T>) {
      Enum(out);
    } else if constexpr (std::is_same_v<T, std::vector<Seq>>) {
      Seqs(out);
    } else if constexpr (std::is_unsigned_v<T>) {
      Unsigned(out);
    } else {
      List(out);
    }
  }

  template <typename T>
  void List(std::vector<T>& out) {
    const msgpack::object* o = Next();
    if (o == nullptr || !IsList(*o)) return;
    const msgpack::object_array& list = o->via.array;
    out.resize(list.size);
    for (std::uint32_t i = 0; i < list.size; ++i) {
      DecodeError inner;
      if (!ReadStruct(list.ptr[i], out[i], /*top=*/false, inner)) {
        ok_ = false;
        error_.path = Segment() + ItemLabel(i) + inner.path;
        error_.problem = std::move(inner.problem);
        return;
      }
    }
  }

 private:
  const msgpack::object* Next() {
    if (!ok_) return nullptr;
    return &items_[index_++];
  }

  bool IsList(const msgpack::object& o) {
    if (o.type == msgpack::type::ARRAY) return true;
    Fail("must be an array, got " + Describe(o));
    return false;
  }

  // The current field as it appears in an error path.
  std::string Segment() const {
    const std::size_t i = index_ - 1;
    if (top_) return FieldLabel(names_, i);
    return "." + std::string(names_[i]);
  }

  void Fail(std::string problem) {
    ok_ = false;
    error_.path = Segment();
    error_.problem = std::move(problem);
  }

  const msgpack::object* items_;
  FieldNames names_;
  bool top_;
  DecodeError& error_;
  std::size_t index_ = 0;
  bool ok_ = true;
};

template <typename S>
bool ReadStruct(const msgpack::object& o, S& out, bool top,
                DecodeError& error) {
  constexpr const auto& names = codec_internal::kFieldNames<S>;
  if (!CheckArity(o, names.size(), error)) return false;
  FieldReader r(o, names, top, error);
  codec_internal::ForEachMember<S>(out, [&r](auto& v) { r.Read(v); });
  return r.ok();
}

template <typename T>
Result<Message> ReadBody(MessageType type, const msgpack::object& root) {
  T body;
  DecodeError error;
  if (!ReadStruct(root, body, /*top=*/true, error)) {
    std::string text(MessageTypeName(type));
    text += ": ";
    text += error.path.empty() ? "body" : error.path;
    text += ' ';
    text += error.problem;
    return Status(ErrorCode::kMalformed, std::move(text));
  }
  return Message(std::move(body));
}

Result<Message> ReadMessage(MessageType type, const msgpack::object& root) {
  switch (type) {
    case MessageType::kHello:
      return ReadBody<Hello>(type, root);
    case MessageType::kWelcome:
      return ReadBody<Welcome>(type, root);
    case MessageType::kRequest:
      return ReadBody<Request>(type, root);
    case MessageType::kResponse:
      return ReadBody<Response>(type, root);
    case MessageType::kAck:
      return ReadBody<Ack>(type, root);
    case MessageType::kHeartbeat:
      return ReadBody<Heartbeat>(type, root);
    case MessageType::kStateExchange:
      return ReadBody<StateExchange>(type, root);
    case MessageType::kRecover:
      return ReadBody<Recover>(type, root);
    case MessageType::kProbe:
      return ReadBody<Probe>(type, root);
    case MessageType::kProbeReply:
      return ReadBody<ProbeReply>(type, root);
    case MessageType::kError:
      return ReadBody<Error>(type, root);
    case MessageType::kGoodbye:
      return ReadBody<Goodbye>(type, root);
  }
  // Unreachable: the type byte was checked by CheckPrefix.
  return Status(ErrorCode::kInternal, "unchecked message type");
}

// ---------------------------------------------------------------------------
// Decoding, step 2: semantic rules (also ValidateMessage).

// Enumerator membership, one switch per wire enum without a default: a new
// enumerator must be accepted here on purpose.
bool IsKnown(Role r) {
  switch (r) {
    case Role::kClient:
    case Role::kServer:
      return true;
  }
  return false;
}

bool IsKnown(InDoubtPolicy p) {
  switch (p) {
    case InDoubtPolicy::kReexecute:
    case InDoubtPolicy::kResolveHook:
    case InDoubtPolicy::kAnswerInDoubt:
      return true;
  }
  return false;
}

bool IsKnown(Breakpoint b) {
  switch (b) {
    case Breakpoint::kConsistent:
    case Breakpoint::kRequestLost:
    case Breakpoint::kStillExecuting:
    case Breakpoint::kExecutionInDoubt:
    case Breakpoint::kResponseLost:
    case Breakpoint::kAckLost:
    case Breakpoint::kOrphanResponse:
    case Breakpoint::kUnknown:
    case Breakpoint::kAwaitingGrace:
      return true;
  }
  return false;
}

bool IsKnown(Action a) {
  switch (a) {
    case Action::kNone:
    case Action::kWait:
    case Action::kResendRequest:
    case Action::kResendResponse:
    case Action::kRelease:
    case Action::kReexecute:
    case Action::kResolve:
    case Action::kAnswerInDoubt:
    case Action::kKeepOrphan:
      return true;
  }
  return false;
}

// Where a rule was broken: a top-level field, optionally an item of it and a
// member of that item, and so on one level further. Rendered only on failure,
// so checking a valid message allocates nothing.
struct Path {
  Path(std::size_t field_index,  // NOLINT: {field} reads best at call sites
       std::optional<std::size_t> item_index = std::nullopt,
       std::string_view member_name = {},
       std::optional<std::size_t> sub_item_index = std::nullopt,
       std::string_view sub_member_name = {})
      : field(field_index),
        item(item_index),
        member(member_name),
        sub_item(sub_item_index),
        sub_member(sub_member_name) {}

  std::size_t field;
  std::optional<std::size_t> item;
  std::string_view member;
  std::optional<std::size_t> sub_item;
  std::string_view sub_member;
};

// Checks the rules of one message, keeping the first broken one.
class Checker {
 public:
  Checker(MessageType type, FieldNames names, const CodecLimits& limits)
      : type_(type), names_(names), limits_(limits) {}

  Status status() && { return std::move(status_); }
  bool ok() const { return status_.ok(); }

  void Fail(const Path& path, std::string_view problem,
            ErrorCode code = ErrorCode::kMalformed) {
    if (!ok()) return;
    std::string text(MessageTypeName(type_));
    text += ": ";
    text += FieldLabel(names_, path.field);
    if (path.item) text += ItemLabel(*path.item);
    if (!path.member.empty()) {
      text += '.';
      text += path.member;
    }
    if (path.sub_item) text += ItemLabel(*path.sub_item);
    if (!path.sub_member.empty()) {
      text += '.';
      text += path.sub_member;
    }
    text += ' ';
    text += problem;
    status_ = Status(code, std::move(text));
  }

  void Require(bool condition, const Path& path, std::string_view problem) {
    if (!condition) Fail(path, problem);
  }

  void AtLeastOne(std::uint64_t v, const Path& path) {
    if (v == 0) Fail(path, "must be >= 1");
  }

  void Length(std::size_t size, std::size_t max, const Path& path) {
    if (size > max) {
      Fail(path,
           "has " + std::to_string(size) + " bytes, limit " +
               std::to_string(max),
           ErrorCode::kTooLarge);
    }
  }

  void Items(std::size_t size, const Path& path) {
    if (size > limits_.max_array_items) {
      Fail(path,
           "has " + std::to_string(size) + " items, limit " +
               std::to_string(limits_.max_array_items),
           ErrorCode::kTooLarge);
    }
  }

  void Id(std::string_view id, const Path& path) {
    Length(id.size(), limits_.max_string_bytes, path);
    if (ok() && !IsValidId(id)) {
      Fail(path, "must be 1.." + std::to_string(kMaxIdBytes) +
                     " printable ASCII bytes (0x21-0x7e)");
    }
  }

  void ServiceName(std::string_view name, const Path& path) {
    Length(name.size(), limits_.max_string_bytes, path);
    if (ok() && !IsValidServiceName(name)) {
      Fail(path, "must be 1.." + std::to_string(kMaxServiceBytes) +
                     " printable ASCII bytes (0x21-0x7e)");
    }
  }

  void Text(std::string_view text, const Path& path) {
    Length(text.size(), std::min(kMaxTextBytes, limits_.max_string_bytes),
           path);
  }

  // Strictly increasing, the first one >= `min`.
  void Seqs(const std::vector<Seq>& seqs, Seq min, const Path& path) {
    Items(seqs.size(), path);
    if (!ok() || seqs.empty()) return;
    if (seqs.front() < min) {
      Fail(path, "must hold only seqs >= " + std::to_string(min));
      return;
    }
    for (std::size_t i = 1; i < seqs.size(); ++i) {
      if (seqs[i] <= seqs[i - 1]) {
        Fail(path, "must be strictly increasing (item " + std::to_string(i) +
                       " is not)");
        return;
      }
    }
  }

  void Vector(const ClientVector& v, std::size_t field, std::size_t item) {
    Length(v.session.size(), limits_.max_string_bytes,
           {field, item, kName<&ClientVector::session>});
    Items(v.pending.size(), {field, item, kName<&ClientVector::pending>});
    Items(v.completed.size(), {field, item, kName<&ClientVector::completed>});
    if (!ok()) return;
    const Status s = v.Validate();
    if (!s.ok()) Fail({field, item}, "is invalid: " + s.message());
  }

  void Vector(const ServerVector& v, std::size_t field, std::size_t item) {
    Length(v.server.size(), limits_.max_string_bytes,
           {field, item, kName<&ServerVector::server>});
    Length(v.session.size(), limits_.max_string_bytes,
           {field, item, kName<&ServerVector::session>});
    Items(v.held.size(), {field, item, kName<&ServerVector::held>});
    if (!ok()) return;
    const Status s = v.Validate();
    if (!s.ok()) Fail({field, item}, "is invalid: " + s.message());
  }

  template <typename V>
  void Vectors(const std::vector<V>& vectors, std::size_t field) {
    Items(vectors.size(), {field});
    for (std::size_t i = 0; i < vectors.size() && ok(); ++i) {
      Vector(vectors[i], field, i);
    }
  }

 private:
  MessageType type_;
  FieldNames names_;
  const CodecLimits& limits_;
  Status status_;
};

// Each message's rules, naming fields through the schema (kIndex, kName).
Status Check(const Hello& m, const CodecLimits& limits) {
  Checker c(MessageType::kHello, kHelloFields, limits);
  constexpr std::size_t services = kIndex<&Hello::services>;
  c.Require(IsKnown(m.role), {kIndex<&Hello::role>},
            "must be 1 (client) or 2 (server)");
  c.Id(m.id, {kIndex<&Hello::id>});
  c.AtLeastOne(m.incarnation, {kIndex<&Hello::incarnation>});
  c.Items(m.services.size(), {services});
  if (m.role == Role::kClient && !m.services.empty()) {
    c.Fail({services}, "must be empty for a client");
  }
  for (std::size_t i = 0; i < m.services.size() && c.ok(); ++i) {
    const ServiceSpec& s = m.services[i];
    c.ServiceName(s.name, {services, i, kName<&ServiceSpec::name>});
    c.AtLeastOne(s.credit, {services, i, kName<&ServiceSpec::credit>});
    c.Require(IsKnown(s.policy), {services, i, kName<&ServiceSpec::policy>},
              "must be 1, 2 or 3");
  }
  if (c.ok() && m.services.size() > 1) {
    std::vector<std::string_view> names;
    names.reserve(m.services.size());
    for (const ServiceSpec& s : m.services) names.push_back(s.name);
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) {
      c.Fail({services}, "names service \"" + std::string(*dup) + "\" twice");
    }
  }
  return std::move(c).status();
}

Status Check(const Welcome& m, const CodecLimits& limits) {
  Checker c(MessageType::kWelcome, kWelcomeFields, limits);
  c.AtLeastOne(m.epoch, {kIndex<&Welcome::epoch>});
  c.AtLeastOne(m.heartbeat_ms, {kIndex<&Welcome::heartbeat_ms>});
  c.AtLeastOne(m.max_message_bytes, {kIndex<&Welcome::max_message_bytes>});
  c.AtLeastOne(m.max_outstanding, {kIndex<&Welcome::max_outstanding>});
  c.Id(m.id, {kIndex<&Welcome::id>});
  return std::move(c).status();
}

Status Check(const Request& m, const CodecLimits& limits) {
  Checker c(MessageType::kRequest, kRequestFields, limits);
  constexpr std::size_t watermark = kIndex<&Request::completed_watermark>;
  c.Id(m.session, {kIndex<&Request::session>});
  c.AtLeastOne(m.seq, {kIndex<&Request::seq>});
  c.ServiceName(m.service, {kIndex<&Request::service>});
  c.AtLeastOne(m.completed_watermark, {watermark});
  c.Require(m.completed_watermark <= m.seq, {watermark},
            "must be <= field 2 (seq)");
  c.Require((m.flags & ~kRequestFlagsMask) == 0, {kIndex<&Request::flags>},
            "has undefined bits set");
  return std::move(c).status();
}

Status Check(const Response& m, const CodecLimits& limits) {
  Checker c(MessageType::kResponse, kResponseFields, limits);
  c.Id(m.session, {kIndex<&Response::session>});
  c.AtLeastOne(m.seq, {kIndex<&Response::seq>});
  c.Require(IsWireCode(m.status), {kIndex<&Response::status>},
            "must be a wire error code (0..18)");
  return std::move(c).status();
}

Status Check(const Ack& m, const CodecLimits& limits) {
  Checker c(MessageType::kAck, kAckFields, limits);
  c.Id(m.session, {kIndex<&Ack::session>});
  c.AtLeastOne(m.completed_watermark, {kIndex<&Ack::completed_watermark>});
  c.Seqs(m.seqs, m.completed_watermark, {kIndex<&Ack::seqs>});
  return std::move(c).status();
}

Status Check(const Heartbeat&, const CodecLimits&) { return Status::Ok(); }

// STATE_EXCHANGE and PROBE_REPLY carry one vector for a client, none or (a
// reply) one for a server.
template <typename M>
void CheckVectors(Checker& c, const M& m, std::size_t clients,
                  std::size_t servers, bool one_server) {
  if (m.role == Role::kClient) {
    c.Require(m.clients.size() == 1, {clients},
              "must hold exactly one vector for a client");
    c.Require(m.servers.empty(), {servers}, "must be empty for a client");
  } else if (m.role == Role::kServer) {
    c.Require(m.clients.empty(), {clients}, "must be empty for a server");
    if (one_server) {
      c.Require(m.servers.size() == 1, {servers},
                "must hold exactly one vector for a server");
    }
  }
  c.Vectors(m.clients, clients);
  c.Vectors(m.servers, servers);
}

Status Check(const StateExchange& m, const CodecLimits& limits) {
  Checker c(MessageType::kStateExchange, kStateExchangeFields, limits);
  c.Require(IsKnown(m.role), {kIndex<&StateExchange::role>},
            "must be 1 (client) or 2 (server)");
  CheckVectors(c, m, kIndex<&StateExchange::clients>,
               kIndex<&StateExchange::servers>, /*one_server=*/false);
  return std::move(c).status();
}

Status Check(const Recover& m, const CodecLimits& limits) {
  Checker c(MessageType::kRecover, kRecoverFields, limits);
  constexpr std::size_t sessions = kIndex<&Recover::sessions>;
  constexpr std::string_view ops = kName<&RecoverSession::ops>;
  constexpr std::string_view seq = kName<&OpDecision::seq>;
  c.AtLeastOne(m.epoch, {kIndex<&Recover::epoch>});
  c.Items(m.sessions.size(), {sessions});
  for (std::size_t i = 0; i < m.sessions.size() && c.ok(); ++i) {
    const RecoverSession& s = m.sessions[i];
    c.Id(s.session, {sessions, i, kName<&RecoverSession::session>});
    c.AtLeastOne(s.release_below,
                 {sessions, i, kName<&RecoverSession::release_below>});
    c.Items(s.ops.size(), {sessions, i, ops});
    Seq previous = 0;
    for (std::size_t j = 0; j < s.ops.size() && c.ok(); ++j) {
      const OpDecision& op = s.ops[j];
      c.AtLeastOne(op.seq, {sessions, i, ops, j, seq});
      c.Require(op.seq > previous, {sessions, i, ops, j, seq},
                "must be greater than the previous op's seq");
      c.Require(IsKnown(op.breakpoint),
                {sessions, i, ops, j, kName<&OpDecision::breakpoint>},
                "must be 0..8");
      c.Require(IsKnown(op.action),
                {sessions, i, ops, j, kName<&OpDecision::action>},
                "must be 0..8");
      previous = op.seq;
    }
  }
  return std::move(c).status();
}

Status Check(const Probe& m, const CodecLimits& limits) {
  Checker c(MessageType::kProbe, kProbeFields, limits);
  constexpr std::size_t seqs = kIndex<&Probe::seqs>;
  c.Id(m.session, {kIndex<&Probe::session>});
  c.Require(!m.seqs.empty(), {seqs}, "must not be empty");
  c.Seqs(m.seqs, 1, {seqs});
  return std::move(c).status();
}

Status Check(const ProbeReply& m, const CodecLimits& limits) {
  Checker c(MessageType::kProbeReply, kProbeReplyFields, limits);
  c.Require(IsKnown(m.role), {kIndex<&ProbeReply::role>},
            "must be 1 (client) or 2 (server)");
  CheckVectors(c, m, kIndex<&ProbeReply::clients>, kIndex<&ProbeReply::servers>,
               /*one_server=*/true);
  return std::move(c).status();
}

Status Check(const Error& m, const CodecLimits& limits) {
  Checker c(MessageType::kError, kErrorFields, limits);
  c.Require(IsWireCode(m.code) && m.code != ErrorCode::kOk,
            {kIndex<&Error::code>},
            "must be a wire error code other than 0 (ok)");
  c.Text(m.message, {kIndex<&Error::message>});
  if (!m.session.empty()) c.Id(m.session, {kIndex<&Error::session>});
  return std::move(c).status();
}

Status Check(const Goodbye& m, const CodecLimits& limits) {
  Checker c(MessageType::kGoodbye, kGoodbyeFields, limits);
  c.Text(m.reason, {kIndex<&Goodbye::reason>});
  if (!m.id.empty()) c.Id(m.id, {kIndex<&Goodbye::id>});
  return std::move(c).status();
}

// ---------------------------------------------------------------------------
// The four-byte prefix.

std::string_view AsChars(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Checks size, signature, version and type byte, in that order.
Result<MessageType> CheckPrefix(std::string_view header) {
  if (header.size() < kPrefixBytes) {
    return Status(ErrorCode::kMalformed, "header frame has " +
                                             std::to_string(header.size()) +
                                             " bytes, needs at least 4");
  }
  if (header[0] != kSignature0 || header[1] != kSignature1) {
    return Status(ErrorCode::kMalformed, "header frame lacks the RJ signature");
  }
  const auto version = static_cast<std::uint8_t>(header[2]);
  if (version != kProtocolVersion) {
    return Status(
        ErrorCode::kUnsupportedVersion,
        "protocol version " + std::to_string(version) + ", this peer speaks 1");
  }
  const auto type = static_cast<MessageType>(header[3]);
  switch (type) {
    case MessageType::kHello:
    case MessageType::kWelcome:
    case MessageType::kRequest:
    case MessageType::kResponse:
    case MessageType::kAck:
    case MessageType::kHeartbeat:
    case MessageType::kStateExchange:
    case MessageType::kRecover:
    case MessageType::kProbe:
    case MessageType::kProbeReply:
    case MessageType::kError:
    case MessageType::kGoodbye:
      return type;
  }
  return Status(ErrorCode::kUnknownType,
                "message type " +
                    std::to_string(static_cast<std::uint8_t>(header[3])) +
                    " is not defined in protocol version 1");
}

// Strings in the unpacked tree point into the frame instead of being copied
// into the zone: the decoder copies each one exactly once, into the struct.
bool ReferenceFrame(msgpack::type::object_type, std::size_t, void*) {
  return true;
}

// Unpacks exactly one msgpack object spanning all of `body`.
Result<msgpack::object> Unpack(MessageType type, std::string_view body,
                               const CodecLimits& limits, msgpack::zone& zone) {
  // Each array item takes at least one byte, so an array announcing more
  // items than the body has bytes is cut short; capping the limit there also
  // keeps msgpack from reserving memory for items that cannot exist.
  const bool items_capped_by_size = body.size() < limits.max_array_items;
  const std::size_t max_items =
      items_capped_by_size ? body.size() : limits.max_array_items;
  // v1 has no maps, bin or ext: any non-empty one is refused while parsing,
  // an empty one by the type checks.
  const msgpack::unpack_limit limit(max_items, /*map=*/0,
                                    limits.max_string_bytes, /*bin=*/0,
                                    /*ext=*/0, kMaxDepth);
  // Built only on failure: the success path allocates nothing but the zone.
  auto fail = [type](ErrorCode code, std::string_view what) {
    std::string text(MessageTypeName(type));
    text += ": ";
    text += what;
    return Status(code, std::move(text));
  };
  std::size_t offset = 0;
  bool referenced = false;
  msgpack::object root;
  try {
    root = msgpack::unpack(zone, body.data(), body.size(), offset, referenced,
                           &ReferenceFrame, nullptr, limit);
  } catch (const msgpack::array_size_overflow&) {
    if (items_capped_by_size) {
      return fail(ErrorCode::kMalformed,
                  "an array announces more items than remain");
    }
    return fail(ErrorCode::kTooLarge,
                "an array has more than " +
                    std::to_string(limits.max_array_items) + " items");
  } catch (const msgpack::str_size_overflow&) {
    return fail(ErrorCode::kTooLarge,
                "a str is longer than " +
                    std::to_string(limits.max_string_bytes) + " bytes");
  } catch (const msgpack::depth_size_overflow&) {
    return fail(ErrorCode::kMalformed,
                "arrays nested deeper than any v1 message");
  } catch (const msgpack::map_size_overflow&) {
    return fail(ErrorCode::kMalformed, "v1 headers hold no maps");
  } catch (const msgpack::bin_size_overflow&) {
    return fail(ErrorCode::kMalformed, "v1 headers hold no bin");
  } catch (const msgpack::ext_size_overflow&) {
    return fail(ErrorCode::kMalformed, "v1 headers hold no ext");
  } catch (const msgpack::insufficient_bytes&) {
    return fail(ErrorCode::kMalformed, "msgpack body is truncated");
  } catch (const msgpack::unpack_error& e) {
    return fail(ErrorCode::kMalformed,
                std::string("msgpack body does not parse (") + e.what() + ")");
  }
  if (offset != body.size()) {
    return fail(ErrorCode::kMalformed, std::to_string(body.size() - offset) +
                                           " bytes follow the msgpack body");
  }
  return root;
}

Result<Message> Decode(std::string_view header, std::size_t frame_count,
                       std::size_t payload_bytes, const CodecLimits& limits,
                       bool flat) {
  Result<MessageType> type = CheckPrefix(header);
  if (!type.ok()) return type.status();
  const std::string_view name = MessageTypeName(*type);
  const bool has_payload = HasPayloadFrame(*type);
  const std::size_t expected_frames = has_payload ? 2 : 1;
  if (frame_count != expected_frames) {
    return Status(ErrorCode::kMalformed, std::string(name) + ": arrived in " +
                                             std::to_string(frame_count) +
                                             " frames, must be " +
                                             std::to_string(expected_frames));
  }
  if (header.size() > limits.max_header_bytes) {
    return Status(ErrorCode::kTooLarge,
                  std::string(name) + ": header frame has " +
                      std::to_string(header.size()) + " bytes, limit " +
                      std::to_string(limits.max_header_bytes));
  }
  if (has_payload && payload_bytes > limits.max_payload_bytes) {
    return Status(ErrorCode::kTooLarge,
                  std::string(name) + ": payload frame has " +
                      std::to_string(payload_bytes) + " bytes, limit " +
                      std::to_string(limits.max_payload_bytes));
  }

  const std::string_view body = header.substr(kPrefixBytes);
  // REQUEST and RESPONSE, two per operation, take the direct path when they
  // are encoded as EncodeHeader encodes them (codec_flat.h).
  std::optional<Message> direct;
  if (flat) direct = codec_internal::DecodeFlat(*type, body, limits);
  Result<Message> message = Status(ErrorCode::kMalformed, "");
  if (direct) {
    message = std::move(*direct);
  } else {
    msgpack::zone zone(kZoneChunkBytes);
    Result<msgpack::object> root = Unpack(*type, body, limits, zone);
    if (!root.ok()) return root.status();
    message = ReadMessage(*type, *root);
    if (!message.ok()) return message;
  }
  Status valid = ValidateMessage(*message, limits);
  if (!valid.ok()) return valid;

  if (const auto* response = std::get_if<Response>(&*message)) {
    if (payload_bytes != 0 && response->status != ErrorCode::kOk &&
        response->status != ErrorCode::kHandlerFailed) {
      return Status(ErrorCode::kMalformed,
                    "RESPONSE: payload frame must be empty for status " +
                        std::string(ErrorCodeName(response->status)));
    }
  }
  return message;
}

}  // namespace

Status ValidateMessage(const Message& m, const CodecLimits& limits) {
  return std::visit([&limits](const auto& body) { return Check(body, limits); },
                    m);
}

void EncodeHeader(const Message& m, std::string& out) {
  out.push_back(kSignature0);
  out.push_back(kSignature1);
  out.push_back(static_cast<char>(kProtocolVersion));
  out.push_back(static_cast<char>(TypeOf(m)));
  StringSink sink(out);
  Packer pk(sink);
  // REQUEST and RESPONSE, two per operation, without the visit's call.
  if (const auto* request = std::get_if<Request>(&m)) {
    PackBody(pk, *request);
  } else if (const auto* response = std::get_if<Response>(&m)) {
    PackBody(pk, *response);
  } else {
    std::visit([&pk](const auto& body) { PackBody(pk, body); }, m);
  }
}

std::string EncodeHeader(const Message& m) {
  std::string out;
  out.reserve(64);
  EncodeHeader(m, out);
  return out;
}

Result<MessageType> PeekType(std::span<const std::byte> header) {
  return CheckPrefix(AsChars(header));
}

Result<Message> DecodeHeader(std::span<const std::byte> header,
                             std::size_t frame_count, std::size_t payload_bytes,
                             const CodecLimits& limits) {
  return Decode(AsChars(header), frame_count, payload_bytes, limits,
                /*flat=*/true);
}

Result<Message> DecodeHeader(std::string_view header, std::size_t frame_count,
                             std::size_t payload_bytes,
                             const CodecLimits& limits) {
  return Decode(header, frame_count, payload_bytes, limits, /*flat=*/true);
}

namespace codec_internal {

Result<Message> DecodeGeneral(std::string_view header, std::size_t frame_count,
                              std::size_t payload_bytes,
                              const CodecLimits& limits) {
  return Decode(header, frame_count, payload_bytes, limits, /*flat=*/false);
}

}  // namespace codec_internal

}  // namespace rejoin
