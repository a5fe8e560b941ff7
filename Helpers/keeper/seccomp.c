/* seccomp.c - the container's seccomp filter through libseccomp (seccomp_init(3),
 * seccomp_rule_add(3)). seccomp_rule_add_array is used because the comparisons are built
 * at run time. The filter is loaded by the process itself just before execve. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keeper.h"

/** SCMP_ACT_ERRNO and SCMP_ACT_TRACE are function-like macros; these name them. */
static inline uint32_t act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t act_trace(uint16_t e) { return SCMP_ACT_TRACE(e); }

static int parse_action(const char *name, const char *err, uint32_t *out)
{
    int64_t e = 1; /* EPERM: the OCI spec's default errnoRet */
    if (err && *err && parse_i64(err, 0, 4095, &e) < 0)
        return kerr_fmt("seccomp: errno %s: not a number in 0-4095", err);
    if (!strcmp(name, "SCMP_ACT_ALLOW")) *out = SCMP_ACT_ALLOW;
    else if (!strcmp(name, "SCMP_ACT_ERRNO")) *out = act_errno((uint16_t)e);
    else if (!strcmp(name, "SCMP_ACT_TRACE")) *out = act_trace((uint16_t)e);
    else if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD")) *out = SCMP_ACT_KILL;
    else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS")) *out = SCMP_ACT_KILL_PROCESS;
    else if (!strcmp(name, "SCMP_ACT_TRAP")) *out = SCMP_ACT_TRAP;
    else if (!strcmp(name, "SCMP_ACT_LOG")) *out = SCMP_ACT_LOG;
    else return kerr_fmt("seccomp: action %s: unknown or unsupported", name);
    return 0;
}

static int parse_op(const char *s, enum scmp_compare *op)
{
    static const struct { const char *n; enum scmp_compare op; } ops[] = {
        { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
        { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
        { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i].n, s)) { *op = ops[i].op; return 0; }
    return -1;
}

/** "INDEX OP VALUE VALUE2" -> a comparison. */
static int parse_arg(const char *sys, const char *s, struct scmp_arg_cmp *c)
{
    char opname[32];
    unsigned idx;
    unsigned long long a, b;
    if (sscanf(s, "%u %31s %llu %llu", &idx, opname, &a, &b) != 4 || idx > 5 ||
        parse_op(opname, &c->op) < 0)
        return kerr_fmt("seccomp: rule %s: bad argument comparison \"%s\"", sys, s);
    c->arg = idx;
    c->datum_a = a;
    c->datum_b = b;
    return 0;
}

static int add_arch(scmp_filter_ctx ctx, const char *oci)
{
    char low[32];
    const char *n = strncmp(oci, "SCMP_ARCH_", 10) ? oci : oci + 10;
    size_t i;
    for (i = 0; n[i] && i + 1 < sizeof low; i++) low[i] = (char)tolower((unsigned char)n[i]);
    low[i] = 0;
    uint32_t arch = seccomp_arch_resolve_name(low);
    if (!arch) return kerr_fmt("seccomp: architecture %s: unknown", oci);
    int rc = seccomp_arch_add(ctx, arch);
    if (rc < 0 && rc != -EEXIST) return kerr_set("seccomp_arch_add", oci, -rc);
    return 0;
}

/** libseccomp refuses two comparisons on the same argument in one rule; like runc, such a
 *  rule becomes one rule per comparison. */
static int has_repeated_index(const struct scmp_arg_cmp *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = i + 1; j < n; j++)
            if (c[i].arg == c[j].arg) return 1;
    return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t deflt, const struct rec *r)
{
    const char *sys = r->f[0];
    uint32_t act;
    struct scmp_arg_cmp cmp[6];
    unsigned n = 0;
    if (parse_action(r->f[1], r->f[2], &act) < 0) return -1;
    int nr = seccomp_syscall_resolve_name(sys);
    if (nr == __NR_SCMP_ERROR || act == deflt) return 0; /* unknown here, or a no-op rule */
    for (size_t i = 3; i < r->n; i++) {
        if (n >= 6) return kerr_fmt("seccomp: rule %s: more than 6 comparisons", sys);
        if (parse_arg(sys, r->f[i], &cmp[n++]) < 0) return -1;
    }
    int rc = 0;
    if (has_repeated_index(cmp, n)) {
        for (unsigned i = 0; i < n && rc == 0; i++) rc = seccomp_rule_add_array(ctx, act, nr, 1, &cmp[i]);
    } else {
        rc = seccomp_rule_add_array(ctx, act, nr, n, cmp);
    }
    return rc < 0 ? kerr_set("seccomp_rule_add", sys, -rc) : 0;
}

int apply_seccomp(const struct ctr_plan *p)
{
    if (p->seccomp_default.n == 0) return 0;
    uint32_t deflt;
    const struct rec *d = &p->seccomp_default;
    if (parse_action(d->f[0], d->n > 1 ? d->f[1] : NULL, &deflt) < 0) return -1;
    scmp_filter_ctx ctx = seccomp_init(deflt);
    if (!ctx) return kerr_fmt("seccomp_init: default action %s refused", d->f[0]);
    /* no_new_privileges is the plan's decision (applied before), not libseccomp's. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (rc < 0) kerr_set("seccomp_attr_set", "SCMP_FLTATR_CTL_NNP", -rc);
    for (size_t i = 0; rc == 0 && i < p->seccomp_archs.n; i++) rc = add_arch(ctx, p->seccomp_archs.v[i]);
    for (size_t i = 0; rc == 0 && i < p->seccomp_rules.n; i++) rc = add_rule(ctx, deflt, &p->seccomp_rules.v[i]);
    if (rc == 0 && (rc = seccomp_load(ctx)) < 0) kerr_set("seccomp_load", "filter", -rc);
    seccomp_release(ctx);
    return rc < 0 ? -1 : 0;
}
