/* Echo load client: N connections, fixed-size ping-pong, for a duration; prints req/s.
 *
 * Usage: echo_load HOST PORT CONNS SIZE SECONDS
 * Each connection sends SIZE bytes, waits for SIZE bytes back (one request), and repeats.
 * Single-threaded epoll, so every server is measured by the same client.
 * Output (stdout, one line): "requests=R seconds=S req_per_s=X conns=N size=B errors=E"
 * Exit 1 when no connection could be made or no request completed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn { int fd; size_t got; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    int nconns = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    if (nconns <= 0 || size == 0 || size > 65536 || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        fprintf(stderr, "cannot resolve %s\n", host);
        return 2;
    }
    char *msg = malloc(size), *buf = malloc(65536);
    memset(msg, 'x', size);
    int ep = epoll_create1(0);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    int one = 1, open_conns = 0;
    long errors = 0;
    for (int i = 0; i < nconns; i++) {
        int fd = socket(ai->ai_family, SOCK_STREAM, 0);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            errors++;
            close(fd);
            conns[i].fd = -1;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        open_conns++;
    }
    if (open_conns == 0) {
        fprintf(stderr, "no connection could be made\n");
        return 1;
    }
    /* Let forking servers (socat, ncat) start their children before the clock runs. */
    usleep(200000);
    for (int i = 0; i < nconns; i++) {
        if (conns[i].fd < 0) continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    long requests = 0;
    double start = now(), end = start + seconds;
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0 && write(conns[i].fd, msg, size) != (ssize_t)size) errors++;
    struct epoll_event evs[256];
    double t = start;
    while (t < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, buf, 65536, MSG_DONTWAIT);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->got += (size_t)r;
            while (c->got >= size) {
                c->got -= size;
                requests++;
                if (write(c->fd, msg, size) != (ssize_t)size) errors++;
            }
        }
        t = now();
    }
    double elapsed = now() - start;
    printf("requests=%ld seconds=%.3f req_per_s=%.1f conns=%d size=%zu errors=%ld\n", requests, elapsed,
           (double)requests / elapsed, open_conns, size, errors);
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    freeaddrinfo(ai);
    return requests > 0 ? 0 : 1;
}
