/*
 * frames: a length-prefixed binary RPC server.
 * The C twin of server.py: same protocol, same command line, same behaviour.
 *
 *     cc -O2 -Wall -Wextra -pthread -o frames-server server.c ../common/textbook_server.c
 *     ./frames-server -h HOST -p PORT [--backlog N]     TCP (127.0.0.1, ::1, ...)
 *     ./frames-server -u PATH [--backlog N]             Unix stream socket
 *
 * Every message is a 4-byte big-endian length (not counting itself), then that
 * many bytes of payload: one opcode byte and its body. A reply's opcode is the
 * request's with the high bit set:
 *
 *     01 ECHO  body                      -> 81 body (byte for byte)
 *     02 SUM   N big-endian u32          -> 82 their sum, a big-endian u64
 *     03 INFO  (empty body)              -> 83 "frames/1"
 *     other opcodes, or an empty payload -> ff "unknown opcode"
 *
 * A SUM body that is not a whole number of u32 is ff "bad SUM body"; INFO
 * ignores a body. A length over 16 MiB ends the connection.
 *
 * The textbook blocking server (socket, SO_REUSEADDR, bind, listen, then an
 * accept loop that starts one thread per connection, the command line) is
 * ../common/textbook_server.c; this file holds the protocol.
 */

#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "../common/textbook_server.h"

#define HEADER 4                        /* bytes of the length prefix */
#define MAX_PAYLOAD (16u * 1024 * 1024) /* largest payload accepted */
#define ECHO 0x01
#define SUM 0x02
#define INFO 0x03
#define REPLY_BIT 0x80
#define ERROR 0xff

/* ---------------------------------------------------------- the operations */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The reply payload to one request payload, appended to out (after the 4 bytes
 * reserved there for its length prefix); -1 when out of memory. */
static int execute(const unsigned char *payload, size_t len, struct buffer *out)
{
    const unsigned char *body = payload + 1;
    size_t body_len = len - 1;
    unsigned char opcode = len > 0 ? payload[0] : 0;
    unsigned char code = opcode | REPLY_BIT;

    if (len == 0 || (opcode != ECHO && opcode != SUM && opcode != INFO)) {
        code = ERROR;
        return buffer_append(out, &code, 1) < 0 ? -1 : APPEND(out, "unknown opcode");
    }
    if (opcode == SUM && body_len % 4 != 0) {
        code = ERROR;
        return buffer_append(out, &code, 1) < 0 ? -1 : APPEND(out, "bad SUM body");
    }
    if (buffer_append(out, &code, 1) < 0)
        return -1;
    if (opcode == ECHO)
        return buffer_append(out, body, body_len);
    if (opcode == INFO)
        return APPEND(out, "frames/1");
    /* SUM: at most 4 Mi numbers below 2^32 each, so the sum always fits in 64 bits. */
    uint64_t sum = 0;
    unsigned char be[8];
    for (size_t i = 0; i < body_len; i += 4)
        sum += get_u32(body + i);
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(sum >> (56 - 8 * i));
    return buffer_append(out, be, sizeof be);
}

/* ---------------------------------------------------------- one connection */

/* Send one reply: the length prefix and the payload in ONE send_all() (two
 * small writes would meet Nagle's algorithm and the client's delayed ACK). `out`
 * holds 4 reserved bytes, then the payload. */
static int reply(int fd, struct buffer *out)
{
    size_t len = out->end - HEADER;
    for (int i = 0; i < HEADER; i++)
        out->data[i] = (char)(len >> (24 - 8 * i));
    int result = send_all(fd, out->data, out->end);
    out->start = out->end = 0;
    return result;
}

/* The next request: *len bytes of payload at in->data + in->start + HEADER.
 * TCP is a byte stream: one recv() may hold part of a message or several
 * messages; `in` keeps what arrived past the message for the next call. A
 * message still incomplete at the client's FIN is dropped. */
static enum read_result read_message(int fd, struct buffer *in, size_t *len)
{
    for (;;) {
        size_t have = in->end - in->start;
        if (have >= HEADER) {
            *len = get_u32((const unsigned char *)in->data + in->start);
            if (*len > MAX_PAYLOAD)
                return TOO_LONG;
            if (have >= HEADER + *len)
                return MESSAGE;
        }
        ssize_t got = receive_more(fd, in);
        if (got <= 0)
            return got == 0 ? END_OF_STREAM : FAILED;
    }
}

/* Answer each request in turn until the client's FIN, then send our FIN. */
static void serve(int fd)
{
    static const char reserved[HEADER];
    struct buffer in = {0}, out = {0};
    size_t len;
    for (;;) {
        enum read_result got = read_message(fd, &in, &len);
        if (got == END_OF_STREAM) {
            /* Every complete request is answered and nothing is left unread:
             * our FIN now, and close() (by the caller) sends no RST. */
            shutdown(fd, SHUT_WR);
            break;
        }
        if (got == FAILED)
            break;
        if (got == TOO_LONG) { /* no reply: the stream cannot be trusted any more */
            hang_up(fd);
            break;
        }
        if (buffer_append(&out, reserved, HEADER) < 0 ||
            execute((const unsigned char *)in.data + in.start + HEADER, len, &out) < 0)
            break;
        in.start += HEADER + len;
        if (reply(fd, &out) < 0)
            break;
    }
    free(in.data);
    free(out.data);
}

int main(int argc, char **argv)
{
    return textbook_main(argc, argv, serve);
}
