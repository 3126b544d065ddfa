#include "kgr/cms.h"

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kgr/crypto.h"

namespace kgr {
namespace {

// Test PKI built with the OpenSSL API (no external files or tools).

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using CmsPtr = std::unique_ptr<CMS_ContentInfo,
                               Free<CMS_ContentInfo, CMS_ContentInfo_free>>;
void FreeCerts(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using CertsPtr =
    std::unique_ptr<STACK_OF(X509), Free<STACK_OF(X509), FreeCerts>>;

struct Identity {
  KeyPtr key;
  X509Ptr cert;
};

Bytes ToBytes(const SecretBytes& s) {
  return Bytes(s.span().begin(), s.span().end());
}

KeyPtr NewKey() { return KeyPtr(EVP_EC_gen("P-256")); }

void AddExt(X509* c, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, ctx, nid, const_cast<char*>(value));
  ASSERT_NE(ext, nullptr) << OBJ_nid2sn(nid);
  ASSERT_EQ(X509_add_ext(c, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

// A v3 certificate for `key` named /O=kgr/OU=ou/CN=cn, issued by `issuer`
// (self-signed when null), valid from now+from_s to now+to_s seconds.
Identity Issue(const std::string& ou, const std::string& cn,
               const Identity* issuer, bool ca, long from_s = -3600,
               long to_s = 86400) {
  static long serial = 1;
  Identity id;
  id.key = NewKey();
  EXPECT_TRUE(id.key);
  id.cert.reset(X509_new());
  X509* c = id.cert.get();
  EXPECT_EQ(X509_set_version(c, 2), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_NAME* name = X509_get_subject_name(c);
  auto add = [&](const char* field, const std::string& v) {
    EXPECT_EQ(X509_NAME_add_entry_by_txt(
                  name, field, MBSTRING_ASC,
                  reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1, 0),
              1);
  };
  add("O", "kgr");
  add("OU", ou);
  add("CN", cn);
  X509* issuer_cert = issuer ? issuer->cert.get() : c;
  EVP_PKEY* issuer_key = issuer ? issuer->key.get() : id.key.get();
  EXPECT_EQ(X509_set_issuer_name(c, X509_get_subject_name(issuer_cert)), 1);
  X509_gmtime_adj(X509_getm_notBefore(c), from_s);
  X509_gmtime_adj(X509_getm_notAfter(c), to_s);
  EXPECT_EQ(X509_set_pubkey(c, id.key.get()), 1);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer_cert, c, nullptr, nullptr, 0);
  AddExt(c, &ctx, NID_subject_key_identifier, "hash");
  if (ca) {
    AddExt(c, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    AddExt(c, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(c, &ctx, NID_authority_key_identifier, "keyid");
    AddExt(c, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(c, &ctx, NID_key_usage, "critical,digitalSignature");
    AddExt(c, &ctx, NID_ext_key_usage, "clientAuth");
  }
  EXPECT_GT(X509_sign(c, issuer_key, EVP_sha256()), 0);
  return id;
}

void WritePem(const std::string& path, X509* cert) {
  BioPtr b(BIO_new_file(path.c_str(), "w"));
  ASSERT_TRUE(b);
  ASSERT_EQ(PEM_write_bio_X509(b.get(), cert), 1);
}

void WriteKey(const std::string& path, EVP_PKEY* key,
              const char* passphrase = nullptr) {
  BioPtr b(BIO_new_file(path.c_str(), "w"));
  ASSERT_TRUE(b);
  if (passphrase == nullptr) {
    ASSERT_EQ(PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0,
                                       nullptr, nullptr),
              1);
  } else {
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(
                  b.get(), key, EVP_aes_256_cbc(), passphrase,
                  static_cast<int>(strlen(passphrase)), nullptr, nullptr),
              1);
  }
}

Bytes Der(X509* c) {
  int n = i2d_X509(c, nullptr);
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_X509(c, &p);
  return der;
}

Bytes CmsDer(CMS_ContentInfo* cms) {
  int n = i2d_CMS_ContentInfo(cms, nullptr);
  EXPECT_GT(n, 0);
  if (n <= 0) return {};
  Bytes der(static_cast<size_t>(n));
  uint8_t* p = der.data();
  i2d_CMS_ContentInfo(cms, &p);
  return der;
}

// An attacker's (or another implementation's) message built directly with
// OpenSSL: optionally signed by `signer`, then encrypted with `cipher`.
struct ForgeOptions {
  bool sign = true;
  unsigned sign_flags = CMS_BINARY;
  X509* extra_cert = nullptr;  // added to the SignedData certificates
  const EVP_CIPHER* cipher = EVP_aes_256_gcm();
};
Bytes Forge(const Identity& signer, std::span<const uint8_t> content,
            X509* recipient, const ForgeOptions& o = {}) {
  Bytes inner(content.begin(), content.end());
  if (o.sign) {
    BioPtr in(
        BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
    CertsPtr extra(sk_X509_new_null());
    if (o.extra_cert != nullptr) {
      X509_up_ref(o.extra_cert);
      sk_X509_push(extra.get(), o.extra_cert);
    }
    CmsPtr sd(CMS_sign(signer.cert.get(), signer.key.get(), extra.get(),
                       in.get(), o.sign_flags));
    EXPECT_TRUE(sd);
    if (!sd) return {};
    inner = CmsDer(sd.get());
  }
  BioPtr in(BIO_new_mem_buf(inner.data(), static_cast<int>(inner.size())));
  CertsPtr recips(sk_X509_new_null());
  X509_up_ref(recipient);
  sk_X509_push(recips.get(), recipient);
  CmsPtr env(CMS_encrypt(recips.get(), in.get(), o.cipher, CMS_BINARY));
  EXPECT_TRUE(env);
  if (!env) return {};
  return CmsDer(env.get());
}

class CmsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/kgr_cms_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    ca_ = new Identity(Issue("kgr-ca", "ked-ca", nullptr, true));
    ac_ = new Identity(Issue("kgr-ac", "ac", ca_, false));
    ks_ = new Identity(Issue("kgr-ks", "ks", ca_, false));
    node_ = new Identity(Issue("kgr-node", "n0000002a", ca_, false));
    expired_ =
        new Identity(Issue("kgr-ac", "ac", ca_, false, -2 * 86400, -86400));
    rogue_ca_ = new Identity(Issue("kgr-ca", "ked-ca", nullptr, true));
    rogue_ = new Identity(Issue("kgr-ac", "ac", rogue_ca_, false));
    WritePem(Path("ca.crt"), ca_->cert.get());
    WritePem(Path("rogue-ca.crt"), rogue_ca_->cert.get());
    for (auto [name, id] :
         {std::pair{"ac", ac_}, std::pair{"ks", ks_}, std::pair{"node", node_},
          std::pair{"expired", expired_}, std::pair{"rogue", rogue_}}) {
      WritePem(Path(std::string(name) + ".crt"), id->cert.get());
      WriteKey(Path(std::string(name) + ".key"), id->key.get());
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    for (Identity* id : {ca_, ac_, ks_, node_, expired_, rogue_ca_, rogue_}) {
      delete id;
    }
    delete dir_;
  }
  static std::string Path(const std::string& name) {
    return *dir_ + "/" + name;
  }

  static std::unique_ptr<CmsEndpoint> LoadOrDie(const std::string& who) {
    auto e = CmsEndpoint::Load(Path("ca.crt"), Path(who + ".crt"),
                               Path(who + ".key"));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(*e) : nullptr;
  }

  void SetUp() override {
    ac = LoadOrDie("ac");
    ks = LoadOrDie("ks");
    ASSERT_TRUE(ac && ks);
  }

  static void ExpectVerificationFailed(
      const StatusOr<std::pair<SecretBytes, CmsPeer>>& r) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), kVerificationFailed);
  }

  static inline std::string* dir_;
  static inline Identity *ca_, *ac_, *ks_, *node_, *expired_, *rogue_ca_,
      *rogue_;
  std::unique_ptr<CmsEndpoint> ac, ks;
  const Bytes content_ =
      Bytes(AsBytes("NTAG=0123456789abcdef; authorize n2a").begin(),
            AsBytes("NTAG=0123456789abcdef; authorize n2a").end());
};

TEST_F(CmsTest, RoundTripAcToKs) {
  auto sealed = ac->SignAndEncrypt(content_, ks->certificate_der());
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  auto opened = ks->DecryptAndVerify(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(ToBytes(opened->first), content_);
  EXPECT_EQ(opened->second.common_name, "ac");
  EXPECT_EQ(opened->second.organizational_unit, "kgr-ac");
  EXPECT_EQ(opened->second.certificate_der, ac->certificate_der());
  EXPECT_EQ(ac->common_name(), "ac");
}

TEST_F(CmsTest, RoundTripKsToAcUsingTheVerifiedPeerCertificate) {
  auto request = ks->DecryptAndVerify(
      *ac->SignAndEncrypt(content_, ks->certificate_der()));
  ASSERT_TRUE(request.ok());
  Bytes answer = {0, 1, 2, 3, 0xff};
  auto sealed = ks->SignAndEncrypt(answer, request->second.certificate_der);
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  auto opened = ac->DecryptAndVerify(*sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(ToBytes(opened->first), answer);
  EXPECT_EQ(opened->second.common_name, "ks");
  EXPECT_EQ(opened->second.organizational_unit, "kgr-ks");
}

TEST_F(CmsTest, EmptyAndLargeContent) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100000}}) {
    Bytes content(n);
    for (size_t i = 0; i < n; ++i) content[i] = static_cast<uint8_t>(i * 31);
    auto sealed = ac->SignAndEncrypt(content, ks->certificate_der());
    ASSERT_TRUE(sealed.ok()) << n << ": " << sealed.status().ToString();
    auto opened = ks->DecryptAndVerify(*sealed);
    ASSERT_TRUE(opened.ok()) << n << ": " << opened.status().ToString();
    EXPECT_EQ(ToBytes(opened->first), content) << n;
  }
}

TEST_F(CmsTest, FormatIsGcmAuthEnvelopedDataWithSha256Kdf) {
  auto sealed = ac->SignAndEncrypt(content_, ks->certificate_der());
  ASSERT_TRUE(sealed.ok());
  // The plaintext is nowhere in the message.
  EXPECT_EQ(std::search(sealed->begin(), sealed->end(), content_.begin(),
                        content_.end()),
            sealed->end());
  const uint8_t* p = sealed->data();
  CmsPtr cms(
      d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(sealed->size())));
  ASSERT_TRUE(cms);
  EXPECT_EQ(OBJ_obj2nid(CMS_get0_type(cms.get())),
            NID_id_smime_ct_authEnvelopedData);
  STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(cms.get());
  ASSERT_EQ(sk_CMS_RecipientInfo_num(ris), 1);
  CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(ris, 0);
  ASSERT_EQ(CMS_RecipientInfo_type(ri), CMS_RECIPINFO_AGREE);
  X509_ALGOR* alg = nullptr;
  ASSERT_EQ(CMS_RecipientInfo_kari_get0_alg(ri, &alg, nullptr), 1);
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
  EXPECT_EQ(OBJ_obj2nid(oid), NID_dhSinglePass_stdDH_sha256kdf_scheme);
}

TEST_F(CmsTest, ForeignOpenSslMessageFromTheRealAcIsAccepted) {
  // Shows that Forge builds valid messages, so the rejections below are due
  // to what each one changes.
  auto opened = ks->DecryptAndVerify(Forge(*ac_, content_, ks_->cert.get()));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(ToBytes(opened->first), content_);
  EXPECT_EQ(opened->second.organizational_unit, "kgr-ac");
}

TEST_F(CmsTest, SignerFromAnotherCaIsRejected) {
  // Same subject as the AC, issued by a rogue CA; also with the rogue CA
  // certificate shipped in the message.
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*rogue_, content_, ks_->cert.get())));
  ForgeOptions o;
  o.extra_cert = rogue_ca_->cert.get();
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*rogue_, content_, ks_->cert.get(), o)));
  // A self-signed certificate cannot sign either.
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*rogue_ca_, content_, ks_->cert.get())));
}

TEST_F(CmsTest, ExpiredSignerIsRejected) {
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*expired_, content_, ks_->cert.get())));
}

TEST_F(CmsTest, OtherShapesAreRejected) {
  ForgeOptions cbc;
  cbc.cipher = EVP_aes_256_cbc();  // EnvelopedData, not AuthEnvelopedData
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*ac_, content_, ks_->cert.get(), cbc)));
  ForgeOptions unsigned_inner;
  unsigned_inner.sign = false;
  ExpectVerificationFailed(ks->DecryptAndVerify(
      Forge(*ac_, content_, ks_->cert.get(), unsigned_inner)));
  ForgeOptions no_cert;
  no_cert.sign_flags = CMS_BINARY | CMS_NOCERTS;
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*ac_, content_, ks_->cert.get(), no_cert)));
  ForgeOptions detached;
  detached.sign_flags = CMS_BINARY | CMS_DETACHED;
  ExpectVerificationFailed(
      ks->DecryptAndVerify(Forge(*ac_, content_, ks_->cert.get(), detached)));
}

TEST_F(CmsTest, NodeSignerIsReportedSoCallersCanRefuseIt) {
  // The CMS layer authenticates any certificate of the CA; the role check
  // is the caller's (see cms.h).
  auto opened = ks->DecryptAndVerify(Forge(*node_, content_, ks_->cert.get()));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->second.organizational_unit, "kgr-node");
  EXPECT_EQ(opened->second.common_name, "n0000002a");
}

TEST_F(CmsTest, MessageForSomeoneElseCannotBeDecrypted) {
  auto sealed = ac->SignAndEncrypt(content_, Der(node_->cert.get()));
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  ExpectVerificationFailed(ks->DecryptAndVerify(*sealed));
  // Nor can the sender open its own message.
  ExpectVerificationFailed(ac->DecryptAndVerify(*sealed));
  auto node = LoadOrDie("node");
  ASSERT_TRUE(node);
  EXPECT_TRUE(node->DecryptAndVerify(*sealed).ok());
}

// Offsets of the unauthenticated bytes that nothing reads, in our message
// layout (see the grammar in cms.h; bodies longer than 255 bytes):
//   27  AuthEnvelopedData version (after SEQUENCE(4) OID(13) [0](4)
//       SEQUENCE(4) INTEGER header(2))
//   36  KeyAgreeRecipientInfo version (after SET(3) [1](3) header(2))
//   54  "unused bits" of the ephemeral key's BIT STRING: 1 is accepted when
//       the point's last bit is 0 anyway (OpenSSL masks it off)
//   the value of the GCM ICV-length INTEGER
std::vector<size_t> IgnoredFieldBytes(const Bytes& m) {
  std::vector<size_t> v = {27, 36, 54};
  EXPECT_EQ(m[26], 0x01);
  EXPECT_EQ(m[36], 0x03);
  EXPECT_EQ(m[52], 0x03);  // BIT STRING
  const Bytes gcm_oid = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                         0x65, 0x03, 0x04, 0x01, 0x2e};
  auto it = std::search(m.begin(), m.end(), gcm_oid.begin(), gcm_oid.end());
  EXPECT_NE(it, m.end());
  // OID, SEQUENCE header (2), nonce OCTET STRING (2 + 12), INTEGER 16.
  size_t icv = static_cast<size_t>(it - m.begin()) + 11 + 2 + 14;
  EXPECT_EQ(m[icv], 0x02);
  EXPECT_EQ(m[icv + 2], 0x10);
  v.push_back(icv + 2);
  return v;
}

TEST_F(CmsTest, EverySampledByteCorruptionIsRejected) {
  auto sealed = ac->SignAndEncrypt(content_, ks->certificate_der());
  ASSERT_TRUE(sealed.ok());
  ASSERT_GT(sealed->size(), 300u);
  const std::vector<size_t> ignored = IgnoredFieldBytes(*sealed);
  std::set<size_t> positions(ignored.begin(), ignored.end());
  for (size_t i = 0; i < sealed->size(); i += 7) positions.insert(i);
  for (size_t i = sealed->size() - 20; i < sealed->size(); ++i) {
    positions.insert(i);  // the GCM tag
  }
  size_t rejected = 0;
  for (size_t pos : positions) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      Bytes bad = *sealed;
      bad[pos] ^= mask;
      auto r = ks->DecryptAndVerify(bad);
      if (r.ok()) {
        // Only the fields nothing reads may change, and then the result is
        // exactly the original one.
        EXPECT_NE(std::find(ignored.begin(), ignored.end(), pos), ignored.end())
            << "byte " << pos << " ^ " << int{mask} << " of " << sealed->size()
            << " accepted";
        EXPECT_EQ(ToBytes(r->first), content_);
        EXPECT_EQ(r->second.certificate_der, ac->certificate_der());
        continue;
      }
      ++rejected;
      EXPECT_TRUE(r.status().code() == StatusCode::kUnauthenticated ||
                  r.status().code() == StatusCode::kInvalidArgument)
          << r.status().ToString();
      if (r.status().code() == StatusCode::kUnauthenticated) {
        EXPECT_EQ(r.status().message(), kVerificationFailed);
      }
    }
  }
  EXPECT_GE(rejected, 3 * (positions.size() - ignored.size()));
  EXPECT_EQ(ERR_peek_error(), 0u);  // the error queue is left empty
}

TEST_F(CmsTest, TruncatedOrExtendedMessagesAreRejected) {
  auto sealed = ac->SignAndEncrypt(content_, ks->certificate_der());
  ASSERT_TRUE(sealed.ok());
  const size_t n = sealed->size();
  for (size_t len :
       {size_t{0}, size_t{1}, size_t{2}, size_t{4}, size_t{16}, size_t{100},
        n / 4, n / 2, n - 40, n - 17, n - 16, n - 2, n - 1}) {
    auto r =
        ks->DecryptAndVerify(std::span<const uint8_t>(sealed->data(), len));
    EXPECT_FALSE(r.ok()) << "length " << len;
  }
  Bytes longer = *sealed;
  longer.push_back(0);
  auto r = ks->DecryptAndVerify(longer);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CmsTest, NonCmsAndOversizeInputAreInvalidArgument) {
  for (const Bytes& junk :
       {Bytes{}, Bytes{0x30}, Bytes{0x30, 0x80},
        Bytes(AsBytes("hello").begin(), AsBytes("hello").end()),
        Bytes(1000, 0x41)}) {
    auto r = ks->DecryptAndVerify(junk);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  auto sealed = ac->SignAndEncrypt(content_, ks->certificate_der());
  ASSERT_TRUE(sealed.ok());
  Bytes huge(kMaxCmsMessage + 1, 0);
  std::copy(sealed->begin(), sealed->end(), huge.begin());
  auto r = ks->DecryptAndVerify(huge);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CmsTest, SignAndEncryptRefusesBadRecipientsAndOversizeContent) {
  auto to = [&](const Bytes& der) {
    auto r = ac->SignAndEncrypt(content_, der);
    EXPECT_FALSE(r.ok());
    return r.ok() ? StatusCode::kOk : r.status().code();
  };
  EXPECT_EQ(to(Der(rogue_->cert.get())), StatusCode::kInvalidArgument);
  EXPECT_EQ(to(Der(rogue_ca_->cert.get())), StatusCode::kInvalidArgument);
  EXPECT_EQ(to(Der(expired_->cert.get())), StatusCode::kInvalidArgument);
  EXPECT_EQ(to(Bytes{}), StatusCode::kInvalidArgument);
  EXPECT_EQ(to(Bytes{0x30, 0x03, 0x02, 0x01, 0x00}),
            StatusCode::kInvalidArgument);
  Bytes trailing = ks->certificate_der();
  trailing.push_back(0);
  EXPECT_EQ(to(trailing), StatusCode::kInvalidArgument);
  Bytes big(kMaxCmsContent + 1);
  auto r = ac->SignAndEncrypt(big, ks->certificate_der());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CmsTest, LoadChecksKeyMatchAndIssuer) {
  auto mismatch =
      CmsEndpoint::Load(Path("ca.crt"), Path("ac.crt"), Path("ks.key"));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);

  auto other_ca =
      CmsEndpoint::Load(Path("ca.crt"), Path("rogue.crt"), Path("rogue.key"));
  ASSERT_FALSE(other_ca.ok());
  EXPECT_EQ(other_ca.status().code(), StatusCode::kInvalidArgument);

  auto expired = CmsEndpoint::Load(Path("ca.crt"), Path("expired.crt"),
                                   Path("expired.key"));
  EXPECT_FALSE(expired.ok());

  auto leaf_as_ca =
      CmsEndpoint::Load(Path("ac.crt"), Path("ac.crt"), Path("ac.key"));
  EXPECT_FALSE(leaf_as_ca.ok());

  auto missing =
      CmsEndpoint::Load(Path("ca.crt"), Path("nope.crt"), Path("ac.key"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  auto not_pem =
      CmsEndpoint::Load(Path("ca.crt"), Path("ac.key"), Path("ac.key"));
  ASSERT_FALSE(not_pem.ok());
  EXPECT_EQ(not_pem.status().code(), StatusCode::kInvalidArgument);

  // An encrypted key is refused (and never prompted for).
  WriteKey(Path("enc.key"), ac_->key.get(), "secret-passphrase");
  auto encrypted =
      CmsEndpoint::Load(Path("ca.crt"), Path("ac.crt"), Path("enc.key"));
  ASSERT_FALSE(encrypted.ok());
  EXPECT_EQ(encrypted.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(CmsTest, LoadCertificateDer) {
  auto der = LoadCertificateDer(Path("ks.crt"));
  ASSERT_TRUE(der.ok()) << der.status().ToString();
  EXPECT_EQ(*der, ks->certificate_der());
  EXPECT_EQ(LoadCertificateDer(Path("ks.key")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadCertificateDer(Path("absent.crt")).status().code(),
            StatusCode::kNotFound);
}

TEST_F(CmsTest, ConcurrentUseOfOneEndpoint) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        Bytes msg = {static_cast<uint8_t>(t), static_cast<uint8_t>(i)};
        auto sealed = ac->SignAndEncrypt(msg, ks->certificate_der());
        if (!sealed.ok()) continue;
        auto opened = ks->DecryptAndVerify(*sealed);
        if (opened.ok() && ToBytes(opened->first) == msg) ++ok[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 10) << "thread " << t;
}

}  // namespace
}  // namespace kgr
