// How fast can this machine deliver one line to each of a million loopback TCP connections,
// with no server logic at all? The floor under issue 13's "a say to a room holding a
// million connections, delivered to every one within 2 s". Not part of herald.
//
//   gcc -O2 -o /tmp/fanout-floor deploy/experiments/fanout-floor.c
//   /tmp/fanout-floor <pairs> <connections per pair> [rounds]     # e.g. 53 18900 3
//
// It forks <pairs> sender/receiver pairs, standing in for herald's workers and for the load
// processes of deploy/million.py: each receiver opens <connections> connections to its
// sender (from its own source address, 127.0.2.<pair>), which sends a welcome line on each
// as it accepts it. Per round the parent tells every sender at once to write one 142-byte
// line (the size of a say) to each of its connections, one send(2) each, as herald does;
// every receiver reads until each of its connections has its line and reports when the
// last one came. Printed per round: the time from "go" to the last delivery anywhere, and
// the CPU the children used for it (user and system time, times(2)), per delivery. The
// pairs connect one after another (all at once, the blocking connects overflow the
// listeners' queues): the setup time it prints is no connect storm.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static double cpu_seconds(void) {
    struct tms t;
    times(&t);
    return (double)(t.tms_utime + t.tms_stime) / sysconf(_SC_CLK_TCK);
}

static void read_exact(int fd, void *buffer, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, (char *)buffer + got, size - got);
        if (n <= 0) { if (n < 0 && errno == EINTR) continue; fprintf(stderr, "a child ended early\n"); exit(1); }
        got += (size_t)n;
    }
}

static const char welcome[] = "{\"welcome\":\"Hello! Welcome to the herald api\",\"context\":\"api\"}\n";
static const char line[] =
    "{\"message\":\"mark-1 a line about the size of a say to defaultRoom\",\"room\":\"defaultRoom\","
    "\"from\":\"0123456789abcdef\",\"context\":\"user\",\"sentAt\":1}\n";

// A sender: accepts `count` connections, then per "go" byte on `control` sends the line to
// each and reports its CPU seconds for the round.
static void sender(int listener, int count, int control, int report) {
    int *fds = malloc(sizeof(int) * count);
    for (int i = 0; i < count; i++) {
        fds[i] = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (fds[i] < 0) die("accept");
        int yes = 1;
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
        if (send(fds[i], welcome, sizeof welcome - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) die("send welcome");
    }
    double ready = 0;
    write(report, &ready, sizeof ready);
    char go;
    while (read(control, &go, 1) == 1) {
        double before = cpu_seconds();
        for (int i = 0; i < count; i++) {
            if (send(fds[i], line, sizeof line - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) die("send");
        }
        double used = cpu_seconds() - before;
        write(report, &used, sizeof used);
    }
    exit(0);
}

// A receiver: `count` connections to `port` from `source`; per round, reads until every
// connection has one line, then reports the time of the last read and its CPU seconds.
// Reads what came on the ready connections, waiting up to `timeout` ms; adds the bytes to *got.
static void drain(int epoll, int timeout, size_t *got) {
    struct epoll_event events[512];
    char buffer[4096];
    int n = epoll_wait(epoll, events, 512, timeout);
    for (int i = 0; i < n; i++) {
        ssize_t size = read(events[i].data.fd, buffer, sizeof buffer);
        if (size > 0) *got += (size_t)size;
    }
}

static void receiver(const char *source, int port, int count, int control, int report) {
    int epoll = epoll_create1(0);
    // Welcomes are read as the connects go on: a million unread ones would pass the
    // kernel's TCP memory limit (net.ipv4.tcp_mem) and stall everything.
    size_t welcomes = (size_t)count * (sizeof welcome - 1), got = 0;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int yes = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &yes, sizeof yes);
        struct sockaddr_in local = { .sin_family = AF_INET };
        inet_pton(AF_INET, source, &local.sin_addr);
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) die("bind");
        struct sockaddr_in remote = { .sin_family = AF_INET, .sin_port = htons(port) };
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
        if (connect(fd, (struct sockaddr *)&remote, sizeof remote) < 0) die("connect");
        struct epoll_event event = { .events = EPOLLIN, .data.fd = fd };
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
        drain(epoll, 0, &got);
    }
    while (got < welcomes) drain(epoll, -1, &got);
    double ready = now();
    write(report, &ready, sizeof ready);
    char go;
    while (read(control, &go, 1) == 1) {
        double before = cpu_seconds();
        size_t expected = (size_t)count * (sizeof line - 1), received = 0;
        while (received < expected) drain(epoll, -1, &received);
        double last = now();
        double used = cpu_seconds() - before;
        write(report, &last, sizeof last);
        write(report, &used, sizeof used);
    }
    exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s <pairs> <connections per pair> [rounds]\n", argv[0]); return 2; }
    int pairs = atoi(argv[1]), count = atoi(argv[2]), rounds = argc > 3 ? atoi(argv[3]) : 3;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;  // (children inherit the earlier pairs' pipes: 4 each)
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0 || (long)limit.rlim_max < count + 4L * pairs + 16) {
        fprintf(stderr, "the descriptor limit (%ld) is too low for %d connections and %d pairs\n", (long)limit.rlim_max, count, pairs);
        return 1;
    }
    double started = now();
    int senderControl[pairs], receiverControl[pairs], senderReport[pairs], receiverReport[pairs];
    pid_t children[2 * pairs];
    for (int p = 0; p < pairs; p++) {
        int listener = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = { .sin_family = AF_INET };
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
        if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) die("listen");
        socklen_t length = sizeof address;
        getsockname(listener, (struct sockaddr *)&address, &length);
        int port = ntohs(address.sin_port);
        char source[32];
        snprintf(source, sizeof source, "127.0.2.%d", p + 1);
        int c1[2], r1[2], c2[2], r2[2];
        if (pipe(c1) || pipe(r1) || pipe(c2) || pipe(r2)) die("pipe");
        if ((children[2 * p] = fork()) == 0) { close(c1[1]); close(r1[0]); sender(listener, count, c1[0], r1[1]); }
        if ((children[2 * p + 1] = fork()) == 0) { close(c2[1]); close(r2[0]); close(listener); receiver(source, port, count, c2[0], r2[1]); }
        close(listener); close(c1[0]); close(r1[1]); close(c2[0]); close(r2[1]);
        senderControl[p] = c1[1]; senderReport[p] = r1[0]; receiverControl[p] = c2[1]; receiverReport[p] = r2[0];
        // One pair at a time: all at once, the blocking connects overflow the listeners'
        // queues and crawl through SYN retries (this tool times the fan-out, not a storm).
        double ready;
        read_exact(senderReport[p], &ready, sizeof ready);
        read_exact(receiverReport[p], &ready, sizeof ready);
    }
    printf("%d pairs x %d connections = %ld connections up, each with its welcome line (%.0f s)\n",
           pairs, count, (long)pairs * count, now() - started);
    for (int round = 1; round <= rounds; round++) {
        sleep(1);
        for (int p = 0; p < pairs; p++) write(receiverControl[p], "g", 1);
        double go = now();
        for (int p = 0; p < pairs; p++) write(senderControl[p], "g", 1);
        double last = 0, sendCPU = 0, receiveCPU = 0;
        for (int p = 0; p < pairs; p++) {
            double used;
            read_exact(senderReport[p], &used, sizeof used);
            sendCPU += used;
        }
        for (int p = 0; p < pairs; p++) {
            double at, used;
            read_exact(receiverReport[p], &at, sizeof at);
            read_exact(receiverReport[p], &used, sizeof used);
            if (at > last) last = at;
            receiveCPU += used;
        }
        long deliveries = (long)pairs * count;
        printf("round %d: %ld deliveries, last %.2f s after go; CPU senders %.2f s + receivers %.2f s = %.2f us a delivery\n",
               round, deliveries, last - go, sendCPU, receiveCPU, (sendCPU + receiveCPU) * 1e6 / deliveries);
        fflush(stdout);
    }
    // (Each child holds the earlier pairs' pipes too: no EOF would end them.)
    for (int i = 0; i < 2 * pairs; i++) kill(children[i], SIGKILL);
    for (int i = 0; i < 2 * pairs; i++) waitpid(children[i], NULL, 0);
    return 0;
}
