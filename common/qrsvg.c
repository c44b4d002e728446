/*
 * qrsvg.c - drawing a QR code (libqrencode's matrix) as inline SVG; see
 * qrsvg.h.  The path is one "M x y h1 v1 h-1 z" run per row of adjacent
 * dark modules, so a version 4 code is a few kilobytes of text.
 */
#include "common/qrsvg.h"

#include <qrencode.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/kn.h"

#define QUIET 4

char *kn_qr_svg(const char *text, const char *label)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    struct kn_buf b;
    int w, full;

    if (qr == NULL)
        return NULL;
    w = qr->width;
    full = w + 2 * QUIET;
    kn_buf_init(&b, 0);
    kn_buf_addf(&b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d "
                "%d\" role=\"img\" aria-label=\"%s\" "
                "shape-rendering=\"crispEdges\">"
                "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                "<path fill=\"#000\" d=\"",
                full, full, label ? label : "QR", full, full);
    for (int y = 0; y < w; y++) {
        for (int x = 0; x < w;) {
            int run = 0;
            while (x + run < w && (qr->data[y * w + x + run] & 1))
                run++;
            if (run > 0) {
                kn_buf_addf(&b, "M%d %dh%dv1h-%dz", x + QUIET, y + QUIET, run,
                            run);
                x += run;
            } else {
                x++;
            }
        }
    }
    kn_buf_add(&b, "\"/></svg>");
    QRcode_free(qr);
    return kn_buf_take(&b, NULL);
}
