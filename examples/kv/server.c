/*
 * kv: an inline text key-value server in the style of Redis's inline commands.
 * The C twin of server.py: same protocol, same command line, same behaviour.
 *
 *     cc -O2 -Wall -Wextra -pthread -o kv-server server.c ../common/textbook_server.c
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
 * The textbook blocking server (socket, SO_REUSEADDR, bind, listen, then an
 * accept loop that starts one thread per connection, the command line) is
 * ../common/textbook_server.c; this file holds the protocol. All threads share
 * one hash table under a mutex.
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../common/textbook_server.h"

#define MAX_LINE (8u * 1024 * 1024)     /* longest command line, without its CRLF */
#define BUCKETS 4096                    /* hash table size (chained) */

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

static int do_incr(const struct word *key, struct buffer *out)
{
    char number[32];
    int64_t value = 0;
    pthread_mutex_lock(&table_lock); /* read, add, write as one step */
    struct entry *entry = *find(key->at, key->len);
    int result;
    if (entry != NULL && parse_int64(entry->value, entry->value_len, &value) < 0) {
        result = APPEND(out, "-ERR not an integer");
    } else if (value == INT64_MAX) {
        result = APPEND(out, "-ERR increment would overflow");
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
        return APPEND(out, "-ERR unknown command");
    if (count - 1 != verbs[v].arity)
        return APPEND(out, "-ERR wrong number of arguments");

    if (is_verb(&w[0], "PING")) {
        result = APPEND(out, "+PONG");
    } else if (is_verb(&w[0], "SET")) {
        pthread_mutex_lock(&table_lock);
        result = store(w[1].at, w[1].len, w[2].at, w[2].len);
        pthread_mutex_unlock(&table_lock);
        if (result == 0)
            result = APPEND(out, "+OK");
    } else if (is_verb(&w[0], "GET")) {
        pthread_mutex_lock(&table_lock); /* copy the value out under the lock */
        struct entry *entry = *find(w[1].at, w[1].len);
        if (entry == NULL)
            result = APPEND(out, "-ERR no such key");
        else if ((result = APPEND(out, "$")) == 0)
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
        result = entry != NULL ? APPEND(out, ":1") : APPEND(out, ":0");
    } else if (is_verb(&w[0], "INCR")) {
        result = do_incr(&w[1], out);
    } else { /* QUIT */
        result = APPEND(out, "+BYE");
        return result < 0 ? -1 : 1;
    }
    return result;
}

/* ---------------------------------------------------------- one connection */

/* Send one reply line: payload and CRLF in ONE send_all() (two small writes
 * would meet Nagle's algorithm and the client's delayed ACK). */
static int reply(int fd, struct buffer *out)
{
    if (APPEND(out, "\r\n") < 0)
        return -1;
    int result = send_all(fd, out->data + out->start, out->end - out->start);
    out->start = out->end = 0;
    return result;
}

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
            return *line_len > MAX_LINE ? TOO_LONG : MESSAGE;
        }
        if (have > MAX_LINE + 1)
            return TOO_LONG;
        searched = have ? have - 1 : 0; /* a CR may end the buffer */
        ssize_t got = receive_more(fd, in);
        if (got <= 0)
            return got == 0 ? END_OF_STREAM : FAILED;
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
            if (APPEND(&out, "-ERR line too long") == 0 && reply(fd, &out) == 0)
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

int main(int argc, char **argv)
{
    return textbook_main(argc, argv, serve);
}
