/* devices_bpf.c - device rules on cgroup v2, where the only device control is a
 * BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup (cgroup-v2.rst "Device
 * controller"). The program is generated from the plan's device_rule records: the context
 * (struct bpf_cgroup_dev_ctx, linux/bpf.h) gives the device type, the access asked for,
 * major and minor; rules are tested last to first, so a later rule overrides an earlier
 * one as with v1's devices.allow/deny; the first match returns its verdict (1 allow, 0
 * deny); no match allows, as a fresh v1 devices cgroup does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SwiftPM does not pass -D_GNU_SOURCE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "keeper.h"

/** Room for 4096 rules of at most 9 instructions, plus prologue and epilogue. */
#define MAX_INSNS (9 * 4096 + 16)

static struct bpf_insn prog[MAX_INSNS];
static int nprog;

static void emit(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    if (nprog >= MAX_INSNS) return;
    prog[nprog++] = (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

/** r2 = device type, r3 = access asked for, r4 = major, r5 = minor (r1 is the context). */
static void prologue(void)
{
    emit(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
    emit(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xFFFF);
    emit(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);
    emit(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);
    emit(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
    emit(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
}

/** One parsed rule: -1 in type/major/minor means any. */
struct rule { int allow, type, major, minor, access; };

static int parse_rule(char *const *f, struct rule *r)
{
    int64_t v;
    r->allow = !strcmp(f[0], "allow");
    if (!r->allow && strcmp(f[0], "deny")) return -1;
    r->type = !strcmp(f[1], "a") ? -1 : !strcmp(f[1], "c") ? BPF_DEVCG_DEV_CHAR : !strcmp(f[1], "b") ? BPF_DEVCG_DEV_BLOCK : -2;
    if (r->type == -2) return -1;
    r->major = r->minor = -1;
    if (f[2][0] && strcmp(f[2], "*")) { if (parse_i64(f[2], 0, 4095, &v) < 0) return -1; r->major = (int)v; }
    if (f[3][0] && strcmp(f[3], "*")) { if (parse_i64(f[3], 0, 1048575, &v) < 0) return -1; r->minor = (int)v; }
    r->access = 0;
    for (const char *a = f[4]; *a; a++) {
        if (*a == 'r') r->access |= BPF_DEVCG_ACC_READ;
        else if (*a == 'w') r->access |= BPF_DEVCG_ACC_WRITE;
        else if (*a == 'm') r->access |= BPF_DEVCG_ACC_MKNOD;
        else return -1;
    }
    return r->access ? 0 : -1;
}

/** A block: tests that jump past the block when they fail, then return the verdict. */
static void emit_rule(const struct rule *r)
{
    int all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    int tests = (r->type >= 0) + (r->access != all ? 1 : 0) + (r->major >= 0) + (r->minor >= 0);
    int len = tests + (r->access != all ? 2 : 0) + 2, start = nprog;
#define SKIP() ((int16_t)(len - (nprog - start) - 1))
    if (r->type >= 0) emit(BPF_JMP | BPF_JNE | BPF_K, 2, 0, SKIP(), r->type);
    if (r->access != all) {
        /* Asked-for bits outside the rule's access: no match. */
        emit(BPF_ALU | BPF_MOV | BPF_X, 1, 3, 0, 0);
        emit(BPF_ALU | BPF_AND | BPF_K, 1, 0, 0, ~r->access);
        emit(BPF_JMP | BPF_JNE | BPF_K, 1, 0, SKIP(), 0);
    }
    if (r->major >= 0) emit(BPF_JMP | BPF_JNE | BPF_K, 4, 0, SKIP(), r->major);
    if (r->minor >= 0) emit(BPF_JMP | BPF_JNE | BPF_K, 5, 0, SKIP(), r->minor);
#undef SKIP
    emit(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r->allow);
    emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static int bpf(int cmd, union bpf_attr *attr)
{
    int r;
    do r = (int)syscall(SYS_bpf, cmd, attr, sizeof *attr);
    while (r < 0 && errno == EINTR);
    return r;
}

static int load(const char *dir)
{
    static char log[4096];
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = (uint32_t)nprog;
    a.license = (uint64_t)(uintptr_t)"Apache-2.0";
    a.log_buf = (uint64_t)(uintptr_t)log;
    a.log_size = sizeof log;
    a.log_level = 1;
    int fd = bpf(BPF_PROG_LOAD, &a);
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "keeper: device program rejected: %s\n", log);
        char *nl = strchr(log, '\n');
        if (nl) *nl = 0;
        return kerr_fmt("load device program: %s: %s%s%s", dir, errno_text(err), log[0] ? ": " : "", log);
    }
    return fd;
}

int devices_bpf_attach(const char *dir, const struct recv *rules)
{
    struct rule r;
    nprog = 0;
    prologue();
    int catch_all = 0;
    for (size_t i = rules->n; i-- > 0 && !catch_all; ) {
        char *const *f = rules->v[i].f;
        if (parse_rule(f, &r) < 0) return kerr_fmt("device_rule: %s %s %s %s %s: bad rule", f[0], f[1], f[2], f[3], f[4]);
        emit_rule(&r);
        /* A rule for every device and access decides everything before it: the verifier
         * refuses unreachable instructions, so nothing more is emitted. */
        catch_all = r.type < 0 && r.major < 0 && r.minor < 0 && r.access == 7;
    }
    if (!catch_all) {
        emit(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
        emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    int prog_fd = load(dir);
    if (prog_fd < 0) return -1;
    int cg = xopen(dir, O_RDONLY | O_DIRECTORY, 0);
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cg;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    /* The program stays attached to the cgroup after both fds are closed. */
    int rc = cg < 0 ? -1 : bpf(BPF_PROG_ATTACH, &a);
    int err = errno;
    close(prog_fd);
    if (cg >= 0) close(cg);
    return rc < 0 ? kerr_set("attach device program", dir, err) : 0;
}
