/*
 * jwt.c - compact JWS with RS256 and ES256 through EVP_DigestSign.
 */
#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kn.h"
#include "common/seal.h"

static EVP_PKEY *load(BIO *bio, char *err, size_t errlen)
{
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (k == NULL)
        snprintf(err, errlen, "not a PEM private key (%s)",
                 ERR_reason_error_string(ERR_peek_last_error())
                     ? ERR_reason_error_string(ERR_peek_last_error())
                     : "unknown");
    ERR_clear_error();
    return k;
}

EVP_PKEY *kn_jwt_key_file(const char *path, char *err, size_t errlen)
{
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *k;
    if (bio == NULL) {
        snprintf(err, errlen, "cannot read %s", path);
        ERR_clear_error();
        return NULL;
    }
    k = load(bio, err, errlen);
    BIO_free(bio);
    return k;
}

EVP_PKEY *kn_jwt_key_pem(const char *pem, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = load(bio, err, errlen);
    BIO_free(bio);
    return k;
}

/* DER ECDSA-Sig-Value -> 64 raw bytes r||s (each left-padded to 32). */
static int der_to_raw(const unsigned char *der, size_t len,
                      unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;
    int ok;
    if (sig == NULL)
        return 0;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok;
}

static int raw_to_der(const unsigned char raw[64], unsigned char **der,
                      int *len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (sig == NULL || r == NULL || s == NULL ||
        ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    *der = NULL;
    *len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    return *len > 0;
}

char *kn_jwt_sign(EVP_PKEY *key, const char *alg, const char *header_json,
                  const char *payload_json)
{
    int es = strcmp(alg, "ES256") == 0;
    char *h = kn_b64url_encode(header_json, strlen(header_json));
    char *p = kn_b64url_encode(payload_json, strlen(payload_json));
    char *input = kn_xasprintf("%s.%s", h, p), *sig64 = NULL, *out = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL, raw[64];
    size_t siglen = 0;

    free(h);
    free(p);
    if ((!es && strcmp(alg, "RS256") != 0) ||
        (es && EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) ||
        (!es && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA))
        goto out;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input,
                       strlen(input)) != 1)
        goto out;
    sig = kn_xmalloc(siglen);
    if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input,
                       strlen(input)) != 1)
        goto out;
    if (es) {
        if (!der_to_raw(sig, siglen, raw))
            goto out;
        sig64 = kn_b64url_encode(raw, 64);
    } else {
        sig64 = kn_b64url_encode(sig, siglen);
    }
    out = kn_xasprintf("%s.%s", input, sig64);
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    free(sig);
    free(sig64);
    free(input);
    return out;
}

int kn_jwt_verify(EVP_PKEY *key, const char *jwt)
{
    const char *dot2 = strrchr(jwt, '.');
    unsigned char *sig = NULL, *der = NULL;
    long siglen;
    int derlen = 0, ok = 0, es = EVP_PKEY_get_base_id(key) == EVP_PKEY_EC;
    EVP_MD_CTX *md;
    if (dot2 == NULL || strchr(jwt, '.') == dot2)
        return 0;
    siglen = kn_b64url_decode(dot2 + 1, &sig);
    if (siglen < 0)
        return 0;
    md = EVP_MD_CTX_new();
    if (es) {
        if (siglen != 64 || !raw_to_der(sig, &der, &derlen))
            goto out;
    }
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
         EVP_DigestVerify(
             md, es ? der : sig, es ? (size_t)derlen : (size_t)siglen,
             (const unsigned char *)jwt, (size_t)(dot2 - jwt)) == 1;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(md);
    free(sig);
    OPENSSL_free(der);
    return ok;
}
