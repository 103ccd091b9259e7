/*
 * The floor of the benchmarks: what the kernel alone does. Copies bytes from the FIFO IN
 * to the FIFO OUT with plain read() and write(), knowing nothing of messages, until IN
 * reaches end of file. Then it waits for a signal, so that the runner can read its peak
 * memory from /proc before ending it, as it does for the servers.
 *
 *   floor IN OUT [PIPE_SIZE]    (the FIFOs must exist)
 *
 * PIPE_SIZE sets the capacity of both pipes (F_SETPIPE_SZ) to match a server that sets
 * its own: the capacity is the kernel's doing, not the server's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUFFER_BYTES (1024 * 1024)

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "floor: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fputs("usage: floor IN OUT [PIPE_SIZE]\n", stderr);
        return 2;
    }
    static char buf[BUFFER_BYTES];
    signal(SIGPIPE, SIG_IGN);
    puts("ready");
    fflush(stdout);
    int in = open(argv[1], O_RDONLY);
    if (in < 0)
        fail("open", argv[1]);
    int out = open(argv[2], O_WRONLY);
    if (out < 0)
        fail("open", argv[2]);
    if (argc == 4) {
        int size = atoi(argv[3]);
        if (fcntl(in, F_SETPIPE_SZ, size) < 0)
            fail("set the pipe size of", argv[1]);
        if (fcntl(out, F_SETPIPE_SZ, size) < 0)
            fail("set the pipe size of", argv[2]);
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("read", argv[1]);
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EPIPE)
                    goto finished;
                fail("write", argv[2]);
            }
            done += w;
        }
    }
finished:
    close(in);
    close(out);
    for (;;)
        pause();
}
