/*
 * net.c - curl multi_socket on the uv loop.
 *
 * Lifetime: the kn_net struct holds a CURLM, a uv_timer_t and a count of
 * open uv handles (the timer and every socket's poll).  kn_net_close()
 * removes the transfers, closes every handle, and the last close callback
 * frees the struct: never earlier (libuv handle rules).
 */
#include "net.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/kn.h"
#include "common/log.h"

struct kn_net {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_prepare_t kicker; /* writes tried once per loop turn */
    int kicks;           /* sockets with kick set */
    size_t open_handles; /* timer, kicker, polls not yet closed */
    size_t active;       /* transfers added, not yet done */
    int closing;
    struct net_xfer *xfers;  /* active transfers, for kn_net_close */
    struct net_sock **socks; /* by descriptor: kept while curl keeps the
                                connection open, even between transfers */
    size_t nsocks;
    unsigned char *conn_fds; /* by descriptor: opened by open_socket */
    size_t nconn_fds;
};

struct net_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    int conn;   /* a connection socket (opened through open_socket): curl
                   closes it through close_socket, so its poll may outlive
                   CURL_POLL_REMOVE */
    int events; /* what uv polls for now */
    int wanted; /* curl has a transfer on this socket */
    int kick;   /* curl wants to write: try it before the loop blocks */
    int kicking;
    struct kn_net *net;
};

struct net_xfer {
    kn_net_done_cb *done;
    void *arg;
    CURL *easy;
    struct net_xfer *prev, *next; /* list of active transfers */
};

static void xfer_unlink(struct kn_net *net, struct net_xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        net->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
}

static void maybe_free(struct kn_net *net)
{
    if (net->closing && net->open_handles == 0) {
        free(net->socks);
        free(net->conn_fds);
        free(net);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct kn_net *net;
    if (h->type == UV_POLL) {
        struct net_sock *s = kn_container_of(h, struct net_sock, poll);
        net = s->net;
        free(s);
    } else if (h->type == UV_PREPARE) {
        net = kn_container_of(h, struct kn_net, kicker);
    } else {
        net = kn_container_of(h, struct kn_net, timer);
    }
    net->open_handles--;
    maybe_free(net);
}

/*
 * Hand every finished transfer to its owner.  The owner may add new
 * transfers from its callback; that is a plain call into curl from our own
 * code, not from a curl callback, so it is allowed.
 */
static void check_done(struct kn_net *net)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(net->multi, &left)) != NULL) {
        struct net_xfer *x = NULL;
        CURL *easy;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        easy = msg->easy_handle;
        rc = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(net->multi, easy);
        net->active--;
        if (x != NULL) {
            kn_net_done_cb *done = x->done;
            xfer_unlink(net, x);
            void *arg = x->arg;
            free(x);
            curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
            done(easy, rc, arg);
        }
    }
}

static void socket_action(struct kn_net *net, curl_socket_t fd, int flags)
{
    int running;
    curl_multi_socket_action(net->multi, fd, flags, &running);
    check_done(net);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct net_sock *s = kn_container_of(h, struct net_sock, poll);
    int flags = 0;
    if (!s->wanted) {
        /* An idle cached connection became readable (the server closed
         * it, say): curl is not watching it now; stop until it is. */
        s->events = 0;
        uv_poll_stop(&s->poll);
        return;
    }
    /* Unlike hiredis' bundled adapter we do not drop errors: curl is told,
     * so that the transfer fails instead of hanging. */
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    socket_action(s->net, s->fd, flags);
}

static void on_timer(uv_timer_t *t)
{
    struct kn_net *net = kn_container_of(t, struct kn_net, timer);
    socket_action(net, CURL_SOCKET_TIMEOUT, 0);
}

/*
 * curl's socket callback.  A connection that curl keeps in its cache
 * between transfers gets CURL_POLL_REMOVE after each one and a new
 * interest with the next: closing and re-creating the uv_poll each time
 * costs an ioctl and epoll_ctl calls per message.  So REMOVE only marks
 * the socket unwanted and the poll handle stays (it is stopped lazily if
 * an event comes meanwhile); it is closed for good when curl closes the
 * socket (close_socket below).
 */
static void sock_close(struct kn_net *net, struct net_sock *s);

static int cb_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    struct kn_net *net = userp;
    struct net_sock *s = socketp;
    int events = 0;

    if (s == NULL && fd >= 0 && (size_t)fd < net->nsocks)
        s = net->socks[fd];
    if (what == CURL_POLL_REMOVE) {
        if (!net->closing)
            curl_multi_assign(net->multi, fd, NULL);
        if (s != NULL && !s->conn) {
            /* Not a connection (the threaded resolver's socketpair, say):
             * curl closes it without close_socket, and the descriptor's
             * number comes back for another socket, perhaps in another
             * kn_net on this loop.  A poll left on it would then watch
             * (or, stopped later, unregister) that other socket, and
             * libuv aborts on the epoll_ctl that fails.  Close it now. */
            sock_close(net, s);
            return 0;
        }
        if (s != NULL)
            s->wanted = 0;
        return 0;
    }
    if (s == NULL) {
        s = kn_xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->net = net;
        s->conn = (size_t)fd < net->nconn_fds && net->conn_fds[fd];
        if (uv_poll_init_socket(net->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        net->open_handles++;
        if ((size_t)fd >= net->nsocks) {
            size_t n = (size_t)fd + 16;
            net->socks = kn_xrealloc(net->socks, n * sizeof(*net->socks));
            memset(net->socks + net->nsocks, 0,
                   (n - net->nsocks) * sizeof(*net->socks));
            net->nsocks = n;
        }
        net->socks[fd] = s;
    }
    s->wanted = 1;
    curl_multi_assign(net->multi, fd, s);
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        /* A connected socket is nearly always writable: rather than poll
         * for it (and switch the epoll mask back and forth, two syscalls
         * each way, for every message), let curl try the write once this
         * loop turn is over.  If it could not write (asked again from
         * within that try), poll for real. */
        if (s->kicking) {
            events |= UV_WRITABLE;
        } else {
            if (!s->kick)
                net->kicks++;
            s->kick = 1;
            events = s->events ? s->events : UV_READABLE;
        }
    }
    /* libuv's uv_poll_start always deletes and re-adds the descriptor in
     * epoll (two syscalls): skip it when nothing changes. */
    if (events != s->events) {
        s->events = events;
        uv_poll_start(&s->poll, events, on_poll);
    }
    return 0;
}

/* Forget a socket: stop and close its poll handle. */
static void sock_close(struct kn_net *net, struct net_sock *s)
{
    if ((size_t)s->fd < net->nsocks && net->socks[s->fd] == s)
        net->socks[s->fd] = NULL;
    if (s->kick)
        net->kicks--;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

/* curl opens a connection socket: remember that it will be closed through
 * close_socket (see CURL_POLL_REMOVE in cb_socket). */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    struct kn_net *net = clientp;
    curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
    (void)purpose;
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if ((size_t)fd >= net->nconn_fds) {
        size_t n = (size_t)fd + 16;
        net->conn_fds = kn_xrealloc(net->conn_fds, n);
        memset(net->conn_fds + net->nconn_fds, 0, n - net->nconn_fds);
        net->nconn_fds = n;
    }
    net->conn_fds[fd] = 1;
    return fd;
}

/* curl closes a socket: its poll handle goes first (never a handle on a
 * descriptor number that may be reused by the next socket). */
static int close_socket(void *clientp, curl_socket_t fd)
{
    struct kn_net *net = clientp;
    if (fd >= 0 && (size_t)fd < net->nconn_fds)
        net->conn_fds[fd] = 0;
    if (fd >= 0 && (size_t)fd < net->nsocks && net->socks[fd] != NULL)
        sock_close(net, net->socks[fd]);
    return close(fd);
}

/* Once per loop turn, before it blocks: let curl write where it wants to. */
static void on_kick(uv_prepare_t *h)
{
    struct kn_net *net = kn_container_of(h, struct kn_net, kicker);
    if (net->kicks == 0)
        return;
    for (size_t i = 0; i < net->nsocks && net->kicks > 0; i++) {
        struct net_sock *s = net->socks[i];
        if (s == NULL || !s->kick)
            continue;
        s->kick = 0;
        net->kicks--;
        if (!s->wanted)
            continue;
        s->kicking = 1;
        socket_action(net, s->fd, CURL_CSELECT_OUT);
        /* The socket may be closed by now (close_socket freed it). */
        if (i < net->nsocks && net->socks[i] == s)
            s->kicking = 0;
    }
}

static int cb_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct kn_net *net = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&net->timer);
    else
        uv_timer_start(&net->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

struct kn_net *kn_net_new(uv_loop_t *loop, long max_host_conns, int multiplex)
{
    struct kn_net *net = kn_xcalloc(1, sizeof(*net));
    net->loop = loop;
    net->multi = curl_multi_init();
    if (net->multi == NULL)
        KN_PANIC("curl_multi_init failed");
    uv_timer_init(loop, &net->timer);
    uv_prepare_init(loop, &net->kicker);
    uv_prepare_start(&net->kicker, on_kick);
    uv_unref((uv_handle_t *)&net->kicker);
    net->open_handles = 2;
    curl_multi_setopt(net->multi, CURLMOPT_SOCKETFUNCTION, cb_socket);
    curl_multi_setopt(net->multi, CURLMOPT_SOCKETDATA, net);
    curl_multi_setopt(net->multi, CURLMOPT_TIMERFUNCTION, cb_timer);
    curl_multi_setopt(net->multi, CURLMOPT_TIMERDATA, net);
    if (max_host_conns > 0) {
        curl_multi_setopt(net->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          max_host_conns);
        curl_multi_setopt(net->multi, CURLMOPT_MAXCONNECTS, max_host_conns);
    }
    curl_multi_setopt(net->multi, CURLMOPT_PIPELINING,
                      multiplex ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    return net;
}

void kn_net_add(struct kn_net *net, CURL *easy, kn_net_done_cb *done, void *arg)
{
    struct net_xfer *x = kn_xmalloc(sizeof(*x));
    CURLMcode mc;
    x->done = done;
    x->arg = arg;
    x->easy = easy;
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, net);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, net);
    x->prev = NULL;
    x->next = net->xfers;
    if (net->xfers != NULL)
        net->xfers->prev = x;
    net->xfers = x;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    mc = curl_multi_add_handle(net->multi, easy);
    if (mc != CURLM_OK)
        KN_PANIC("curl_multi_add_handle: %s", curl_multi_strerror(mc));
    net->active++;
}

size_t kn_net_active(const struct kn_net *net)
{
    return net->active;
}

void kn_net_close(struct kn_net *net)
{
    /* Abort what is still running: each owner hears of it once. */
    while (net->xfers != NULL) {
        struct net_xfer *x = net->xfers;
        kn_net_done_cb *done = x->done;
        void *arg = x->arg;
        CURL *easy = x->easy;
        xfer_unlink(net, x);
        curl_multi_remove_handle(net->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        net->active--;
        free(x);
        done(easy, CURLE_ABORTED_BY_CALLBACK, arg);
    }
    /* Cleanup closes the cached connections; their REMOVE callbacks close
     * the polls, and the last close callback frees the struct. */
    net->closing = 1;
    curl_multi_cleanup(net->multi); /* closes the cached connections */
    net->multi = NULL;
    for (size_t i = 0; i < net->nsocks; i++) {
        /* Sockets curl never closed through us (should be none). */
        struct net_sock *s = net->socks[i];
        if (s != NULL) {
            net->socks[i] = NULL;
            if (s->kick)
                net->kicks--;
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_handle_closed);
        }
    }
    uv_timer_stop(&net->timer);
    uv_close((uv_handle_t *)&net->timer, on_handle_closed);
    uv_prepare_stop(&net->kicker);
    uv_close((uv_handle_t *)&net->kicker, on_handle_closed);
}
