/*
 * Load client for the benchmarks: drives echoes through their two FIFOs and prints one line
 * of JSON per echo. IN is the pipe the echo reads (we write it), OUT the pipe it writes (we
 * read it). For a server that is `pipe-io-server serve IN OUT`; for a client's echo example,
 * which takes its receive pipe first, it is `echo IN OUT`: then this program plays the
 * server's side, and --pipe-size gives the pipes the capacity our server gives them.
 *
 *   loadclient pingpong IN OUT [IN OUT ...] [--size B] [--count N] [--warmup N] [--timeout S]
 *       one message in flight; round-trip times in microseconds. With several echoes they
 *       take turns in blocks of BLOCK round trips, so that they all meet the machine in the
 *       same states: on a virtual machine the cost of a wake-up drifts over minutes.
 *   loadclient stream IN OUT [--size B] [--seconds S] [--window B] [--timeout S]
 *       a writer thread and a reader thread; messages per second and MB/s of payload
 *   --pipe-size B (either mode) sets the capacity of both pipes once they are open.
 *
 * A message is --size payload bytes plus its newline. The stream's writer keeps at most
 * --window bytes (and at least two messages) unanswered, so the echoes are compared at
 * the same depth and none of them is asked to queue without bound.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 1000     /* round trips on one server before the next takes its turn */
#define BLOCK_WARMUP 20 /* unmeasured round trips that start each block */
#define BATCH_BYTES (64 * 1024)
#define READ_BYTES (1024 * 1024)

struct server {
    const char *in_path, *out_path;
    int in_fd, out_fd;
};

static int pipe_size; /* --pipe-size; 0 leaves the pipes as they are */

static void fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs("loadclient: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static void on_alarm(int signum)
{
    static const char text[] = "loadclient: timed out\n";
    (void)signum;
    (void)!write(STDERR_FILENO, text, sizeof text - 1);
    _exit(3);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        fail("out of memory (%zu bytes)", size);
    return p;
}

static void write_all(const struct server *s, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(s->in_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail("write %s: %s", s->in_path, strerror(errno));
        }
        buf += n;
        len -= (size_t)n;
    }
}

static size_t read_some(const struct server *s, char *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(s->out_fd, buf, cap);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR)
            fail("read %s: %s", s->out_path, strerror(errno));
    }
}

/* Fill `buf` with `count` messages of `size` payload bytes each. */
static void fill_messages(char *buf, size_t size, size_t count)
{
    for (size_t m = 0; m < count; m++) {
        char *msg = buf + m * (size + 1);
        for (size_t i = 0; i < size; i++)
            msg[i] = (char)('a' + (i + m) % 26);
        msg[size] = '\n';
    }
}

static void *open_out(void *arg)
{
    struct server *s = arg;
    s->out_fd = open(s->out_path, O_RDONLY);
    return s->out_fd < 0 ? strerror(errno) : NULL;
}

/* Both opens block until the server meets them; doing them at once works whatever
   order the server opens its ends in. */
static void open_server(struct server *s)
{
    pthread_t thread;
    void *error;
    if (pthread_create(&thread, NULL, open_out, s) != 0)
        fail("cannot start a thread");
    s->in_fd = open(s->in_path, O_WRONLY);
    if (s->in_fd < 0)
        fail("open %s: %s", s->in_path, strerror(errno));
    pthread_join(thread, &error);
    if (error)
        fail("open %s: %s", s->out_path, (const char *)error);
    if (pipe_size && (fcntl(s->in_fd, F_SETPIPE_SZ, pipe_size) < 0 ||
                      fcntl(s->out_fd, F_SETPIPE_SZ, pipe_size) < 0))
        fail("cannot set the capacity of %s and %s to %d bytes: %s", s->in_path, s->out_path,
             pipe_size, strerror(errno));
}

static void close_server(struct server *s)
{
    close(s->in_fd);
    close(s->out_fd);
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double percentile_us(const uint64_t *sorted, long count, double p)
{
    long rank = (long)(p / 100.0 * (double)count + 0.999999);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / 1000.0;
}

/* One round trip; returns its time in nanoseconds. */
static uint64_t round_trip(struct server *s, const char *msg, char *back, size_t len)
{
    uint64_t start = now_ns();
    write_all(s, msg, len);
    for (size_t got = 0; got < len;) {
        size_t n = read_some(s, back + got, len - got);
        if (n == 0)
            fail("%s: end of stream in a round trip", s->out_path);
        got += n;
    }
    uint64_t end = now_ns();
    if (memcmp(msg, back, len) != 0)
        fail("%s: the echo differs from the message", s->out_path);
    return end - start;
}

static void pingpong(struct server *servers, int n_servers, size_t size, long count,
                     long warmup)
{
    size_t len = size + 1;
    char *msg = xmalloc(len), *back = xmalloc(len);
    uint64_t *rtt = xmalloc((size_t)n_servers * (size_t)count * sizeof *rtt);
    fill_messages(msg, size, 1);
    for (int k = 0; k < n_servers; k++) {
        open_server(&servers[k]);
        for (long i = 0; i < warmup; i++)
            round_trip(&servers[k], msg, back, len);
    }
    for (long done = 0; done < count; done += BLOCK) {
        long block = count - done < BLOCK ? count - done : BLOCK;
        for (int k = 0; k < n_servers; k++) {
            uint64_t *mine = rtt + (size_t)k * (size_t)count + (size_t)done;
            for (long i = 0; i < BLOCK_WARMUP; i++)
                round_trip(&servers[k], msg, back, len);
            for (long i = 0; i < block; i++)
                mine[i] = round_trip(&servers[k], msg, back, len);
        }
    }
    for (int k = 0; k < n_servers; k++) {
        uint64_t *mine = rtt + (size_t)k * (size_t)count;
        double sum = 0;
        close_server(&servers[k]);
        qsort(mine, (size_t)count, sizeof *mine, compare_u64);
        for (long i = 0; i < count; i++)
            sum += (double)mine[i];
        long blocks = (count + BLOCK - 1) / BLOCK;
        printf("{\"mode\": \"pingpong\", \"size\": %zu, \"count\": %ld, \"round_trips\": %ld, "
               "\"median_us\": %.3f, \"p99_us\": %.3f, \"min_us\": %.3f, \"mean_us\": %.3f}\n",
               size, count, count + warmup + blocks * BLOCK_WARMUP, percentile_us(mine, count, 50),
               percentile_us(mine, count, 99), (double)mine[0] / 1000.0,
               sum / (double)count / 1000.0);
    }
    free(msg);
    free(back);
    free(rtt);
}

struct stream {
    struct server *server;
    size_t size, len;
    uint64_t window; /* messages */
    uint64_t deadline;
    _Atomic uint64_t sent, received;
    _Atomic int done, waiting;
    pthread_mutex_t lock;
    pthread_cond_t room;
};

/* How many messages the writer may send now; waits while the window is full. The writer
   raises `waiting` before it looks, the reader lowers the count before it looks at
   `waiting`: with sequentially consistent atomics one of them sees the other. */
static uint64_t wait_for_room(struct stream *s, uint64_t sent, uint64_t wanted)
{
    uint64_t in_flight = sent - atomic_load(&s->received);
    if (in_flight >= s->window) {
        pthread_mutex_lock(&s->lock);
        atomic_store(&s->waiting, 1);
        while ((in_flight = sent - atomic_load(&s->received)) >= s->window)
            pthread_cond_wait(&s->room, &s->lock);
        atomic_store(&s->waiting, 0);
        pthread_mutex_unlock(&s->lock);
    }
    uint64_t room = s->window - in_flight;
    return room < wanted ? room : wanted;
}

static void *stream_writer(void *arg)
{
    struct stream *s = arg;
    size_t per_batch = s->len <= BATCH_BYTES ? BATCH_BYTES / s->len : 1;
    char *batch = xmalloc(per_batch * s->len);
    uint64_t sent = 0;
    fill_messages(batch, s->size, per_batch);
    while (now_ns() < s->deadline) {
        uint64_t n = wait_for_room(s, sent, per_batch);
        write_all(s->server, batch, n * s->len);
        sent += n;
        atomic_store(&s->sent, sent);
    }
    atomic_store(&s->done, 1);
    free(batch);
    return NULL;
}

static void stream(struct server *server, size_t size, double seconds, uint64_t window_bytes)
{
    struct stream s = {.server = server, .size = size, .len = size + 1};
    pthread_t writer;
    char *buf = xmalloc(READ_BYTES);
    uint64_t received = 0, bytes = 0, end;
    size_t offset = 0; /* position inside the message being received */
    s.window = window_bytes / s.len > 2 ? window_bytes / s.len : 2;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.room, NULL);
    open_server(server);
    uint64_t start = now_ns();
    s.deadline = start + (uint64_t)(seconds * 1e9);
    end = start;
    if (pthread_create(&writer, NULL, stream_writer, &s) != 0)
        fail("cannot start a thread");
    for (;;) {
        if (received >= atomic_load(&s.sent)) {
            /* Everything sent so far has come back: stop if the writer has finished,
               else wait a little without blocking past its end. */
            if (atomic_load(&s.done) && received == atomic_load(&s.sent))
                break;
            struct pollfd p = {.fd = server->out_fd, .events = POLLIN};
            if (poll(&p, 1, 10) <= 0)
                continue;
        }
        size_t n = read_some(server, buf, READ_BYTES);
        if (n == 0)
            fail("%s: end of stream after %llu messages", server->out_path,
                 (unsigned long long)received);
        /* Every message has the same length, so the newlines must fall at fixed
           offsets: a lost, split or glued message shows up at once. */
        for (size_t i = s.len - 1 - offset; i < n; i += s.len) {
            if (buf[i] != '\n')
                fail("message %llu is not %zu bytes long", (unsigned long long)received,
                     size);
            received++;
        }
        offset = (offset + n) % s.len;
        bytes += n;
        end = now_ns();
        atomic_store(&s.received, received);
        if (atomic_load(&s.waiting)) {
            pthread_mutex_lock(&s.lock);
            pthread_cond_signal(&s.room);
            pthread_mutex_unlock(&s.lock);
        }
    }
    pthread_join(writer, NULL);
    close_server(server);
    if (offset != 0 || bytes != received * s.len)
        fail("received %llu bytes, not %llu whole messages", (unsigned long long)bytes,
             (unsigned long long)received);
    double elapsed = (double)(end - start) / 1e9;
    printf("{\"mode\": \"stream\", \"size\": %zu, \"window\": %llu, \"messages\": %llu, "
           "\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.3f}\n",
           size, (unsigned long long)s.window, (unsigned long long)received, elapsed,
           (double)received / elapsed, (double)received * (double)size / elapsed / 1e6);
    free(buf);
}

static const char usage[] =
    "usage: loadclient pingpong IN OUT [IN OUT ...] [--size B] [--count N] [--warmup N]\n"
    "                           [--timeout S]\n"
    "       loadclient stream IN OUT [--size B] [--seconds S] [--window B] [--timeout S]\n"
    "       either mode: [--pipe-size B]\n";

static double number(const char *option, const char *text)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || end == text || *end || value < 0)
        fail("%s wants a non-negative number, not '%s'", option, text);
    return value;
}

int main(int argc, char **argv)
{
    int first_option = 2;
    while (first_option < argc && strncmp(argv[first_option], "--", 2) != 0)
        first_option++;
    int n_servers = (first_option - 2) / 2;
    if (argc < 4 || n_servers < 1 || (first_option - 2) % 2 || (argc - first_option) % 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *mode = argv[1];
    struct server *servers = xmalloc((size_t)n_servers * sizeof *servers);
    for (int k = 0; k < n_servers; k++)
        servers[k] = (struct server){argv[2 + 2 * k], argv[3 + 2 * k], -1, -1};
    double size = 64, count = 20000, warmup = 1000, seconds = 2, window = 8 << 20,
           timeout = 120;
    for (int i = first_option; i < argc; i += 2) {
        double value = number(argv[i], argv[i + 1]);
        if (!strcmp(argv[i], "--size"))
            size = value;
        else if (!strcmp(argv[i], "--count"))
            count = value < 1 ? 1 : value;
        else if (!strcmp(argv[i], "--warmup"))
            warmup = value;
        else if (!strcmp(argv[i], "--seconds"))
            seconds = value;
        else if (!strcmp(argv[i], "--window"))
            window = value;
        else if (!strcmp(argv[i], "--timeout"))
            timeout = value;
        else if (!strcmp(argv[i], "--pipe-size"))
            pipe_size = (int)value;
        else
            fail("unknown option %s\n%s", argv[i], usage);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)timeout);
    if (!strcmp(mode, "pingpong"))
        pingpong(servers, n_servers, (size_t)size, (long)count, (long)warmup);
    else if (!strcmp(mode, "stream") && n_servers == 1)
        stream(servers, (size_t)size, seconds, (uint64_t)window);
    else
        fail("unknown mode %s, or more than one server for it\n%s", mode, usage);
    free(servers);
    return 0;
}
