/*
 * report_print.c - the drill report as text and as HTML.  report.c builds
 * it as JSON (`--format json` prints that) and hands these a copy whose
 * strings are safe for a terminal (kn_cli_safe_json); HTML escapes each
 * value again (html_esc).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/report_int.h"
#include "common/text.h"

/* The string u[k], or "-". */
static const char *or_dash(json_t *u, const char *k)
{
    const char *v = json_string_value(json_object_get(u, k));
    return v != NULL ? v : "-";
}

/* ", sent to 保護者1 (time), 保護者2 (time)" of a child, if known. */
static void print_sent_to(json_t *u)
{
    json_t *s;
    size_t j;
    json_array_foreach(json_object_get(u, "sent_to"), j, s)
        printf("%s%s (%s)", j == 0 ? "; sent to " : ", ",
               json_string_value(json_object_get(s, "guardian")),
               json_string_value(json_object_get(s, "at")));
}

void kn__report_print_text(json_t *o)
{
    json_t *v, *u;
    const char *k;
    size_t i;
    printf("broadcast %s  (%s)%s\n",
           json_string_value(json_object_get(o, "id")),
           json_string_value(json_object_get(o, "subject")),
           json_is_true(json_object_get(o, "drill")) ? "  【訓練】" : "");
    printf("recipients:  %lld\n",
           json_integer_value(json_object_get(o, "recipients")));
    printf("reached:     %lld  (reached = accepted by the relay or provider, "
           "not proof of reading)\n",
           json_integer_value(json_object_get(o, "reached")));
    v = json_object_get(o, "reached_within_s");
    printf("  within 1 min %lld, 5 min %lld, 15 min %lld\n",
           json_integer_value(json_object_get(v, "60")),
           json_integer_value(json_object_get(v, "300")),
           json_integer_value(json_object_get(v, "900")));
    json_object_foreach(json_object_get(o, "channels"), k, v)
    {
        json_t *w = json_object_get(v, "reached_within_s");
        printf("  %-6s %lld of %lld reached; within 1/5/15 min: %lld/%lld/"
               "%lld\n",
               k, json_integer_value(json_object_get(v, "reached")),
               json_integer_value(json_object_get(v, "recipients")),
               json_integer_value(json_object_get(w, "60")),
               json_integer_value(json_object_get(w, "300")),
               json_integer_value(json_object_get(w, "900")));
    }
    printf("confirmed:   %lld",
           json_integer_value(json_object_get(o, "confirmed")));
    if (json_is_number(json_object_get(o, "confirm_p50_s")))
        printf("  (time to confirm: p50 %.0f s, p90 %.0f s)",
               json_number_value(json_object_get(o, "confirm_p50_s")),
               json_number_value(json_object_get(o, "confirm_p90_s")));
    printf("\n");
    json_array_foreach(json_object_get(o, "answers"), i, u)
    {
        char *t = kn_text_safe(json_string_value(json_object_get(u, "choice")));
        printf("  answer %-24s %lld\n", t,
               json_integer_value(json_object_get(u, "count")));
        free(t);
    }
    if (json_object_size(json_object_get(o, "failures")) > 0) {
        printf("failures:\n");
        json_object_foreach(json_object_get(o, "failures"), k, v)
            printf("  %5lld  %s\n", json_integer_value(v), k);
    }
    if (json_integer_value(json_object_get(o, "bounced")) > 0 ||
        json_integer_value(json_object_get(o, "suppressed")) > 0)
        printf("bounced:     %lld  (came back after the relay accepted it, "
               "or refused)\nsuppressed:  %lld  (not sent: the address "
               "bounced before)\n",
               json_integer_value(json_object_get(o, "bounced")),
               json_integer_value(json_object_get(o, "suppressed")));
    if (json_integer_value(json_object_get(o, "opted_out")) > 0)
        printf("opted out:   %lld  (not sent: 配信停止 (本人の希望), the "
               "guardian's own choice)\n",
               json_integer_value(json_object_get(o, "opted_out")));
    v = json_object_get(o, "children");
    printf("children:    %lld: reached %lld, through a sibling's guardian "
           "%lld, not reached %lld, no contact on these channels %lld\n",
           json_integer_value(json_object_get(v, "total")),
           json_integer_value(json_object_get(v, "reached")),
           json_integer_value(json_object_get(v, "reached_via_sibling")),
           json_integer_value(json_object_get(v, "not_reached")),
           json_integer_value(json_object_get(v, "no_contact")));
    printf("not confirmed (%zu; no contact, then not reached first):\n",
           json_array_size(json_object_get(o, "unconfirmed")));
    json_array_foreach(json_object_get(o, "unconfirmed"), i, u)
    {
        json_t *a;
        size_t j;
        const char *st = json_string_value(json_object_get(u, "state"));
        printf("  %-16s %-20s %-11s",
               json_string_value(json_object_get(u, "id")), or_dash(u, "name"),
               strcmp(st, "no_contact") == 0    ? "NO CONTACT"
               : strcmp(st, "not_reached") == 0 ? "NOT REACHED"
               : strcmp(st, "bounced") == 0     ? "BOUNCED"
               : strcmp(st, "suppressed") == 0  ? "SUPPRESSED"
               : strcmp(st, "opted_out") == 0   ? "OPTED OUT"
                                                : "reached");
        if (json_string_value(json_object_get(u, "reason")))
            printf(" (%s)", json_string_value(json_object_get(u, "reason")));
        if (json_string_value(json_object_get(u, "via")))
            printf(" via %s", json_string_value(json_object_get(u, "via")));
        if (json_string_value(json_object_get(u, "phone")))
            printf(" tel %s", json_string_value(json_object_get(u, "phone")));
        json_array_foreach(json_object_get(u, "addresses"), j, a)
            printf(" %s", json_string_value(a));
        print_sent_to(u);
        printf("\n");
    }
    printf("confirmed (%zu):\n",
           json_array_size(json_object_get(o, "confirmations")));
    json_array_foreach(json_object_get(o, "confirmations"), i, u)
    {
        const char *by = json_string_value(json_object_get(u, "confirmed_by"));
        printf("  %-16s %-20s by %s at %s",
               json_string_value(json_object_get(u, "id")), or_dash(u, "name"),
               by ? by : "-",
               json_string_value(json_object_get(u, "confirmed_at")));
        print_sent_to(u);
        printf("\n");
    }
}

static void html_esc(const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", stdout);
            break;
        case '<':
            fputs("&lt;", stdout);
            break;
        case '>':
            fputs("&gt;", stdout);
            break;
        case '"':
            fputs("&quot;", stdout);
            break;
        case '\'':
            fputs("&#39;", stdout);
            break;
        default:
            putchar(*s);
        }
    }
}

/* Whom a child's message went to (next_guardian), escaped. */
static void html_sent_to(json_t *u)
{
    json_t *s;
    size_t j;
    json_array_foreach(json_object_get(u, "sent_to"), j, s)
    {
        printf("%s", j == 0 ? "sent to " : ", ");
        html_esc(json_string_value(json_object_get(s, "guardian")));
        printf(" (");
        html_esc(json_string_value(json_object_get(s, "at")));
        printf(")");
    }
}

/* One self-contained page: numbers, an inline SVG chart of reached and
 * confirmed over time, the list to phone. */
void kn__report_print_html(json_t *o)
{
    json_t *tl = json_object_get(o, "timeline"), *p, *u, *v;
    double tmax = 60, W = 640, H = 240, L = 50, B = 30;
    long long n = json_integer_value(json_object_get(o, "recipients"));
    size_t i;
    const char *k;

    json_array_foreach(tl, i, p)
    {
        double t = json_number_value(json_array_get(p, 0));
        if (t > tmax)
            tmax = t;
    }
    if (n < 1)
        n = 1;
    printf("<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta "
           "charset=\"utf-8\"/>\n<title>訓練報告 ");
    html_esc(json_string_value(json_object_get(o, "id")));
    printf("</title>\n<style>body{font-family:sans-serif;margin:1em}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
           "padding:2px 6px}.nr{color:#b00}</style>\n</head>\n<body>\n"
           "<h1>");
    if (json_is_true(json_object_get(o, "drill")))
        printf("【訓練】");
    html_esc(json_string_value(json_object_get(o, "subject")));
    printf("</h1>\n<p>broadcast <code>");
    html_esc(json_string_value(json_object_get(o, "id")));
    printf("</code></p>\n<table>\n");
    printf("<tr><th>recipients</th><td>%lld</td></tr>\n",
           json_integer_value(json_object_get(o, "recipients")));
    v = json_object_get(o, "reached_within_s");
    printf("<tr><th>reached</th><td>%lld (within 1 / 5 / 15 min: %lld / "
           "%lld / %lld)</td></tr>\n",
           json_integer_value(json_object_get(o, "reached")),
           json_integer_value(json_object_get(v, "60")),
           json_integer_value(json_object_get(v, "300")),
           json_integer_value(json_object_get(v, "900")));
    printf("<tr><th>confirmed</th><td>%lld",
           json_integer_value(json_object_get(o, "confirmed")));
    if (json_is_number(json_object_get(o, "confirm_p50_s")))
        printf(" (p50 %.0f s, p90 %.0f s)",
               json_number_value(json_object_get(o, "confirm_p50_s")),
               json_number_value(json_object_get(o, "confirm_p90_s")));
    printf("</td></tr>\n");
    json_object_foreach(json_object_get(o, "failures"), k, v)
    {
        printf("<tr><th>failed: ");
        html_esc(k);
        printf("</th><td>%lld</td></tr>\n", json_integer_value(v));
    }
    if (json_integer_value(json_object_get(o, "bounced")) > 0 ||
        json_integer_value(json_object_get(o, "suppressed")) > 0)
        printf("<tr><th>bounced</th><td>%lld</td></tr>\n"
               "<tr><th>suppressed (not sent: bounced before)</th>"
               "<td>%lld</td></tr>\n",
               json_integer_value(json_object_get(o, "bounced")),
               json_integer_value(json_object_get(o, "suppressed")));
    printf("</table>\n<p>reached = accepted by the relay or provider, not "
           "proof of reading.</p>\n");
    printf("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
           "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
           W, H, W, H);
    printf("<title>reached and confirmed over time</title>\n");
    printf("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
           "stroke=\"#000\"/>\n",
           L, H - B, W - 10, H - B);
    printf("<line x1=\"%.0f\" y1=\"10\" x2=\"%.0f\" y2=\"%.0f\" "
           "stroke=\"#000\"/>\n",
           L, L, H - B);
    printf("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%.0f s</text>\n",
           W - 60, H - 8, tmax);
    printf("<text x=\"4\" y=\"16\" font-size=\"11\">%lld</text>\n", n);
    for (int s = 0; s < 2; s++) {
        printf("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
               "points=\"",
               s == 0 ? "#1565c0" : "#2e7d32");
        json_array_foreach(tl, i, p)
        {
            double t = json_number_value(json_array_get(p, 0));
            double c = (double)json_integer_value(json_array_get(p, 1 + s));
            printf("%.1f,%.1f ", L + t / tmax * (W - 10 - L),
                   (H - B) - c / (double)n * (H - B - 10));
        }
        printf("\"/>\n");
    }
    printf("<text x=\"%.0f\" y=\"24\" font-size=\"12\" fill=\"#1565c0\">"
           "reached</text>\n",
           L + 10);
    printf("<text x=\"%.0f\" y=\"40\" font-size=\"12\" fill=\"#2e7d32\">"
           "confirmed</text>\n",
           L + 10);
    printf("</svg>\n<h2>not confirmed (%zu)</h2>\n<table>\n"
           "<tr><th>id</th><th>name</th><th>reached</th><th>addresses</th>"
           "</tr>\n",
           json_array_size(json_object_get(o, "unconfirmed")));
    json_array_foreach(json_object_get(o, "unconfirmed"), i, u)
    {
        json_t *a;
        size_t j;
        int r = json_is_true(json_object_get(u, "reached"));
        printf("<tr%s><td>", r ? "" : " class=\"nr\"");
        html_esc(json_string_value(json_object_get(u, "id")));
        printf("</td><td>");
        html_esc(json_string_value(json_object_get(u, "name")));
        {
            const char *st = json_string_value(json_object_get(u, "state"));
            printf("</td><td>%s", strcmp(st, "no_contact") == 0   ? "NO CONTACT"
                                  : strcmp(st, "bounced") == 0    ? "BOUNCED"
                                  : strcmp(st, "suppressed") == 0 ? "SUPPRESSED"
                                  : strcmp(st, "opted_out") == 0  ? "OPTED OUT"
                                  : r                             ? "yes"
                                                                  : "NO");
            if (json_string_value(json_object_get(u, "reason_ja"))) {
                printf(": ");
                html_esc(json_string_value(json_object_get(u, "reason_ja")));
                printf(" / ");
                html_esc(json_string_value(json_object_get(u, "reason")));
            }
            if (json_string_value(json_object_get(u, "via"))) {
                printf(" (via ");
                html_esc(json_string_value(json_object_get(u, "via")));
                printf(")");
            }
            printf("</td><td>");
            if (json_string_value(json_object_get(u, "phone"))) {
                printf("tel ");
                html_esc(json_string_value(json_object_get(u, "phone")));
                printf(" ");
            }
        }
        json_array_foreach(json_object_get(u, "addresses"), j, a)
        {
            html_esc(json_string_value(a));
            printf(" ");
        }
        html_sent_to(u);
        printf("</td></tr>\n");
    }
    printf("</table>\n<h2>confirmed (%zu)</h2>\n<table>\n"
           "<tr><th>id</th><th>name</th><th>confirmed by</th>"
           "<th>at</th><th>sent to</th></tr>\n",
           json_array_size(json_object_get(o, "confirmations")));
    json_array_foreach(json_object_get(o, "confirmations"), i, u)
    {
        printf("<tr><td>");
        html_esc(json_string_value(json_object_get(u, "id")));
        printf("</td><td>");
        html_esc(json_string_value(json_object_get(u, "name")));
        printf("</td><td class=\"by\">");
        html_esc(json_string_value(json_object_get(u, "confirmed_by")));
        printf("</td><td>");
        html_esc(json_string_value(json_object_get(u, "confirmed_at")));
        printf("</td><td>");
        html_sent_to(u);
        printf("</td></tr>\n");
    }
    printf("</table>\n</body>\n</html>\n");
}
