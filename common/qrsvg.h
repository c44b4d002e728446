/*
 * qrsvg.h - a QR code as inline SVG, for the printed registration sheets
 * (issue 15).  Debian's libqrencode computes the matrix; this only draws
 * it: one <svg> with a white background and one <path> of the dark
 * modules, a quiet zone of four modules around them, sized by viewBox so
 * that CSS decides how large it prints.
 */
#ifndef KN_COMMON_QRSVG_H
#define KN_COMMON_QRSVG_H

/*
 * text (a URL: byte mode, error correction level M) as an SVG element
 * with the given accessible label (already HTML-escaped by the caller, or
 * plain ASCII).  Returns a heap string, or NULL if the text does not fit
 * in a QR code (more than about 2,300 bytes).
 */
char *kn_qr_svg(const char *text, const char *label);

#endif
