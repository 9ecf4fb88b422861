/* tls_dane.h - DANE verification for tls.c (private to the tls module) */
#ifndef BLUEARROW_TLS_DANE_H
#define BLUEARROW_TLS_DANE_H

#include <gnutls/gnutls.h>

#include "bluearrow/tls.h"

/* 1 if libgnutls-dane.so.0 can be loaded (loads it once; thread-safe). */
int tls_dane_available(void);

/*
 * Checks the peer's chain (chain[0] the leaf, n >= 1) against the TLSA
 * records r[0..nr) (see struct ba_tls_params).  For DANE-TA the leaf must
 * be valid for host or, when not NULL, alt.  Returns 2 or 3 (the usage of
 * the record that matched), or 0 with the reason in why (size whysz) and
 * enum ba_tls_problem bits in *problems.
 */
int tls_dane_verify(const gnutls_datum_t *chain, unsigned n, const struct ba_tls_tlsa *r,
                    size_t nr, const char *host, const char *alt, char *why, size_t whysz,
                    unsigned *problems);

#endif
