#define _GNU_SOURCE
#include "CHeraldSystem.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/uio.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/mman.h>

const uint32_t HERALD_EPOLLIN = EPOLLIN;
const uint32_t HERALD_EPOLLOUT = EPOLLOUT;
const uint32_t HERALD_EPOLLERR = EPOLLERR;
const uint32_t HERALD_EPOLLHUP = EPOLLHUP;
const uint32_t HERALD_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t HERALD_EPOLLET = EPOLLET;
const uint32_t HERALD_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;
const int HERALD_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int HERALD_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int HERALD_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

int herald_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int herald_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int herald_epoll_wait(int epfd, herald_epoll_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int herald_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int herald_signalfd(const int *signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int *s = signals; *s; s++) sigaddset(&set, *s);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int herald_signalfd_read(int fd, int32_t *pid_out, int32_t *status_out) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) {
        if (pid_out) *pid_out = (int32_t)info.ssi_pid;
        if (status_out) *status_out = info.ssi_status;
        return (int)info.ssi_signo;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
}

void herald_reset_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, NULL);
    int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGCHLD, SIGTTIN, SIGTTOU, SIGPIPE, SIGUSR1, SIGUSR2, 0};
    for (int *s = sigs; *s; s++) signal(*s, SIG_DFL);
}

void herald_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int herald_block_sigpipe(void) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    return sigismember(&old, SIGPIPE) == 1;
}

void herald_unblock_sigpipe(void) {
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    struct timespec zero = {0, 0};
    while (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        if (sigtimedwait(&set, NULL, &zero) < 0) break;
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int herald_accept(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    return accept4(fd, (struct sockaddr *)addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int herald_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int herald_errno(void) { return errno; }

uint64_t herald_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t herald_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

int herald_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const int *from, const int *to, int count, int new_session) {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    sigset_t empty, all;
    int rc;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
    sigemptyset(&empty);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef POSIX_SPAWN_SETSID
    if (new_session) flags |= POSIX_SPAWN_SETSID;
#endif
    posix_spawnattr_setflags(&attr, flags);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    for (int i = 0; i < count; i++) posix_spawn_file_actions_adddup2(&actions, from[i], to[i]);
    rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int herald_move_fd_above(int fd, int minimum) {
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, minimum);
    if (moved < 0) return -1;
    close(fd);
    return moved;
}

int herald_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

int herald_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int herald_peer_credentials(int fd, int32_t *pid, uint32_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    return 0;
}

const int HERALD_O_PATH = O_PATH;

void herald_return_large_frees(void) { mallopt(M_MMAP_THRESHOLD, 128 * 1024); }

ssize_t herald_pread_cached(int fd, void *buffer, size_t count, off_t offset, size_t readahead) {
    static int nowait_unsupported = 0;
    if (!nowait_unsupported) {
        struct iovec iov = { buffer, count };
        ssize_t n = preadv2(fd, &iov, 1, offset, RWF_NOWAIT);
        if (n >= 0) return n;
        if (errno == EAGAIN) {
            int saved = errno;
            (void)posix_fadvise(fd, offset, (off_t)readahead, POSIX_FADV_WILLNEED);
            errno = saved;
            return -1;
        }
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) return -1;
        nowait_unsupported = 1;
    }
    return pread(fd, buffer, count, offset);
}

ssize_t herald_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, int count) {
    if (count < 0 || count > HERALD_MAX_PASSED_FDS || length == 0) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = (void *)bytes, .iov_len = length };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    union { struct cmsghdr align; char buffer[CMSG_SPACE(sizeof(int) * HERALD_MAX_PASSED_FDS)]; } control;
    if (count > 0) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)count);
    }
    return sendmsg(socket, &message, MSG_NOSIGNAL);
}

ssize_t herald_receive_with_fds(int socket, void *bytes, size_t capacity, int *fds, int max_fds, int *fd_count) {
    *fd_count = 0;
    struct iovec iov = { .iov_base = bytes, .iov_len = capacity };
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    union { struct cmsghdr align; char buffer[CMSG_SPACE(sizeof(int) * HERALD_MAX_PASSED_FDS)]; } control;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received < 0) return -1;
    int overflow = (message.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *passed = (int *)CMSG_DATA(header);
        for (int i = 0; i < count; i++) {
            if (*fd_count < max_fds) fds[(*fd_count)++] = passed[i];
            else { close(passed[i]); overflow = 1; }
        }
    }
    if (overflow) {
        for (int i = 0; i < *fd_count; i++) close(fds[i]);
        *fd_count = 0;
        errno = EMSGSIZE;
        return -1;
    }
    return received;
}
