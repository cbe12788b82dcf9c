// A minimal request/response server, to find what batching system calls through io_uring
// buys on this machine before building it into herald (issue 13). Not part of herald.
//
//   apt-get install liburing-dev
//   gcc -O2 -o /tmp/uring-pingpong deploy/experiments/uring-pingpong.c -luring
//   /tmp/uring-pingpong <port> <mode> &        # one per mode, on three ports
//   herald bench rr --target redis --port <port> --duration 4 --warmup 0
//
// Every request (any bytes read) gets "+PONG\r\n" (JSON=1: a randomNumber-sized JSON line,
// WELCOME=1: a welcome line first, for `herald bench rr` without --target redis).
//   mode 0  epoll; per readable connection a read(2), then a send(2) each: what herald does
//   mode 1  epoll; a read(2) each, then every send of the iteration in one io_uring_enter
//   mode 2  epoll; every recv and then every send of the iteration through io_uring
//           (two io_uring_enter calls an iteration instead of 2 × the ready connections)
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
static char input[MAX_FDS][512];
static char reply[128] = "+PONG\r\n";
static const char json[] = "{\"randomNumber\":0.7453126843929927,\"context\":\"response\",\"messageCount\":1}\n";
static const char welcome[] = "{\"welcome\":\"Hello! Welcome to the actionhero api\",\"room\":\"defaultRoom\",\"context\":\"api\"}\n";

static void drain_completions(struct io_uring *ring, int *ready, int *count) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int kept = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
        int fd = (int)cqe->user_data;
        if (ready) {
            if (cqe->res > 0) ready[kept++] = fd;
            else if (cqe->res != -EAGAIN) close(fd);
        }
        seen++;
    }
    io_uring_cq_advance(ring, seen);
    if (count) *count = kept;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s <port> <mode 0|1|2>\n", argv[0]); return 2; }
    int port = atoi(argv[1]), mode = atoi(argv[2]), one = 1;
    if (getenv("JSON")) strcpy(reply, json);
    size_t reply_length = strlen(reply);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(listener, (void *)&address, sizeof address) || listen(listener, 1024)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &event);
    struct io_uring ring;
    if (io_uring_queue_init(256, &ring, 0)) { perror("io_uring_queue_init"); return 1; }
    struct epoll_event events[256];
    int ready[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1), count = 0;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, 0, 0, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FDS) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (getenv("WELCOME")) send(c, welcome, sizeof welcome - 1, MSG_NOSIGNAL);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            if (mode == 2) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_recv(sqe, fd, input[fd], sizeof input[fd], MSG_DONTWAIT);
                sqe->user_data = (unsigned)fd;
                count++;
                continue;
            }
            ssize_t r = read(fd, input[fd], sizeof input[fd]);
            if (r > 0) ready[count++] = fd;
            else if (r == 0 || errno != EAGAIN) close(fd);
        }
        if (mode == 2 && count > 0) {
            io_uring_submit_and_wait(&ring, (unsigned)count);
            drain_completions(&ring, ready, &count);
        }
        if (mode == 0) {
            for (int i = 0; i < count; i++) send(ready[i], reply, reply_length, MSG_NOSIGNAL);
        } else if (count > 0) {
            for (int i = 0; i < count; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_send(sqe, ready[i], reply, reply_length, MSG_NOSIGNAL | MSG_DONTWAIT);
                sqe->user_data = (unsigned)ready[i];
            }
            io_uring_submit_and_wait(&ring, (unsigned)count);
            drain_completions(&ring, NULL, NULL);
        }
    }
}
