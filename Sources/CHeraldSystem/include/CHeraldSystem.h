// What Swift cannot import on its own: epoll's packed event struct, flag macros,
// prctl, signal-set helpers. Everything else is called from Glibc directly.
#ifndef CHERALD_SYSTEM_H
#define CHERALD_SYSTEM_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

// An unpacked copy of struct epoll_event.
typedef struct {
    uint32_t events;
    uint64_t data;
} herald_epoll_event;

extern const uint32_t HERALD_EPOLLIN;
extern const uint32_t HERALD_EPOLLOUT;
extern const uint32_t HERALD_EPOLLERR;
extern const uint32_t HERALD_EPOLLHUP;
extern const uint32_t HERALD_EPOLLRDHUP;
extern const uint32_t HERALD_EPOLLET;
extern const uint32_t HERALD_EPOLLEXCLUSIVE;
extern const int HERALD_EPOLL_CTL_ADD;
extern const int HERALD_EPOLL_CTL_MOD;
extern const int HERALD_EPOLL_CTL_DEL;

int herald_epoll_create(void);
int herald_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
// Waits like epoll_wait and copies at most `max` (<= 256) events into `out`.
int herald_epoll_wait(int epfd, herald_epoll_event *out, int max, int timeout_ms);

int herald_eventfd(void);
// Returns a signalfd for the given signals (0-terminated list), blocking them first.
int herald_signalfd(const int *signals);
// Reads one signal from a signalfd; returns the signal number, 0 if none, -1 on error.
int herald_signalfd_read(int fd, int32_t *pid_out, int32_t *status_out);
// Unblocks every signal and resets the listed ones to their default action.
void herald_reset_signals(void);
void herald_ignore_sigpipe(void);
// SIGPIPE blocked on the calling thread (an event loop's): hiredis writes with write(2),
// which raises SIGPIPE on a connection the peer closed, and that kills a process that
// has not ignored it (a program embedding the library, a test run). Blocked, the write
// fails with EPIPE instead. Returns 1 if it was blocked already (leave it so).
int herald_block_sigpipe(void);
// Takes any SIGPIPE left pending on the calling thread, then unblocks it.
void herald_unblock_sigpipe(void);

int herald_accept(int fd, struct sockaddr_storage *addr, socklen_t *len);
// Sets the parent-death signal of the calling process.
int herald_set_parent_death_signal(int sig);

// posix_spawn with every signal unblocked and reset to its default, the fds
// `from[i]` placed at `to[i]` (close-on-exec cleared), optionally in a new session.
// Returns 0 and sets *pid, or an errno value.
int herald_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const int *from, const int *to, int count, int new_session);
// Moves fd to a number >= minimum (close-on-exec); returns the new fd or -1.
int herald_move_fd_above(int fd, int minimum);
int herald_set_cloexec(int fd, int on);
// An anonymous in-memory file (close-on-exec), or -1.
int herald_memfd(const char *name);
// The pid and uid of a unix socket's peer (SO_PEERCRED); 0, or -1 with errno.
int herald_peer_credentials(int fd, int32_t *pid, uint32_t *uid);

// Fixes malloc's mmap threshold at 128 KiB (glibc raises it, up to 32 MiB, each time a
// large block is freed): blocks that large then always come from mmap and go back to
// the system when freed, so a worker's memory returns after big requests are done.
void herald_return_large_frees(void);

// Reads like pread, but only what is in the page cache (preadv2 with RWF_NOWAIT):
// -1 with errno EAGAIN when the data is not cached yet; then it asks the kernel to read
// ahead `readahead` bytes from `offset` in the background. Where RWF_NOWAIT is not
// supported it is a plain pread.
ssize_t herald_pread_cached(int fd, void *buffer, size_t count, off_t offset, size_t readahead);

// open(2)'s O_PATH (GNU: not shown to Swift).
extern const int HERALD_O_PATH;

// Descriptor passing over a unix socket (SCM_RIGHTS; the CMSG_* macros cannot be
// imported). At most HERALD_MAX_PASSED_FDS descriptors per message.
#define HERALD_MAX_PASSED_FDS 253
// Sends `length` bytes (at least 1) with `count` descriptors attached; returns the bytes
// sent (the descriptors go with the first byte) or -1 with errno. MSG_NOSIGNAL.
ssize_t herald_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, int count);
// Receives up to `capacity` bytes and up to `max_fds` descriptors (close-on-exec);
// returns the bytes read (0 at end of stream) or -1 with errno; *fd_count says how
// many descriptors arrived. Descriptors beyond max_fds or a truncated control message
// are closed and reported as -1 with errno EMSGSIZE.
ssize_t herald_receive_with_fds(int socket, void *bytes, size_t capacity, int *fds, int max_fds, int *fd_count);

int herald_errno(void);
uint64_t herald_monotonic_ns(void);
uint64_t herald_wall_ms(void);
#endif
