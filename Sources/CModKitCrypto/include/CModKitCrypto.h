/*
 * PKCS#7 (CMS) signatures of module files, made and checked with OpenSSL's
 * libcrypto. The signature format is the one Linux appends to modules: a
 * detached CMS SignedData in DER, without certificates and without signed
 * attributes, whose signer is named by issuer and serial number.
 *
 * Every function that can fail writes a message of at most error_size bytes
 * to error, naming what failed and OpenSSL's reason where it gives one.
 */
#ifndef MODKIT_CRYPTO_H
#define MODKIT_CRYPTO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The outcome of checking a signature. */
enum modkit_signature_status {
    MODKIT_SIGNATURE_VALID = 0,
    /* The signature is not a DER CMS SignedData message with one signer. */
    MODKIT_SIGNATURE_MALFORMED = 1,
    /* No trusted certificate matches the signer's issuer and serial number. */
    MODKIT_SIGNATURE_UNKNOWN_KEY = 2,
    /* A trusted key signed something else: the content or signature changed. */
    MODKIT_SIGNATURE_MISMATCH = 3,
};

/* A set of trusted X.509 certificates. */
struct modkit_trust;

struct modkit_trust *modkit_trust_create(void);
void modkit_trust_destroy(struct modkit_trust *trust);
/* Adds every certificate of a PEM file, or the one certificate of a DER
 * file. Returns the number added, or -1 when the file contains none. */
int modkit_trust_add_file(struct modkit_trust *trust, const char *path, char *error, size_t error_size);
int modkit_trust_count(const struct modkit_trust *trust);

/* Signs size bytes at data with the private key and certificate in the PEM
 * or DER files key_path and cert_path, using the digest named digest_name
 * ("sha256"). On success returns 0 and stores a buffer that the caller frees
 * with modkit_crypto_free. Returns -1 on failure. */
int modkit_cms_sign(const void *data, size_t size, const char *key_path, const char *cert_path,
                    const char *digest_name, unsigned char **signature, size_t *signature_size,
                    char *error, size_t error_size);

/* Checks a detached signature of size bytes at data against the trusted
 * certificates. Returns an enum modkit_signature_status value. */
int modkit_cms_verify(const struct modkit_trust *trust, const void *data, size_t size,
                      const void *signature, size_t signature_size, char *error, size_t error_size);

/* The signer of a signature, as kmod's modinfo shows it. */
struct modkit_signer {
    /* The commonName of the signer certificate's issuer, or empty. */
    char issuer_common_name[256];
    /* The signer certificate's serial number, big-endian. */
    unsigned char serial[64];
    size_t serial_size;
    /* The digest algorithm's OpenSSL long name, such as "sha256". */
    char digest[64];
};

/* Reads the first signer of a signature without checking it. Returns 0, or
 * -1 when the signature is malformed. */
int modkit_cms_signer(const void *signature, size_t signature_size, struct modkit_signer *signer,
                      char *error, size_t error_size);

void modkit_crypto_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
