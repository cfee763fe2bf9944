/*
 * Module signatures with OpenSSL's CMS functions, following the choices of
 * Linux's scripts/sign-file: no certificates inside the message, no signed
 * attributes, binary content, detached. Only libcrypto does cryptography here.
 */
#include "CModKitCrypto.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

struct modkit_trust {
    STACK_OF(X509) *certificates;
};

/* Formats the message and appends OpenSSL's reason for the newest error on
 * this thread's queue, if any, then clears the queue. */
static void set_error(char *error, size_t error_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *error, size_t error_size, const char *format, ...)
{
    if (error_size == 0)
        return;
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(error, error_size, format, arguments);
    va_end(arguments);

    unsigned long code = ERR_peek_last_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    if (reason != NULL && length >= 0 && (size_t)length < error_size)
        snprintf(error + length, error_size - (size_t)length, " (OpenSSL: %s)", reason);
    ERR_clear_error();
}

static int no_passphrase(char *buffer, int size, int writing, void *context)
{
    (void)buffer;
    (void)size;
    (void)writing;
    (void)context;
    return -1;
}

/* Reads one certificate from a PEM or DER file. */
static X509 *read_certificate(const char *path, char *error, size_t error_size)
{
    BIO *file = BIO_new_file(path, "rb");
    if (file == NULL) {
        set_error(error, error_size, "cannot open certificate %s", path);
        return NULL;
    }
    X509 *certificate = PEM_read_bio_X509(file, NULL, no_passphrase, NULL);
    if (certificate == NULL) {
        ERR_clear_error();
        BIO_reset(file);
        certificate = d2i_X509_bio(file, NULL);
    }
    BIO_free(file);
    if (certificate == NULL)
        set_error(error, error_size, "%s is not a PEM or DER X.509 certificate", path);
    return certificate;
}

/* Reads an unencrypted private key from a PEM or DER file. */
static EVP_PKEY *read_private_key(const char *path, char *error, size_t error_size)
{
    BIO *file = BIO_new_file(path, "rb");
    if (file == NULL) {
        set_error(error, error_size, "cannot open private key %s", path);
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(file, NULL, no_passphrase, NULL);
    if (key == NULL) {
        ERR_clear_error();
        BIO_reset(file);
        key = d2i_PrivateKey_bio(file, NULL);
    }
    BIO_free(file);
    if (key == NULL)
        set_error(error, error_size, "%s is not an unencrypted PEM or DER private key", path);
    return key;
}

struct modkit_trust *modkit_trust_create(void)
{
    struct modkit_trust *trust = OPENSSL_zalloc(sizeof *trust);
    if (trust == NULL)
        return NULL;
    trust->certificates = sk_X509_new_null();
    if (trust->certificates == NULL) {
        OPENSSL_free(trust);
        return NULL;
    }
    return trust;
}

void modkit_trust_destroy(struct modkit_trust *trust)
{
    if (trust == NULL)
        return;
    sk_X509_pop_free(trust->certificates, X509_free);
    OPENSSL_free(trust);
}

int modkit_trust_count(const struct modkit_trust *trust)
{
    return sk_X509_num(trust->certificates);
}

int modkit_trust_add_file(struct modkit_trust *trust, const char *path, char *error, size_t error_size)
{
    BIO *file = BIO_new_file(path, "rb");
    if (file == NULL) {
        set_error(error, error_size, "cannot open %s", path);
        return -1;
    }
    int added = 0;
    X509 *certificate;
    while ((certificate = PEM_read_bio_X509(file, NULL, no_passphrase, NULL)) != NULL) {
        if (!sk_X509_push(trust->certificates, certificate)) {
            X509_free(certificate);
            break;
        }
        added++;
    }
    ERR_clear_error();
    if (added == 0) {
        BIO_reset(file);
        certificate = d2i_X509_bio(file, NULL);
        if (certificate != NULL && sk_X509_push(trust->certificates, certificate))
            added = 1;
        else
            X509_free(certificate);
    }
    BIO_free(file);
    if (added == 0) {
        set_error(error, error_size, "%s is not a PEM or DER X.509 certificate", path);
        return -1;
    }
    return added;
}

int modkit_cms_sign(const void *data, size_t size, const char *key_path, const char *cert_path,
                    const char *digest_name, unsigned char **signature, size_t *signature_size,
                    char *error, size_t error_size)
{
    int result = -1;
    EVP_PKEY *key = NULL;
    BIO *content = NULL;
    CMS_ContentInfo *cms = NULL;
    const unsigned int flags = CMS_NOCERTS | CMS_BINARY | CMS_DETACHED;

    if (size > INT_MAX) {
        set_error(error, error_size, "the file is larger than %d bytes, the most OpenSSL signs in one buffer", INT_MAX);
        return -1;
    }
    const EVP_MD *digest = EVP_get_digestbyname(digest_name);
    if (digest == NULL) {
        set_error(error, error_size, "unknown hash algorithm '%s'", digest_name);
        return -1;
    }
    X509 *certificate = read_certificate(cert_path, error, error_size);
    if (certificate == NULL)
        return -1;
    key = read_private_key(key_path, error, error_size);
    if (key == NULL)
        goto out;
    if (X509_check_private_key(certificate, key) != 1) {
        set_error(error, error_size, "private key %s does not belong to certificate %s", key_path, cert_path);
        goto out;
    }

    content = BIO_new_mem_buf(data, (int)size);
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL | CMS_STREAM);
    if (content == NULL || cms == NULL) {
        set_error(error, error_size, "cannot create a CMS message");
        goto out;
    }
    if (CMS_add1_signer(cms, certificate, key, digest, flags | CMS_NOSMIMECAP | CMS_NOATTR) == NULL) {
        set_error(error, error_size, "cannot sign with %s and %s", key_path, cert_path);
        goto out;
    }
    if (CMS_final(cms, content, NULL, flags) != 1) {
        set_error(error, error_size, "cannot sign the file's contents");
        goto out;
    }
    unsigned char *encoded = NULL;
    int length = i2d_CMS_ContentInfo(cms, &encoded);
    if (length <= 0) {
        set_error(error, error_size, "cannot encode the signature as DER");
        goto out;
    }
    *signature = encoded;
    *signature_size = (size_t)length;
    result = 0;

out:
    CMS_ContentInfo_free(cms);
    BIO_free(content);
    EVP_PKEY_free(key);
    X509_free(certificate);
    return result;
}

/* Decodes a DER CMS SignedData with exactly one signer and detached content. */
static CMS_ContentInfo *decode_signature(const void *signature, size_t signature_size, char *error, size_t error_size)
{
    if (signature_size > LONG_MAX) {
        set_error(error, error_size, "signature of %zu bytes is too large", signature_size);
        return NULL;
    }
    const unsigned char *cursor = signature;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &cursor, (long)signature_size);
    if (cms == NULL) {
        set_error(error, error_size, "signature is not a DER-encoded PKCS#7 message");
        return NULL;
    }
    const char *problem = NULL;
    if (cursor != (const unsigned char *)signature + signature_size)
        problem = "signature has bytes after its PKCS#7 message";
    else if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        problem = "PKCS#7 message is not of type SignedData";
    else if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)
        problem = "PKCS#7 message does not sign plain data";
    else if (CMS_is_detached(cms) != 1)
        problem = "PKCS#7 message carries its content instead of being detached";
    else if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1)
        problem = "PKCS#7 message does not have exactly one signer";
    if (problem != NULL) {
        set_error(error, error_size, "%s", problem);
        CMS_ContentInfo_free(cms);
        return NULL;
    }
    return cms;
}

/* Writes "issuer 'CN', serial 01:02" for messages about an unknown signer. */
static void describe_signer(CMS_SignerInfo *info, char *text, size_t text_size)
{
    struct modkit_signer signer;
    memset(&signer, 0, sizeof signer);
    ASN1_OCTET_STRING *key_id = NULL;
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *serial = NULL;
    snprintf(text, text_size, "an unnamed signer");
    if (CMS_SignerInfo_get0_signer_id(info, &key_id, &issuer, &serial) != 1)
        return;
    size_t used = 0;
    if (issuer != NULL) {
        char name[256];
        X509_NAME_oneline(issuer, name, sizeof name);
        used = (size_t)snprintf(text, text_size, "issuer '%s', serial ", name);
    } else {
        used = (size_t)snprintf(text, text_size, "subject key identifier ");
    }
    const ASN1_STRING *number = serial != NULL ? (const ASN1_STRING *)serial : (const ASN1_STRING *)key_id;
    const unsigned char *bytes = number != NULL ? ASN1_STRING_get0_data(number) : NULL;
    int count = number != NULL ? ASN1_STRING_length(number) : 0;
    for (int index = 0; index < count && used + 4 < text_size; index++)
        used += (size_t)snprintf(text + used, text_size - used, index == 0 ? "%02X" : ":%02X", bytes[index]);
}

int modkit_cms_verify(const struct modkit_trust *trust, const void *data, size_t size,
                      const void *signature, size_t signature_size, char *error, size_t error_size)
{
    if (size > INT_MAX) {
        set_error(error, error_size, "content of %zu bytes is too large to verify", size);
        return MODKIT_SIGNATURE_MALFORMED;
    }
    CMS_ContentInfo *cms = decode_signature(signature, signature_size, error, error_size);
    if (cms == NULL)
        return MODKIT_SIGNATURE_MALFORMED;

    CMS_SignerInfo *info = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    X509 *match = NULL;
    for (int index = 0; index < sk_X509_num(trust->certificates); index++) {
        X509 *candidate = sk_X509_value(trust->certificates, index);
        if (CMS_SignerInfo_cert_cmp(info, candidate) == 0) {
            match = candidate;
            break;
        }
    }
    if (match == NULL) {
        char signer[512];
        describe_signer(info, signer, sizeof signer);
        ERR_clear_error();
        set_error(error, error_size, "no trusted certificate matches the signer, %s", signer);
        CMS_ContentInfo_free(cms);
        return MODKIT_SIGNATURE_UNKNOWN_KEY;
    }

    int status = MODKIT_SIGNATURE_MISMATCH;
    STACK_OF(X509) *signers = sk_X509_new_null();
    BIO *content = BIO_new_mem_buf(data, (int)size);
    if (signers == NULL || content == NULL || !sk_X509_push(signers, match)) {
        set_error(error, error_size, "out of memory while verifying the signature");
    } else if (CMS_verify(cms, signers, NULL, content, NULL,
                          CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) == 1) {
        ERR_clear_error();
        status = MODKIT_SIGNATURE_VALID;
    } else {
        /* OpenSSL's reason here only repeats that verification failed. */
        ERR_clear_error();
        set_error(error, error_size, "signature does not match the contents");
    }
    BIO_free(content);
    sk_X509_free(signers);
    CMS_ContentInfo_free(cms);
    return status;
}

int modkit_cms_signer(const void *signature, size_t signature_size, struct modkit_signer *signer,
                      char *error, size_t error_size)
{
    memset(signer, 0, sizeof *signer);
    CMS_ContentInfo *cms = decode_signature(signature, signature_size, error, error_size);
    if (cms == NULL)
        return -1;
    CMS_SignerInfo *info = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);

    ASN1_OCTET_STRING *key_id = NULL;
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *serial = NULL;
    if (CMS_SignerInfo_get0_signer_id(info, &key_id, &issuer, &serial) == 1) {
        int position = issuer != NULL ? X509_NAME_get_index_by_NID(issuer, NID_commonName, -1) : -1;
        if (position >= 0) {
            ASN1_STRING *name = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(issuer, position));
            unsigned char *text = NULL;
            int length = ASN1_STRING_to_UTF8(&text, name);
            if (length > 0) {
                size_t copied = (size_t)length < sizeof signer->issuer_common_name ? (size_t)length : sizeof signer->issuer_common_name - 1;
                memcpy(signer->issuer_common_name, text, copied);
            }
            OPENSSL_free(text);
        }
        const ASN1_STRING *number = serial != NULL ? (const ASN1_STRING *)serial : (const ASN1_STRING *)key_id;
        if (number != NULL) {
            size_t length = (size_t)ASN1_STRING_length(number);
            signer->serial_size = length < sizeof signer->serial ? length : sizeof signer->serial;
            memcpy(signer->serial, ASN1_STRING_get0_data(number), signer->serial_size);
        }
    }

    X509_ALGOR *digest = NULL;
    CMS_SignerInfo_get0_algs(info, NULL, NULL, &digest, NULL);
    const ASN1_OBJECT *algorithm = NULL;
    if (digest != NULL)
        X509_ALGOR_get0(&algorithm, NULL, NULL, digest);
    const char *name = algorithm != NULL ? OBJ_nid2ln(OBJ_obj2nid(algorithm)) : NULL;
    snprintf(signer->digest, sizeof signer->digest, "%s", name != NULL ? name : "unknown");
    ERR_clear_error();
    CMS_ContentInfo_free(cms);
    return 0;
}

void modkit_crypto_free(void *pointer)
{
    OPENSSL_free(pointer);
}
