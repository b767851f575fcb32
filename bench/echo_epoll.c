/* Minimal single-threaded epoll echo server: the machine's limit for the echo benchmark.
 *
 * Usage: echo_epoll [PORT]   (binds 127.0.0.1; PORT 0 or absent picks a free port)
 * Prints "listening on 127.0.0.1:PORT" on stderr when ready; runs until SIGINT/SIGTERM.
 * Level-triggered; a write the kernel does not take whole keeps the rest and waits for EPOLLOUT.
 */
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
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUF 65536

struct conn { int fd; size_t pend_off, pend_len; char *pend; };

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int s) { (void)s; stop_flag = 1; }

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 3;
    }
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    fprintf(stderr, "listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stderr);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[MAX_EVENTS];
    static char buf[BUF];
    while (!stop_flag) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 500);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
                if (w < 0 && errno != EAGAIN) { close_conn(ep, c); continue; }
                if (w > 0) c->pend_off += (size_t)w;
                if (c->pend_off == c->pend_len) {
                    free(c->pend); c->pend = NULL; c->pend_off = c->pend_len = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                }
                continue;
            }
            ssize_t r = read(c->fd, buf, BUF);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close_conn(ep, c);
                continue;
            }
            ssize_t w = write(c->fd, buf, (size_t)r);
            if (w < 0) { if (errno != EAGAIN) { close_conn(ep, c); continue; } w = 0; }
            if (w < r) { /* keep the rest; stop reading until it is written (backpressure) */
                c->pend_len = (size_t)(r - w);
                c->pend = malloc(c->pend_len);
                memcpy(c->pend, buf + w, c->pend_len);
                c->pend_off = 0;
                struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
        }
    }
    return 0;
}
