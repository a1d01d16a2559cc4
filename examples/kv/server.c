/*
 * kv: an inline text key-value server in the style of Redis's inline commands.
 * The C twin of server.py: same protocol, same command line, same behaviour.
 *
 *     cc -O2 -Wall -Wextra -pthread -o kv-server server.c
 *     ./kv-server -h HOST -p PORT [--backlog N]     TCP (127.0.0.1, ::1, ...)
 *     ./kv-server -u PATH [--backlog N]             Unix stream socket
 *
 * One command per line, each line ended by CRLF; one reply line per command:
 *
 *     PING              -> +PONG
 *     SET key value     -> +OK
 *     GET key           -> $value            or  -ERR no such key
 *     DEL key           -> :1  (deleted)     or  :0 (there was no such key)
 *     INCR key          -> :n  (a missing key counts from 0) or -ERR not an integer
 *     QUIT              -> +BYE, and the server closes the connection
 *
 * Verbs are case-insensitive; keys and values are single words. Anything else
 * is "-ERR unknown command"; a known verb with the wrong number of words is
 * "-ERR wrong number of arguments"; a line over 8 MiB is "-ERR line too long"
 * and the end of the connection.
 *
 * The textbook blocking server: socket, SO_REUSEADDR, bind, listen, then an
 * accept loop that starts one thread per connection; all threads share one
 * hash table under a mutex. The main thread only waits for SIGTERM/SIGINT
 * (sigwait), which every other thread has blocked.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (8u * 1024 * 1024)     /* longest command line, without its CRLF */
#define RECV_SIZE (64 * 1024)           /* bytes asked for per recv() */
#define IDLE_TIMEOUT 30                 /* seconds a client may keep us waiting */
#define ACCEPT_BACKOFF_NS 100000000L    /* 0.1 s pause when accept() runs out of fds */
#define DRAIN_MS 2000                   /* after our own FIN: read what the client */
#define DRAIN_BYTES (16u * 1024 * 1024) /* still sends, this long or this much */
#define BUCKETS 4096                    /* hash table size (chained) */
#define THREAD_STACK (256 * 1024)

/* ------------------------------------------------------------------ bytes */

/* A growable byte buffer: data[start, end) holds the bytes not consumed yet. */
struct buffer {
    char *data;
    size_t start, end, cap;
};

/* Room for `more` bytes after end; 0, or -1 when out of memory. */
static int buffer_reserve(struct buffer *b, size_t more)
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

static int buffer_append(struct buffer *b, const void *bytes, size_t len)
{
    if (buffer_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->end, bytes, len);
    b->end += len;
    return 0;
}

/* --------------------------------------------------------------- the store */

struct entry {
    struct entry *next;
    char *key, *value;
    size_t key_len, value_len;
};

static struct entry *table[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t bucket_of(const char *key, size_t len)
{
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ (unsigned char)key[i]) * 16777619u;
    return hash % BUCKETS;
}

/* The entry's link in its bucket (*link == NULL: no such key). Hold table_lock. */
static struct entry **find(const char *key, size_t len)
{
    struct entry **link = &table[bucket_of(key, len)];
    while (*link != NULL && !((*link)->key_len == len && memcmp((*link)->key, key, len) == 0))
        link = &(*link)->next;
    return link;
}

/* Store a copy of value under key; -1 when out of memory. Hold table_lock. */
static int store(const char *key, size_t key_len, const char *value, size_t value_len)
{
    char *copy = malloc(value_len ? value_len : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, value, value_len);
    struct entry **link = find(key, key_len);
    if (*link == NULL) {
        struct entry *entry = calloc(1, sizeof *entry);
        char *key_copy = malloc(key_len);
        if (entry == NULL || key_copy == NULL) {
            free(entry);
            free(key_copy);
            free(copy);
            return -1;
        }
        memcpy(key_copy, key, key_len);
        entry->key = key_copy;
        entry->key_len = key_len;
        *link = entry;
    }
    free((*link)->value);
    (*link)->value = copy;
    (*link)->value_len = value_len;
    return 0;
}

/* ------------------------------------------------------------ the commands */

/* A word of the command line. */
struct word {
    const char *at;
    size_t len;
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Split line into at most max words; the count found (max + 1 when there are more). */
static size_t split(const char *line, size_t len, struct word *words, size_t max)
{
    size_t count = 0, i = 0;
    while (i < len) {
        while (i < len && is_space(line[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_space(line[i]))
            i++;
        if (count == max)
            return max + 1;
        words[count].at = line + start;
        words[count].len = i - start;
        count++;
    }
    return count;
}

static int is_verb(const struct word *w, const char *verb)
{
    return w->len == strlen(verb) && strncasecmp(w->at, verb, w->len) == 0;
}

/* A 64-bit integer in decimal ("-?[0-9]{1,19}", in range); 0, or -1 when not one. */
static int parse_int64(const char *text, size_t len, int64_t *out)
{
    char digits[24];
    size_t sign = len > 0 && text[0] == '-';
    if (len - sign < 1 || len - sign > 19)
        return -1;
    for (size_t i = sign; i < len; i++)
        if (!isdigit((unsigned char)text[i]))
            return -1;
    memcpy(digits, text, len);
    digits[len] = '\0';
    errno = 0;
    long long value = strtoll(digits, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = value;
    return 0;
}

#define REPLY(out, text) buffer_append(out, text, sizeof text - 1)

static int do_incr(const struct word *key, struct buffer *out)
{
    char number[32];
    int64_t value = 0;
    pthread_mutex_lock(&table_lock); /* read, add, write as one step */
    struct entry *entry = *find(key->at, key->len);
    int result;
    if (entry != NULL && parse_int64(entry->value, entry->value_len, &value) < 0) {
        result = REPLY(out, "-ERR not an integer");
    } else if (value == INT64_MAX) {
        result = REPLY(out, "-ERR increment would overflow");
    } else {
        int len = snprintf(number, sizeof number, ":%" PRId64, value + 1);
        result = store(key->at, key->len, number + 1, (size_t)len - 1);
        if (result == 0)
            result = buffer_append(out, number, (size_t)len);
    }
    pthread_mutex_unlock(&table_lock);
    return result;
}

/* The reply to one command line, appended to out. Returns 0, 1 to hang up after
 * the reply (QUIT), or -1 when out of memory. */
static int execute(const char *line, size_t len, struct buffer *out)
{
    struct word w[3];
    size_t count = split(line, len, w, 3);
    int result = 0;
    static const struct { const char *verb; size_t arity; } verbs[] = {
        {"PING", 0}, {"SET", 2}, {"GET", 1}, {"DEL", 1}, {"INCR", 1}, {"QUIT", 0},
    };
    size_t known = sizeof verbs / sizeof verbs[0], v = known;
    if (count > 0)
        for (v = 0; v < known && !is_verb(&w[0], verbs[v].verb); v++)
            ;
    if (v == known)
        return REPLY(out, "-ERR unknown command");
    if (count - 1 != verbs[v].arity)
        return REPLY(out, "-ERR wrong number of arguments");

    if (is_verb(&w[0], "PING")) {
        result = REPLY(out, "+PONG");
    } else if (is_verb(&w[0], "SET")) {
        pthread_mutex_lock(&table_lock);
        result = store(w[1].at, w[1].len, w[2].at, w[2].len);
        pthread_mutex_unlock(&table_lock);
        if (result == 0)
            result = REPLY(out, "+OK");
    } else if (is_verb(&w[0], "GET")) {
        pthread_mutex_lock(&table_lock); /* copy the value out under the lock */
        struct entry *entry = *find(w[1].at, w[1].len);
        if (entry == NULL)
            result = REPLY(out, "-ERR no such key");
        else if ((result = REPLY(out, "$")) == 0)
            result = buffer_append(out, entry->value, entry->value_len);
        pthread_mutex_unlock(&table_lock);
    } else if (is_verb(&w[0], "DEL")) {
        pthread_mutex_lock(&table_lock);
        struct entry **link = find(w[1].at, w[1].len), *entry = *link;
        if (entry != NULL) {
            *link = entry->next;
            free(entry->key);
            free(entry->value);
            free(entry);
        }
        pthread_mutex_unlock(&table_lock);
        result = entry != NULL ? REPLY(out, ":1") : REPLY(out, ":0");
    } else if (is_verb(&w[0], "INCR")) {
        result = do_incr(&w[1], out);
    } else { /* QUIT */
        result = REPLY(out, "+BYE");
        return result < 0 ? -1 : 1;
    }
    return result;
}

/* ---------------------------------------------------------- one connection */

/* send() until every byte is gone: one call may take only part of them. */
static int send_all(int fd, const char *data, size_t len)
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

/* Send one reply line: payload and CRLF in ONE send_all() (two small writes
 * would meet Nagle's algorithm and the client's delayed ACK). */
static int reply(int fd, struct buffer *out)
{
    if (REPLY(out, "\r\n") < 0)
        return -1;
    int result = send_all(fd, out->data + out->start, out->end - out->start);
    out->start = out->end = 0;
    return result;
}

enum read_result { LINE, END_OF_STREAM, TOO_LONG, FAILED };

/* The next command line: *line_len bytes at in->data + in->start, followed by
 * CRLF. TCP is a byte stream: one recv() may hold half a line or several lines;
 * `in` keeps what arrived past the line for the next call. A line still
 * incomplete at the client's FIN is not a command. */
static enum read_result read_line(int fd, struct buffer *in, size_t *line_len)
{
    size_t searched = 0;
    for (;;) {
        const char *begin = in->data + in->start;
        size_t have = in->end - in->start;
        const char *crlf = have ? memmem(begin + searched, have - searched, "\r\n", 2) : NULL;
        if (crlf != NULL) {
            *line_len = (size_t)(crlf - begin);
            return *line_len > MAX_LINE ? TOO_LONG : LINE;
        }
        if (have > MAX_LINE + 1)
            return TOO_LONG;
        searched = have ? have - 1 : 0; /* a CR may end the buffer */
        if (buffer_reserve(in, RECV_SIZE) < 0)
            return FAILED;
        ssize_t got = recv(fd, in->data + in->end, RECV_SIZE, 0);
        if (got == 0)
            return END_OF_STREAM;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return FAILED; /* reset, or silent past SO_RCVTIMEO */
        }
        in->end += (size_t)got;
    }
}

/* End the connection before the client did (QUIT, a line too long): our FIN,
 * then read and drop what the client still sends until its FIN (bounded), so
 * that close() finds no unread input and sends no RST that could destroy the
 * last reply before the client reads it. */
static void hang_up(int fd)
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

/* Answer each command in turn until the client's FIN, then send our FIN. */
static void serve(int fd)
{
    struct buffer in = {0}, out = {0};
    size_t len;
    for (;;) {
        enum read_result got = read_line(fd, &in, &len);
        if (got == END_OF_STREAM) {
            /* Every complete command is answered and nothing is left unread:
             * our FIN now, and close() (by the caller) sends no RST. */
            shutdown(fd, SHUT_WR);
            break;
        }
        if (got == FAILED)
            break;
        if (got == TOO_LONG) {
            if (REPLY(&out, "-ERR line too long") == 0 && reply(fd, &out) == 0)
                hang_up(fd);
            break;
        }
        int action = execute(in.data + in.start, len, &out);
        in.start += len + 2;
        if (action < 0 || reply(fd, &out) < 0)
            break;
        if (action == 1) { /* QUIT */
            hang_up(fd);
            break;
        }
    }
    free(in.data);
    free(out.data);
}

static void *connection_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    /* Bound every recv() and send() so that a vanished client cannot hold its
     * thread forever: the call then fails with EAGAIN. */
    struct timeval idle = {.tv_sec = IDLE_TIMEOUT};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof idle);
    serve(fd);
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

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"backlog", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
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
