// The MQTT transport of a daemon or AC session, from its broker options.
#include "daemon/wiring.h"
#include "kgr/cli.h"
#include "kgr/mqtt.h"

namespace kgr {

StatusOr<std::unique_ptr<Transport>> OpenTransport(const BrokerOptions& b,
                                                   const std::string& client_id,
                                                   bool clean_session) {
  MqttOptions mo;
  KGR_RETURN_IF_ERROR(SplitHostPort(b.address, &mo.host, &mo.port));
  mo.ca_file = b.ca_file;
  mo.cert_file = b.cert_file;
  mo.key_file = b.key_file;
  mo.client_id = client_id;
  mo.client = b.client;
  mo.qos = b.qos;
  mo.clean_session = clean_session;
  return NewMqttTransport(mo);
}

}  // namespace kgr
