/*
 * The textbook blocking server that the example C servers (kv, frames) build on:
 * the C twin of textbook_server.py.
 *
 * socket, SO_REUSEADDR, bind, listen, then an accept loop that starts one thread
 * per connection (backing off when out of descriptors); the main thread only
 * waits for SIGTERM/SIGINT (sigwait), which every other thread has blocked; the
 * Unix socket file it created is removed at the end. The command line:
 *
 *     SERVER -h HOST -p PORT [--backlog N]     TCP (127.0.0.1, ::1, ...)
 *     SERVER -u PATH [--backlog N]             Unix stream socket
 *
 * A protocol's server.c provides serve(fd), one connection until it ends, and
 * calls textbook_main(argc, argv, serve) from its main().
 */

#define _GNU_SOURCE
#include "textbook_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IDLE_TIMEOUT 30                 /* seconds a client may keep us waiting */
#define ACCEPT_BACKOFF_NS 100000000L    /* 0.1 s pause when accept() runs out of fds */
#define DRAIN_MS 2000                   /* after our own FIN: read what the client */
#define DRAIN_BYTES (16u * 1024 * 1024) /* still sends, this long or this much */
#define THREAD_STACK (256 * 1024)

static void (*protocol_serve)(int fd);  /* the protocol: one connection */

/* ------------------------------------------------------------------ bytes */

/* Room for `more` bytes after end; 0, or -1 when out of memory. */
int buffer_reserve(struct buffer *b, size_t more)
{
    if (b->start > 0 && b->end + more > b->cap) {  /* reuse consumed space first */
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    if (b->end + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : RECV_SIZE;
    while (cap < b->end + more)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int buffer_append(struct buffer *b, const void *bytes, size_t len)
{
    if (buffer_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->end, bytes, len);
    b->end += len;
    return 0;
}

/* ---------------------------------------------------------- one connection */

/* send() until every byte is gone: one call may take only part of them. */
int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a reset client is an EPIPE error here, not a SIGPIPE death. */
        ssize_t sent = send(fd, data, len, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += sent;
        len -= (size_t)sent;
    }
    return 0;
}

/* One recv() of up to RECV_SIZE bytes, appended to `in`: the count, 0 at the
 * client's FIN, -1 when it fails (a reset, silent past SO_RCVTIMEO, out of memory). */
ssize_t receive_more(int fd, struct buffer *in)
{
    if (buffer_reserve(in, RECV_SIZE) < 0)
        return -1;
    for (;;) {
        ssize_t got = recv(fd, in->data + in->end, RECV_SIZE, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got > 0)
            in->end += (size_t)got;
        return got;
    }
}

/* End the connection before the client did (the protocol's reasons): our FIN,
 * then read and drop what the client still sends until its FIN (bounded), so
 * that close() finds no unread input and sends no RST that could destroy the
 * last reply before the client reads it. */
void hang_up(int fd)
{
    char scratch[16384];
    size_t drained = 0;
    struct timespec now, end;
    if (shutdown(fd, SHUT_WR) < 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += DRAIN_MS / 1000;
    while (drained < DRAIN_BYTES) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        ssize_t got = recv(fd, scratch, sizeof scratch, 0);
        if (got <= 0)
            return;
        drained += (size_t)got;
    }
}

static void *connection_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    /* Bound every recv() and send() so that a vanished client cannot hold its
     * thread forever: the call then fails with EAGAIN. */
    struct timeval idle = {.tv_sec = IDLE_TIMEOUT};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof idle);
    protocol_serve(fd);
    close(fd);
    return NULL;
}

/* ----------------------------------------------------------------- accepting */

static int listen_fd = -1;
static const char *unix_path;      /* our Unix socket file, if any */
static struct stat unix_identity;  /* and which file bind() created */
static pthread_t main_thread;
static volatile sig_atomic_t accept_failed;

static void *accept_loop(void *unused)
{
    (void)unused;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors (or memory): retrying at once would spin at
                 * 100 % CPU. Pause; connections that end meanwhile free some. The
                 * pending connection stays in the listen queue. */
                struct timespec pause = {.tv_nsec = ACCEPT_BACKOFF_NS};
                nanosleep(&pause, NULL);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue; /* that client gave up while queued: next one */
            perror("server: accept");
            accept_failed = 1;
            pthread_kill(main_thread, SIGTERM);
            return NULL;
        }
        pthread_t thread;
        if (pthread_create(&thread, &attr, connection_thread, (void *)(intptr_t)fd) != 0)
            close(fd); /* no thread for this one: refuse it, serve the rest */
    }
}

/* socket(), setsockopt(SO_REUSEADDR), bind(), listen(); -1 with a message. */
static int open_listener(const char *host, int port, const char *path, int backlog)
{
    struct sockaddr_storage address;
    socklen_t size;
    memset(&address, 0, sizeof address);
    if (path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)&address;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1); /* length checked by main */
        size = sizeof *un;
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
        /* A numeric address only (inet_pton): no name lookup, ever. */
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)port);
            size = sizeof *in4;
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            size = sizeof *in6;
        } else {
            fprintf(stderr, "server: HOST must be an IP address such as 127.0.0.1 or ::1, "
                            "not '%s'\n", host);
            return -1;
        }
    }
    int fd = socket(address.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("server: socket");
        return -1;
    }
    int on = 1;
    /* Without it, a restarted server cannot bind while connections of the
     * previous one linger in TIME_WAIT. */
    if (path == NULL && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
        perror("server: setsockopt(SO_REUSEADDR)");
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&address, size) < 0) {
        fprintf(stderr, "server: cannot bind %s: %s\n", path ? path : host, strerror(errno));
        close(fd);
        return -1;
    }
    if (path != NULL && stat(path, &unix_identity) == 0)
        unix_path = path;
    if (listen(fd, backlog) < 0) {
        perror("server: listen");
        close(fd);
        return -1;
    }
    return fd;
}

/* Unlink our Unix socket path, only if it still is the file bind() created. */
static void remove_socket_file(void)
{
    struct stat now;
    if (unix_path != NULL && stat(unix_path, &now) == 0 &&
        now.st_dev == unix_identity.st_dev && now.st_ino == unix_identity.st_ino)
        unlink(unix_path);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: server -h HOST -p PORT [--backlog N]\n"
                "       server -u PATH [--backlog N]\n");
}

static int parse_number(const char *text, long low, long high, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < low || value > high)
        return -1;
    *out = value;
    return 0;
}

int textbook_main(int argc, char **argv, void (*serve)(int fd))
{
    static const struct option longs[] = {
        {"backlog", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    protocol_serve = serve;
    const char *host = NULL, *path = NULL;
    long port = -1, backlog = 128;
    int option;
    while ((option = getopt_long(argc, argv, "h:p:u:", longs, NULL)) != -1) {
        switch (option) {
        case 'h': host = optarg; break;
        case 'u': path = optarg; break;
        case 'p':
            if (parse_number(optarg, 0, 65535, &port) < 0) {
                fprintf(stderr, "server: PORT must be 0-65535, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_number(optarg, 0, 1 << 30, &backlog) < 0) {
                fprintf(stderr, "server: --backlog must be a number, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (path != NULL) == (port >= 0) || (path != NULL && host != NULL)) {
        usage(stderr);
        return 2;
    }
    if (path != NULL && strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        fprintf(stderr, "server: Unix socket path too long (%zu bytes)\n", strlen(path));
        return 2;
    }

    /* Block the stop signals before any thread exists: every thread inherits
     * the mask, so only sigwait() below ever takes them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    main_thread = pthread_self();

    listen_fd = open_listener(host ? host : "127.0.0.1", (int)port, path, (int)backlog);
    if (listen_fd < 0) {
        remove_socket_file();
        return 1;
    }
    pthread_t acceptor;
    if (pthread_create(&acceptor, NULL, accept_loop, NULL) != 0) {
        fprintf(stderr, "server: cannot start the accept thread\n");
        accept_failed = 1;
    } else {
        int signum;
        sigwait(&stop, &signum);
    }
    close(listen_fd);
    remove_socket_file();
    return accept_failed ? 1 : 0;
}
