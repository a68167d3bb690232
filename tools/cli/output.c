/* How the `bftkv` command line prints results for scripts (tools/cli/cli.h):
 * JSON strings and values, and a value's bytes as hex or base64.
 *
 * A JSON string must be valid Unicode, but keys and values are bytes. So a
 * string field is printed as a JSON string only when its bytes are valid UTF-8
 * (control characters escaped); otherwise the caller prints it base64-encoded
 * in a field that says so (`value_base64`, `encoding`), never a lossy text.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

bool cli_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (n == 0 || i + n > len)
            return false;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n;
    }
    return true;
}

void cli_json_string(FILE *fp, const uint8_t *s, size_t len)
{
    fputc('"', fp);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c < 0x20 || c == 0x7f)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

void cli_hex(FILE *fp, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        fprintf(fp, "%02x", s[i]);
}

void cli_base64(FILE *fp, const uint8_t *s, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        fputc(tab[(v >> 18) & 63], fp);
        fputc(tab[(v >> 12) & 63], fp);
        fputc(i + 1 < len ? tab[(v >> 6) & 63] : '=', fp);
        fputc(i + 2 < len ? tab[v & 63] : '=', fp);
    }
}

void cli_json_bytes_field(FILE *fp, const char *name, const uint8_t *s, size_t len)
{
    if (cli_utf8_valid(s, len)) {
        fprintf(fp, "\"%s\":", name);
        cli_json_string(fp, s, len);
    } else {
        fprintf(fp, "\"%s_base64\":\"", name);
        cli_base64(fp, s, len);
        fputc('"', fp);
    }
}
