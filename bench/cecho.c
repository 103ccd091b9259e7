/*
 * The reference client of the benchmarks: the least a client in C must do per message.
 * It echoes every message it receives, unchanged and in order, as the clients' echo
 * examples do, and as the protocol asks of a sender: each message with its LF in one
 * write(), at once. What it leaves out is everything but that: no library, no checks
 * beyond the framing, one buffer that grows to the longest message.
 *
 *   cecho RECV SEND    (the server's out_pipe, then its in_pipe, as the echo examples)
 *
 * Exits 0 at end of stream or when the other side has gone (EPIPE), 1 on any other error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_BYTES (1024 * 1024)

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "cecho: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

/* 0 once written, 1 when the reader has gone, -1 on another error. */
static int write_message(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE ? 1 : -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: cecho RECV SEND\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* The send pipe first, as the clients open theirs. */
    int out = open(argv[2], O_WRONLY | O_CLOEXEC);
    if (out < 0)
        return fail("open", argv[2]);
    int in = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail("open", argv[1]);
    size_t cap = FIRST_BYTES, start = 0, scanned = 0, end = 0;
    char *buf = malloc(cap);
    if (!buf)
        return fail("allocate a buffer for", argv[1]);
    for (;;) {
        if (end == cap) {
            if (start > 0) { /* the message under way moves to the front */
                memmove(buf, buf + start, end - start);
                end -= start;
                scanned -= start;
                start = 0;
            } else { /* it fills the buffer: doubling keeps the copies linear */
                char *grown = realloc(buf, 2 * cap);
                if (!grown)
                    return fail("grow the buffer for", argv[1]);
                buf = grown;
                cap *= 2;
            }
        }
        ssize_t n = read(in, buf + end, cap - end);
        if (n == 0)
            break; /* an unterminated tail is not a message: dropped */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("read", argv[1]);
        }
        end += (size_t)n;
        char *lf;
        while ((lf = memchr(buf + scanned, '\n', end - scanned)) != NULL) {
            size_t len = (size_t)(lf - buf) + 1 - start;
            int status = write_message(out, buf + start, len);
            if (status > 0)
                return 0;
            if (status < 0)
                return fail("write", argv[2]);
            start = scanned = start + len;
        }
        scanned = end; /* no LF up to here: not scanned again */
        if (start == end)
            start = scanned = end = 0;
    }
    free(buf);
    close(in);
    close(out);
    return 0;
}
