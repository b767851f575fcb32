/* C connect loop: new TCP connections per second at a fixed concurrency, the reference for
 * `netkit measure connections`.
 *
 * Usage: conn_loop HOST PORT CONCURRENCY SECONDS [COUNT [fin|rst [recheck]]]
 * Keeps CONCURRENCY non-blocking connects under way (one epoll); each one that connects is closed
 * at once (fin: close(); rst: SO_LINGER 0 then close()) and a new one started. COUNT > 0 stops
 * after that many attempts. Every attempt has a 2 s timeout. "recheck" calls connect() a second time
 * at once (on loopback the handshake has completed by then: 0, or its error), as netkit does, and
 * waits in epoll only for an attempt still under way (EALREADY). Errors are counted by errno as
 * netkit counts them. Output (stdout, one line):
 * "attempts=A connections=C seconds=S conn_per_s=X refused=.. timeout=.. reset=.. eaddrnotavail=..
 *  emfile=.. other=.."
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long refused, timeouts, resets, addrnotavail, emfile, other;

static void count_err(int e) {
    switch (e) {
    case ECONNREFUSED: refused++; break;
    case ETIMEDOUT: timeouts++; break;
    case ECONNRESET: case EPIPE: case ECONNABORTED: resets++; break;
    case EADDRNOTAVAIL: case EADDRINUSE: addrnotavail++; break;
    case EMFILE: case ENFILE: emfile++; break;
    default: other++;
    }
}

#define MAXFD 65536
static long long started_at[MAXFD];

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT CONCURRENCY SECONDS [COUNT [fin|rst]]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    int conc = atoi(argv[3]);
    double seconds = atof(argv[4]);
    long count = argc > 5 ? atol(argv[5]) : 0;
    int rst = argc > 6 && strcmp(argv[6], "rst") == 0;
    int recheck = argc > 7 && strcmp(argv[7], "recheck") == 0;
    struct linger lg = {1, 0};
    int ep = epoll_create1(0);
    long long t0 = now_ns(), end = t0 + (long long)(seconds * 1e9), timeout = 2000000000LL;
    long attempts = 0, done = 0;
    int live = 0;
    struct epoll_event evs[1024];
    for (;;) {
        long long now = now_ns();
        if (now >= end) break;
        int busy = 0, room = conc - live;
        while (room-- > 0 && (count == 0 || attempts < count)) {
            attempts++;
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) { count_err(errno); busy = 1; break; }
            if (fd >= MAXFD) { close(fd); count_err(EMFILE); busy = 1; break; }
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                count_err(errno);
                close(fd);
                busy = 1;
                break;
            }
            if (recheck) {
                int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
                if (rc == 0 || errno == EISCONN) {
                    done++;
                    if (rst) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                    close(fd);
                    busy = 1;
                    continue;
                }
                if (errno != EALREADY && errno != EINPROGRESS) {
                    count_err(errno);
                    close(fd);
                    busy = 1;
                    break;
                }
            }
            started_at[fd] = now_ns();
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            live++;
        }
        if (live == 0 && count && attempts >= count) break;
        if (live == 0 && busy) continue;  /* nothing to wait for */
        int n = epoll_wait(ep, evs, 1024, busy ? 0 : 100);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) count_err(err);
            else {
                done++;
                if (rst) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(fd);
            started_at[fd] = 0;
            live--;
        }
        /* timeouts: a linear scan is fine at the concurrencies this is run with */
        if (n == 0 && live) {
            for (int fd = 0; fd < MAXFD; fd++) {
                if (started_at[fd] && now - started_at[fd] > timeout) {
                    count_err(ETIMEDOUT);
                    close(fd);
                    started_at[fd] = 0;
                    live--;
                }
            }
        }
    }
    double el = (now_ns() - t0) / 1e9;
    printf("attempts=%ld connections=%ld seconds=%.6f conn_per_s=%.1f refused=%ld timeout=%ld reset=%ld "
           "eaddrnotavail=%ld emfile=%ld other=%ld\n", attempts, done, el, done / el, refused, timeouts, resets,
           addrnotavail, emfile, other);
    return done > 0 ? 0 : 1;
}
