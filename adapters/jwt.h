/*
 * jwt.h - JSON Web Tokens signed with OpenSSL 3 EVP: RS256 (LINE channel
 * access token v2.1 assertions, Google service accounts for FCM) and ES256
 * (APNs provider tokens; ECDSA signatures converted from DER to the raw
 * r||s that JWS wants).
 */
#ifndef KN_ADAPTERS_JWT_H
#define KN_ADAPTERS_JWT_H

#include <openssl/evp.h>
#include <stddef.h>

/*
 * Load a PEM private key (PKCS#8 "BEGIN PRIVATE KEY", or "BEGIN RSA/EC
 * PRIVATE KEY") from a file or from a string.  Returns NULL and a reason in
 * err on failure.  Free with EVP_PKEY_free.
 */
EVP_PKEY *kn_jwt_key_file(const char *path, char *err, size_t errlen);
EVP_PKEY *kn_jwt_key_pem(const char *pem, char *err, size_t errlen);

/*
 * Sign header.payload (both JSON texts) with alg "RS256" or "ES256"; returns
 * the compact JWT (heap string) or NULL (wrong key type, OpenSSL error).
 */
char *kn_jwt_sign(EVP_PKEY *key, const char *alg, const char *header_json,
                  const char *payload_json);

/*
 * Verify a compact JWT's signature with key (public or private); returns 1
 * if valid.  For tests and fakes.
 */
int kn_jwt_verify(EVP_PKEY *key, const char *jwt);

#endif
