// The wire schema of protocol v1 (PROTOCOL.md §4-5): every message and
// nested struct as its fields in wire order, each a name and the member it
// travels in. This is the one place the fields are written: the encoder packs
// and the decoder reads by walking it (codec.cpp), the error paths take their
// names from it, and the semantic checks name fields by the same indices.
// The direct REQUEST/RESPONSE decoder (codec_flat.cpp) is tested against
// the decoder this drives.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "rejoin/proto/messages.h"

namespace rejoin::codec_internal {

template <typename S, typename M>
struct FieldDef {
  using Struct = S;
  using Member = M;
  std::string_view name;
  M S::*member;
};

template <typename S, typename M>
constexpr FieldDef<S, M> F(std::string_view name, M S::*member) {
  return {name, member};
}

// Specialised below for every struct on the wire.
template <typename S>
struct Schema;

template <>
struct Schema<ServiceSpec> {
  static constexpr auto fields = std::make_tuple(
      F("name", &ServiceSpec::name), F("credit", &ServiceSpec::credit),
      F("idempotent", &ServiceSpec::idempotent),
      F("policy", &ServiceSpec::policy));
};

template <>
struct Schema<ClientVector> {
  static constexpr auto fields = std::make_tuple(
      F("session", &ClientVector::session),
      F("incarnation", &ClientVector::incarnation),
      F("journal_id", &ClientVector::journal_id),
      F("next_seq", &ClientVector::next_seq),
      F("completed_watermark", &ClientVector::completed_watermark),
      F("pending", &ClientVector::pending),
      F("completed", &ClientVector::completed));
};

template <>
struct Schema<HeldOp> {
  static constexpr auto fields =
      std::make_tuple(F("seq", &HeldOp::seq), F("state", &HeldOp::state),
                      F("received_incarnation", &HeldOp::received_incarnation));
};

template <>
struct Schema<ServerVector> {
  static constexpr auto fields = std::make_tuple(
      F("server", &ServerVector::server),
      F("incarnation", &ServerVector::incarnation),
      F("journal_id", &ServerVector::journal_id),
      F("session", &ServerVector::session),
      F("released_watermark", &ServerVector::released_watermark),
      F("held", &ServerVector::held));
};

template <>
struct Schema<OpDecision> {
  static constexpr auto fields = std::make_tuple(
      F("seq", &OpDecision::seq), F("breakpoint", &OpDecision::breakpoint),
      F("action", &OpDecision::action));
};

template <>
struct Schema<RecoverSession> {
  static constexpr auto fields =
      std::make_tuple(F("session", &RecoverSession::session),
                      F("release_below", &RecoverSession::release_below),
                      F("ops", &RecoverSession::ops));
};

template <>
struct Schema<Hello> {
  static constexpr auto fields = std::make_tuple(
      F("role", &Hello::role), F("id", &Hello::id),
      F("incarnation", &Hello::incarnation),
      F("journal_id", &Hello::journal_id), F("last_epoch", &Hello::last_epoch),
      F("services", &Hello::services));
};

template <>
struct Schema<Welcome> {
  static constexpr auto fields = std::make_tuple(
      F("epoch", &Welcome::epoch), F("heartbeat_ms", &Welcome::heartbeat_ms),
      F("max_message_bytes", &Welcome::max_message_bytes),
      F("max_outstanding", &Welcome::max_outstanding),
      F("grace_ms", &Welcome::grace_ms), F("id", &Welcome::id));
};

template <>
struct Schema<Request> {
  static constexpr auto fields = std::make_tuple(
      F("session", &Request::session), F("seq", &Request::seq),
      F("service", &Request::service),
      F("completed_watermark", &Request::completed_watermark),
      F("deadline_ms", &Request::deadline_ms), F("flags", &Request::flags));
};

template <>
struct Schema<Response> {
  static constexpr auto fields =
      std::make_tuple(F("session", &Response::session),
                      F("seq", &Response::seq), F("status", &Response::status));
};

template <>
struct Schema<Ack> {
  static constexpr auto fields =
      std::make_tuple(F("session", &Ack::session),
                      F("completed_watermark", &Ack::completed_watermark),
                      F("seqs", &Ack::seqs));
};

template <>
struct Schema<Heartbeat> {
  static constexpr auto fields = std::make_tuple(F("epoch", &Heartbeat::epoch));
};

template <>
struct Schema<StateExchange> {
  static constexpr auto fields = std::make_tuple(
      F("role", &StateExchange::role), F("clients", &StateExchange::clients),
      F("servers", &StateExchange::servers), F("last", &StateExchange::last));
};

template <>
struct Schema<Recover> {
  static constexpr auto fields = std::make_tuple(
      F("epoch", &Recover::epoch), F("sessions", &Recover::sessions));
};

template <>
struct Schema<Probe> {
  static constexpr auto fields =
      std::make_tuple(F("probe_id", &Probe::probe_id),
                      F("session", &Probe::session), F("seqs", &Probe::seqs));
};

template <>
struct Schema<ProbeReply> {
  static constexpr auto fields = std::make_tuple(
      F("probe_id", &ProbeReply::probe_id), F("role", &ProbeReply::role),
      F("clients", &ProbeReply::clients), F("servers", &ProbeReply::servers));
};

template <>
struct Schema<Error> {
  static constexpr auto fields =
      std::make_tuple(F("code", &Error::code), F("message", &Error::message),
                      F("ref_type", &Error::ref_type),
                      F("session", &Error::session), F("seq", &Error::seq));
};

template <>
struct Schema<Goodbye> {
  static constexpr auto fields =
      std::make_tuple(F("reason", &Goodbye::reason), F("id", &Goodbye::id));
};

// The number of fields: the arity every encoding of S has on the wire.
template <typename S>
inline constexpr std::size_t kArity =
    std::tuple_size_v<std::remove_cv_t<decltype(Schema<S>::fields)>>;

// The field names of S in wire order.
template <typename S>
inline constexpr std::array<std::string_view, kArity<S>> kFieldNames =
    std::apply(
        [](const auto&... f) {
          return std::array<std::string_view, kArity<S>>{f.name...};
        },
        Schema<S>::fields);

// The member pointer of field I of S, as a constant.
template <typename S, std::size_t I>
inline constexpr auto kMember = std::get<I>(Schema<S>::fields).member;

// Calls fn(m.*member) for every field of S, in wire order; the member
// pointers are constants, so this compiles to the hand-written sequence.
template <typename S, typename M, typename Fn, std::size_t... I>
constexpr void ForEachMemberImpl(M& m, Fn& fn, std::index_sequence<I...>) {
  (fn(m.*kMember<S, I>), ...);
}
template <typename S, typename M, typename Fn>
constexpr void ForEachMember(M& m, Fn&& fn) {
  ForEachMemberImpl<S>(m, fn, std::make_index_sequence<kArity<S>>{});
}

// Calls fn(field definition) for every field of S, in wire order.
template <typename S, typename Fn>
constexpr void ForEachField(Fn&& fn) {
  std::apply([&fn](const auto&... f) { (fn(f), ...); }, Schema<S>::fields);
}

// The struct a member pointer belongs to.
template <auto Member>
struct MemberOf;
template <typename S, typename M, M S::*P>
struct MemberOf<P> {
  using Struct = S;
};

template <auto Member>
constexpr std::size_t IndexOf() {
  using S = typename MemberOf<Member>::Struct;
  std::size_t index = kArity<S>;
  std::size_t i = 0;
  ForEachField<S>([&index, &i](const auto& f) {
    if constexpr (std::is_same_v<decltype(f.member), decltype(Member)>) {
      if (f.member == Member) index = i;
    }
    ++i;
  });
  return index;
}

// A member's position on the wire (from 0) and its name: the semantic checks
// name fields through these, never by a number or a string of their own.
template <auto Member>
inline constexpr std::size_t kIndex = IndexOf<Member>();
template <auto Member>
inline constexpr std::string_view kName =
    kFieldNames<typename MemberOf<Member>::Struct>[kIndex<Member>];

}  // namespace rejoin::codec_internal
