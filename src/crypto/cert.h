/*
 * cert.h - a self-signed TLS certificate for a fresh installation, made with GnuTLS.
 */
#ifndef CU_CRYPTO_CERT_H
#define CU_CRYPTO_CERT_H

#include "base/err.h"

/* cu_cert_selfsigned(cert_path, key_path, days): makes an ECDSA P-256 key and a self-signed
 * certificate for CN=localhost with subjectAltNames DNS:localhost, IP:127.0.0.1 and IP:::1,
 * valid for days days, and writes them as PEM: the key with mode 0600, the certificate 0644.
 * Refuses to overwrite either file (CU_E_EXISTS); CU_E_TLS when GnuTLS fails, CU_E_IO when a
 * file cannot be written, CU_E_INVALID when days is 0 or over 36500. */
CU_WUR enum cu_err cu_cert_selfsigned(const char *cert_path, const char *key_path, unsigned days);

#endif
