/*
 * The textbook blocking server shared by the example C servers (kv, frames):
 * accept loop, a thread per connection, signals, the command line
 * (textbook_server.c). A protocol's server.c holds only its protocol.
 */

#ifndef TEXTBOOK_SERVER_H
#define TEXTBOOK_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#define RECV_SIZE (64 * 1024)           /* bytes asked for per recv() */

/* A growable byte buffer: data[start, end) holds the bytes not consumed yet. */
struct buffer {
    char *data;
    size_t start, end, cap;
};

/* Room for `more` bytes after end; 0, or -1 when out of memory. */
int buffer_reserve(struct buffer *b, size_t more);
/* Append len bytes; 0, or -1 when out of memory. */
int buffer_append(struct buffer *b, const void *bytes, size_t len);
/* Append a string literal, without its NUL. */
#define APPEND(out, text) buffer_append(out, text, sizeof text - 1)

/* What reading the next message found. */
enum read_result { MESSAGE, END_OF_STREAM, TOO_LONG, FAILED };

/* One recv() of up to RECV_SIZE bytes, appended to `in`: the count, 0 at the
 * client's FIN, -1 when it fails (a reset, silent past SO_RCVTIMEO, out of memory). */
ssize_t receive_more(int fd, struct buffer *in);
/* send() until every byte is gone; 0, or -1 when it fails. */
int send_all(int fd, const char *data, size_t len);
/* End the connection before the client did: our FIN, then drain (bounded). */
void hang_up(int fd);

/* Parse the command line, listen, and serve each connection with serve(fd) in a
 * thread of its own (fd is closed once serve returns) until SIGTERM/SIGINT; the
 * exit status for main() to return. */
int textbook_main(int argc, char **argv, void (*serve)(int fd));

#endif
