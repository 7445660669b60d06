// One client session's commands (FLOWS.md §3, client side): calls queued by
// application threads go to the core, which journals them PREPARED and
// queues them for the socket; Collect, Forget and ListOperations read the
// journal through it.
#include <string>
#include <utility>

#include "client_impl.h"
#include "overloaded.h"

namespace rejoin {

using client_internal::CallCommand;
using client_internal::CollectCommand;
using client_internal::Command;
using client_internal::ForgetCommand;
using client_internal::ListCommand;
using client_internal::Overloaded;
using client_internal::Waiter;

void Client::Impl::HandleCommand(Command& c) {
  std::visit(Overloaded{
                 [&](CallCommand& call) { HandleCall(call); },
                 [&](CollectCommand& collect) { HandleCollect(collect); },
                 [&](ForgetCommand& forget) {
                   forget_replies_.emplace_back(std::move(forget.done),
                                                core_.Forget(forget.seq));
                 },
                 [&](ListCommand& list) { list.done->set_value(core_.List()); },
             },
             c);
}

void Client::Impl::HandleCall(CallCommand& c) {
  Waiter w;
  w.id = core_.NewWaiterId();
  w.callback = std::move(c.callback);
  w.deadline = c.deadline;
  core_.Call(c.seq, std::move(c.service), std::move(c.payload), std::move(w));
  FailWaitersIfShutOut();
}

void Client::Impl::HandleCollect(CollectCommand& c) {
  Waiter w;
  w.id = core_.NewWaiterId();
  w.callback = std::move(c.callback);
  w.deadline = c.deadline;
  core_.Collect(c.seq, std::move(w));
  FailWaitersIfShutOut();
}

}  // namespace rejoin
