#include "daemon/ac_session.h"

#include <string>

#include "daemon/wiring.h"
#include "kgr/clock.h"

namespace kgr {

StatusOr<std::unique_ptr<AcSession>> AcSession::Open(const AcOptions& o) {
  std::unique_ptr<AcSession> x(new AcSession());
  const BrokerOptions& b = o.broker;
  KGR_ASSIGN_OR_RETURN(x->cms_,
                       CmsEndpoint::Load(b.ca_file, b.cert_file, b.key_file));
  KGR_ASSIGN_OR_RETURN(Bytes ks_der, LoadCertificateDer(o.ks_cert_file));
  KGR_ASSIGN_OR_RETURN(x->transport_, OpenTransport(b, ""));
  x->client_ =
      std::make_unique<AcClient>(*x->transport_, *x->cms_, std::move(ks_der),
                                 *SystemClock(), o.topic_prefix);
  AcSession* self = x.get();
  x->transport_->SetHandler([self](const std::string& t, Bytes p) {
    self->loop_.Post(
        [self, t, p = std::move(p)] { self->client_->HandleMessage(t, p); });
  });
  KGR_RETURN_IF_ERROR(x->transport_->Connect());
  KGR_RETURN_IF_ERROR(x->client_->Start());
  x->timeout_ms_ = o.timeout_ms;
  return x;
}

AcSession::~AcSession() {
  if (transport_) (void)transport_->Disconnect();
}

Status AcSession::Wait(const bool& done) {
  if (!loop_.RunUntil([&] { return done; }, nullptr, timeout_ms_)) {
    return DeadlineExceededError("the key server did not answer within " +
                                 std::to_string(timeout_ms_) + " ms");
  }
  return OkStatus();
}

}  // namespace kgr
