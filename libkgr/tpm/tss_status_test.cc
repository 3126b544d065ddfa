#include "tpm/tss_status.h"

#include <tss2/tss2_tpm2_types.h>

#include <string>

#include "gtest/gtest.h"

namespace kgr {
namespace {

TEST(TssStatus, SuccessIsOk) {
  EXPECT_TRUE(TssStatus(TSS2_RC_SUCCESS, "x").ok());
}

TEST(TssStatus, MessageCarriesDecodedText) {
  // NV_Read on an undefined index: TPM_RC_HANDLE for handle 1.
  const TSS2_RC rc = TPM2_RC_HANDLE | TPM2_RC_1 | TPM2_RC_H;
  Status s = TssStatus(rc, "NV_Read");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message().rfind("NV_Read: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("0x0000018b"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("handle"), std::string::npos) << s.message();
}

TEST(TssStatus, Classification) {
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_NV_UNINITIALIZED), StatusCode::kNotFound);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_AUTH_FAIL | TPM2_RC_S | TPM2_RC_1),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_BAD_AUTH | TPM2_RC_S | TPM2_RC_1),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_POLICY_FAIL | TPM2_RC_S | TPM2_RC_1),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_NV_AUTHORIZATION),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_LOCKOUT), StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_NV_DEFINED), StatusCode::kAlreadyExists);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_NV_SPACE), StatusCode::kResourceExhausted);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_RETRY), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_NV_RATE), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyTssRc(TPM2_RC_VALUE | TPM2_RC_P | TPM2_RC_1),
            StatusCode::kInternal);
  // Through a resource manager the TPM code keeps its meaning.
  EXPECT_EQ(ClassifyTssRc(TSS2_RESMGR_TPM_RC_LAYER | TPM2_RC_HANDLE),
            StatusCode::kNotFound);
}

TEST(TssStatus, TctiFailuresAreUnavailable) {
  EXPECT_EQ(ClassifyTssRc(TSS2_TCTI_RC_IO_ERROR), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyTssRc(TSS2_TCTI_RC_NO_CONNECTION),
            StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyTssRc(TSS2_ESYS_RC_TRY_AGAIN), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyTssRc(TSS2_ESYS_RC_MEMORY), StatusCode::kResourceExhausted);
  EXPECT_EQ(ClassifyTssRc(TSS2_ESYS_RC_RSP_AUTH_FAILED),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(ClassifyTssRc(TSS2_ESYS_RC_BAD_REFERENCE), StatusCode::kInternal);
}

}  // namespace
}  // namespace kgr
