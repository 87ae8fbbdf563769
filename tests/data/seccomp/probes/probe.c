/* Seccomp probes: each attempts one call the `default` profile must deny and prints
   "<name> ok" or "<name> errno=<n>". Run with probe names as arguments, or "all".
   Compiled at test time (tests/security/test_seccomp_probes.py). Every call is harmless when
   it succeeds: it acts on the probe's own namespaces, its own memory, invalid fds, or asks a
   read-only question. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#define UFFD_USER_MODE_ONLY 1

static long r_unshare(void) { return syscall(SYS_unshare, CLONE_NEWUSER); }
static long r_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}
static long r_clone3(void) {
    struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; }
        args = {0, 0, 0, 0, SIGCHLD, 0, 0, 0};
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}
static long r_setns(void) {
    int fd = open("/proc/self/ns/uts", O_RDONLY);
    long r = syscall(SYS_setns, fd, CLONE_NEWUTS);
    int e = errno; if (fd >= 0) close(fd); errno = e;
    return r;
}
static long r_mount(void) {
    char dir[] = "/tmp/probe-mnt-XXXXXX";
    if (!mkdtemp(dir)) return -1;
    long r = syscall(SYS_mount, "none", dir, "tmpfs", 0, NULL);
    int e = errno;
    if (r == 0) syscall(SYS_umount2, dir, MNT_DETACH);
    rmdir(dir); errno = e;
    return r;
}
static long r_umount2(void) { return syscall(SYS_umount2, "/nonexistent-probe", 0); }
static long r_io_uring(void) {
    struct io_uring_params p; memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_bpf(void) {  /* load "return 0" as a socket filter: works for root outside */
    struct bpf_insn prog[2];
    memset(prog, 0, sizeof prog);
    prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K; prog[0].dst_reg = BPF_REG_0; prog[0].imm = 0;
    prog[1].code = BPF_JMP | BPF_EXIT;
    union bpf_attr a; memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER; a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = 2; a.license = (uint64_t)(uintptr_t)"GPL";
    long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_ptrace(void) {
    long pid = fork();
    if (pid == 0) { long r = syscall(SYS_ptrace, 0 /* TRACEME */, 0, 0, 0); _exit(r == 0 ? 0 : errno); }
    int st = 0; waitpid((pid_t)pid, &st, 0);
    if (WEXITSTATUS(st) == 0) return 0;
    errno = WEXITSTATUS(st); return -1;
}
static long r_process_vm_readv(void) {
    char src[8] = "abcdefg", dst[8];
    struct iovec l = {dst, 8}, r = {src, 8};
    return syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);
}
static long r_keyctl(void) { return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0); }
static long r_add_key(void) { return syscall(SYS_add_key, "user", "probe", "x", 1, -2 /* process keyring */); }
static long r_request_key(void) { return syscall(SYS_request_key, "user", "probe-none", NULL, 0); }
static long r_perf(void) {  /* a software clock counter on ourselves */
    struct perf_event_attr a; memset(&a, 0, sizeof a);
    a.type = PERF_TYPE_SOFTWARE; a.size = sizeof a; a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.disabled = 1; a.exclude_kernel = 1; a.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_userfaultfd(void) {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_kexec(void) { return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0); }
static long r_init_module(void) { return syscall(SYS_finit_module, -1, "", 0); }
static long r_open_by_handle(void) {  /* re-open "/" by its handle: works for root outside */
    struct { struct file_handle h; unsigned char buf[128]; } fh;
    int mount_id = 0;
    fh.h.handle_bytes = 128;
    if (name_to_handle_at(AT_FDCWD, "/", &fh.h, &mount_id, 0) < 0) fh.h.handle_bytes = 0;
    int mfd = open("/", O_RDONLY | O_DIRECTORY);
    long fd = syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY);
    int e = errno;
    if (fd >= 0) close((int)fd);
    if (mfd >= 0) close(mfd);
    errno = e;
    return fd;
}
static long r_clock_settime(void) { struct timespec t = {0, 0}; return syscall(SYS_clock_settime, -1, &t); }
static long r_settimeofday(void) { return syscall(SYS_settimeofday, NULL, NULL); }
static long r_sock3(int fam, int type, int proto) {
    long fd = syscall(SYS_socket, fam, type, proto);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_sock(int fam, int type) {
    long fd = syscall(SYS_socket, fam, type, 0);
    if (fd >= 0) close((int)fd);
    return fd;
}
static long r_vsock(void) { return r_sock(AF_VSOCK, SOCK_STREAM); }
static long r_alg(void) { return r_sock(AF_ALG, SOCK_SEQPACKET); }
static long r_packet(void) { return r_sock(17 /* AF_PACKET */, SOCK_RAW); }
static long r_inet_raw(void) { return r_sock3(AF_INET, SOCK_RAW, 1 /* ICMP */); }
static long r_personality(void) {
    long old = syscall(SYS_personality, 0xffffffff);
    long r = syscall(SYS_personality, READ_IMPLIES_EXEC);
    if (r != -1) syscall(SYS_personality, old);
    return r;
}
/* Controls: must work under `default` (the tests assert "ok"). */
static long r_clone_plain(void) {
    long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}
static long r_inet_stream(void) { return r_sock(AF_INET, SOCK_STREAM | SOCK_CLOEXEC); }
static long r_unix_dgram(void) { return r_sock(AF_UNIX, SOCK_DGRAM); }

struct probe { const char *name; long (*fn)(void); };
static const struct probe PROBES[] = {
    {"unshare", r_unshare}, {"clone_newuser", r_clone_newuser}, {"clone3", r_clone3},
    {"setns", r_setns}, {"mount", r_mount}, {"umount2", r_umount2},
    {"io_uring_setup", r_io_uring}, {"bpf", r_bpf}, {"ptrace", r_ptrace},
    {"process_vm_readv", r_process_vm_readv}, {"keyctl", r_keyctl}, {"add_key", r_add_key},
    {"request_key", r_request_key}, {"perf_event_open", r_perf}, {"userfaultfd", r_userfaultfd},
    {"kexec_file_load", r_kexec}, {"finit_module", r_init_module},
    {"open_by_handle_at", r_open_by_handle}, {"clock_settime", r_clock_settime},
    {"settimeofday", r_settimeofday}, {"socket_vsock", r_vsock}, {"socket_alg", r_alg},
    {"socket_packet", r_packet}, {"socket_inet_raw", r_inet_raw},
    {"personality_rie", r_personality},
    {"ctl_clone", r_clone_plain}, {"ctl_socket_inet", r_inet_stream},
    {"ctl_socket_unix", r_unix_dgram},
};

/* Each probe in its own child: one probe's success (e.g. entering a new user namespace) must
   not change what the next one sees, and a kill by the filter is reported, not fatal. */
static void run(const struct probe *p) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        long r = p->fn();
        if (r < 0) printf("%s errno=%d\n", p->name, errno);
        else printf("%s ok\n", p->name);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) { printf("%s fork-failed\n", p->name); return; }
    if (WIFSIGNALED(st)) printf("%s killed=%d\n", p->name, WTERMSIG(st));
    fflush(stdout);
}

int main(int argc, char **argv) {
    size_t n = sizeof PROBES / sizeof PROBES[0];
    for (int i = 1; i < argc; i++)
        for (size_t j = 0; j < n; j++)
            if (!strcmp(argv[i], "all") || !strcmp(argv[i], PROBES[j].name)) run(&PROBES[j]);
    return 0;
}
