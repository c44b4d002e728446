/*
 * net.h - libcurl's multi_socket interface driven by the libuv loop, the
 * transport every network adapter shares (curl docs/examples/multi-uv.c).
 *
 * One uv_poll_t per curl socket (kept with curl_multi_assign) and one
 * uv_timer_t for curl's timeout.  curl_multi_info_read is drained after
 * every socket action; curl is never re-entered from inside a curl
 * callback.  A kn_net owns one CURLM; an adapter owns one kn_net, so each
 * provider has its own connection cache and limits.
 */
#ifndef KN_ADAPTERS_NET_H
#define KN_ADAPTERS_NET_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

struct kn_net;

/*
 * Called once per finished transfer, after the easy handle was removed
 * from the multi handle.  The callback owns the easy handle from then on
 * (it may reuse it with kn_net_add or curl_easy_cleanup it).  rc is
 * CURLE_ABORTED_BY_CALLBACK for transfers cut short by kn_net_close.
 */
typedef void kn_net_done_cb(CURL *easy, CURLcode rc, void *arg);

/*
 * A new multi handle on loop.  max_host_conns limits connections per host
 * (0 = no limit); multiplex = 1 asks for HTTP/2 multiplexing.
 */
struct kn_net *kn_net_new(uv_loop_t *loop, long max_host_conns, int multiplex);

/* Start a transfer; done is called exactly once. */
void kn_net_add(struct kn_net *net, CURL *easy, kn_net_done_cb *done,
                void *arg);

/* Transfers started and not yet finished. */
size_t kn_net_active(const struct kn_net *net);

/*
 * Abort every transfer (each gets its done call with
 * CURLE_ABORTED_BY_CALLBACK), close the uv handles, and free the net once
 * the last handle is closed.  The pointer is invalid after this call.
 */
void kn_net_close(struct kn_net *net);

#endif
