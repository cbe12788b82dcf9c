// How fast can this machine open a million loopback TCP connections, each answered with a
// welcome line, with no server logic at all? The floor under issue 13's "connect storm
// <= 60 s" for one host holding 1,000,000 connections. Not part of herald.
//
//   gcc -O2 -o /tmp/storm-floor deploy/experiments/storm-floor.c
//   /tmp/storm-floor <acceptors> <connectors> <connections> [concurrency] [port]   # e.g. 53 51 1000000 128
//
// With a port (and 0 acceptors) only the connectors run, against a server already
// listening there (herald: the same storm with herald's side real and this load).
//
// The same shape as deploy/million.py against `herald start --workers 53`: <acceptors>
// processes, each with its own listening socket on one port (SO_REUSEPORT, as herald's
// workers), accept4 every connection, register it with epoll (EPOLLIN, as herald) and
// send it a welcome line of herald's size (86 bytes) with one send(2). <connectors>
// processes (at nice 10, as million.py runs its load) open their share with non-blocking
// connects, at most <concurrency> in flight each (million.py: 128), from source addresses
// 127.0.1.1 and up (7,000 connections each, IP_BIND_ADDRESS_NO_PORT), and read the welcome
// line on each. Printed: the time from the start to the last welcome read anywhere (the
// storm), the slowest connector, and the CPU the children used (user and system).
// Everything stays open until all are up; then every process exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static void raise_files(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

static const char welcome[] =
    "{\"welcome\":\"Hello! Welcome to the actionhero api\",\"room\":\"defaultRoom\",\"context\":\"api\"}\r\n";

static int listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 4096) < 0) die("listen");
    return fd;
}

// Accepts until killed; each accepted connection is registered for reading and welcomed.
static void acceptor(int fd) {
    raise_files();
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd}, events[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd != fd) continue;  // (a client's data: none is sent)
            for (;;) {
                int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0) break;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                send(c, welcome, sizeof welcome - 1, MSG_NOSIGNAL);
            }
        }
    }
}

// Opens `count` connections (source addresses from index `first`), reads each welcome,
// then writes its time to `report` and waits to be killed.
static void connector(int port, int count, int first, int concurrency, int report) {
    raise_files();
    if (nice(10) == -1 && errno != 0) { /* ignored */ }
    int ep = epoll_create1(0), opened = 0, inflight = 0, done = 0;
    struct epoll_event events[256];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[256];
    while (done < count) {
        while (inflight < concurrency && opened < count) {
            int index = first + opened, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
            if (fd < 0) die("socket");
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            // 127.0.1.1 is 127.0.0.0 + 257; 7,000 connections an address.
            unsigned address = (127u << 24) + 257 + index / 7000;
            struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(address)};
            if (bind(fd, (struct sockaddr *)&from, sizeof from) < 0) die("bind source");
            if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) die("connect");
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            opened++, inflight++;
        }
        int n = epoll_wait(ep, events, 256, 50);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) { fprintf(stderr, "connection closed or failed before its welcome\n"); exit(1); }
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);  // held open, no longer watched
            inflight--, done++;
        }
    }
    double t = now();
    if (write(report, &t, sizeof t) != sizeof t) die("report");
    pause();
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <acceptors> <connectors> <connections> [concurrency] [port]\n", argv[0]);
        return 2;
    }
    int acceptors = atoi(argv[1]), connectors = atoi(argv[2]), total = atoi(argv[3]);
    int concurrency = argc > 4 ? atoi(argv[4]) : 128;
    raise_files();
    // A free port: bind to 0, read it back, and let the acceptors bind it with SO_REUSEPORT.
    int probe = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(probe, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(probe, (struct sockaddr *)&a, sizeof a);
    getsockname(probe, (struct sockaddr *)&a, &len);
    int port = argc > 5 ? atoi(argv[5]) : ntohs(a.sin_port);
    pid_t pids[1024];
    int children = 0;
    for (int i = 0; i < acceptors; i++) {
        int fd = listener(port);
        pid_t p = fork();
        if (p == 0) acceptor(fd);
        close(fd);
        pids[children++] = p;
    }
    close(probe);
    usleep(200000);
    int reports[2];
    if (pipe(reports) < 0) die("pipe");
    struct tms before;
    times(&before);
    double start = now();
    int share = total / connectors;
    for (int i = 0; i < connectors; i++) {
        int count = i == connectors - 1 ? total - share * i : share;
        pid_t p = fork();
        if (p == 0) connector(port, count, share * i, concurrency, reports[1]);
        pids[children++] = p;
    }
    double last = 0, first = 0;
    for (int i = 0; i < connectors; i++) {
        double t;
        if (read(reports[0], &t, sizeof t) != sizeof t) die("read report");
        if (i == 0) first = t;
        if (t > last) last = t;
    }
    // CPU of the children so far: they are still alive, so read /proc/self/stat's
    // children fields only after they exit.
    for (int i = 0; i < children; i++) kill(pids[i], SIGKILL);
    while (wait(NULL) > 0) {}
    struct tms after;
    times(&after);
    double tick = sysconf(_SC_CLK_TCK);
    printf("storm: %d connections, %d acceptors, %d connectors (concurrency %d): first connector done %.1f s, all %.1f s; "
           "children CPU user %.1f s, system %.1f s (including the teardown)\n",
           total, acceptors, connectors, concurrency, first - start, last - start,
           (after.tms_cutime - before.tms_cutime) / tick, (after.tms_cstime - before.tms_cstime) / tick);
    return 0;
}
