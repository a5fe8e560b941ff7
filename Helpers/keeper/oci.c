/* oci.c - mode oci: the keeper drives an external OCI runtime (runc). Not implemented yet. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include "keeper.h"

int oci_create(struct keeper *k) { (void)k; return kerr_fmt("mode oci: not implemented yet"); }
int oci_start(struct keeper *k, struct kproc *p) { (void)k; (void)p; return kerr_fmt("mode oci: not implemented yet"); }
int oci_exec(struct keeper *k, struct kproc *p) { (void)k; (void)p; return kerr_fmt("mode oci: not implemented yet"); }
int oci_simple(struct keeper *k, const char *verb, const char *a, const char *b)
{ (void)k; (void)a; (void)b; return kerr_fmt("mode oci: %s: not implemented yet", verb); }
