/* The plain shape of a shard's price chunk, read into the answer's elements in one pass.
 *
 * Python reads every point of every cold answer (federation/router/rows.py); per point,
 * even with C helpers for each step (a split, a join, NumPy on the columns), that costs
 * about half a microsecond, half the router's CPU per answer. This does the same work
 * on the bytes, at about a seventh of it, and nothing else: it takes the values of a
 * chunk of the plain shape, ``[time,price,"exchange"],...`` as InfluxDB 1.x writes them
 * with ``epoch=ms``, and gives back the answer's elements and their columns. It declines
 * (returns None) whatever it does not read exactly as Python's general path would (an
 * escape in a string, a price that is not a number's text, a time past year 9999, more
 * than MAX_NAMES exchanges), and rows.py then reads the chunk the general way: the tests
 * check that both give the same bytes. The same for a chunk in MessagePack, the form the
 * router asks for, is further down (read_packed, elements).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 256
#define MAX_TIME_DIGITS 18
/* 10000-01-01T00:00:00Z: four-digit years only, as NumPy writes them. */
#define TIME_LIMIT_MS 253402300800000LL
#define ISO_LENGTH 24 /* 2022-10-11T01:20:02.951Z */
#define MAX_FLOAT 48  /* a float64 laid out as Go's JSON: see go_float */

static const char OPEN[] = "{\"price\":";
static const char TIME[] = ",\"time\":\"";
static const char EXCHANGE[] = "\",\"exchange\":\"";
static const char CLOSE[] = "\"},";
#define FIXED (sizeof(OPEN) - 1 + sizeof(TIME) - 1 + ISO_LENGTH + sizeof(EXCHANGE) - 1 + sizeof(CLOSE) - 1)

typedef struct {
    Py_ssize_t price, price_end, name, name_end;
} Row;

static Py_ssize_t digits_end(const char *s, Py_ssize_t pos, Py_ssize_t n) {
    while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
        pos++;
    }
    return pos;
}

/* Where the JSON number at pos ends, or -1 when there is none. */
static Py_ssize_t number_end(const char *s, Py_ssize_t pos, Py_ssize_t n) {
    Py_ssize_t at = pos + (pos < n && s[pos] == '-'), end;
    if (at >= n || s[at] < '0' || s[at] > '9') {
        return -1;
    }
    end = s[at] == '0' ? at + 1 : digits_end(s, at, n);
    if (end < n && s[end] == '.') {
        Py_ssize_t fraction = digits_end(s, end + 1, n);
        if (fraction == end + 1) {
            return -1;
        }
        end = fraction;
    }
    if (end < n && (s[end] == 'e' || s[end] == 'E')) {
        Py_ssize_t sign = end + 1 + (end + 1 < n && (s[end + 1] == '+' || s[end + 1] == '-'));
        Py_ssize_t exponent = digits_end(s, sign, n);
        if (exponent == sign) {
            return -1;
        }
        end = exponent;
    }
    return end;
}

static char *put(char *out, const char *from, Py_ssize_t length) {
    memcpy(out, from, (size_t)length);
    return out + length;
}

static void two(char *out, int value) {
    out[0] = (char)('0' + value / 10);
    out[1] = (char)('0' + value % 10);
}

/* Epoch milliseconds (0 <= ms < TIME_LIMIT_MS) as ISO 8601 in UTC with milliseconds and
 * Z, as federation/core/timefmt.py writes it (days to civil date: H. Hinnant's). */
static void iso(int64_t ms, char *out) {
    int64_t days = ms / 86400000, in_day = ms % 86400000;
    int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int day = (int)(doy - (153 * mp + 2) / 5 + 1), month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    two(out, year / 100);
    two(out + 2, year % 100);
    out[4] = '-';
    two(out + 5, month);
    out[7] = '-';
    two(out + 8, day);
    out[10] = 'T';
    two(out + 11, (int)(in_day / 3600000));
    out[13] = ':';
    two(out + 14, (int)(in_day / 60000 % 60));
    out[16] = ':';
    two(out + 17, (int)(in_day / 1000 % 60));
    out[19] = '.';
    out[20] = (char)('0' + in_day % 1000 / 100);
    two(out + 21, (int)(in_day % 100));
    out[23] = 'Z';
}

/* The two names compared as bytes (UTF-8's order is code points' order). */
static int compare(const char *a, Py_ssize_t a_len, const char *b, Py_ssize_t b_len) {
    int c = memcmp(a, b, (size_t)(a_len < b_len ? a_len : b_len));
    return c ? c : (a_len > b_len) - (a_len < b_len);
}

/* A chunk's exchanges, in the order first seen; a point holds its exchange's code. */
typedef struct {
    const char *at[MAX_NAMES];
    Py_ssize_t len[MAX_NAMES];
    int count;
} Names;

/* The code of a name, added when new (*added then says so); -1 when MAX_NAMES are taken.
 * The points of a tick cycle through a few names, so the one after the last point's
 * (``last``, -1 for none) is tried first. */
static inline int code_of(Names *names, const char *name, Py_ssize_t len, int64_t last, int *added) {
    int code = last >= 0 && last + 1 < names->count ? (int)last + 1 : 0;
    if (code == names->count || names->len[code] != len || memcmp(names->at[code], name, (size_t)len)) {
        code = 0;
        while (code < names->count && (names->len[code] != len || memcmp(names->at[code], name, (size_t)len))) {
            code++;
        }
    }
    *added = code == names->count;
    if (*added) {
        if (code == MAX_NAMES) {
            return -1;
        }
        names->at[code] = name;
        names->len[code] = len;
        names->count++;
    }
    return code;
}

/* Whether a point (t, name) comes strictly after the one before it (its time and
 * exchange code) in (time, exchange) order. */
static inline int follows(const Names *names, int64_t t, const char *name, Py_ssize_t len, int64_t last_t,
                   int64_t last_code) {
    return t > last_t ||
           (t == last_t && compare(name, len, names->at[last_code], names->len[last_code]) > 0);
}

/* The names as a tuple of bytes, or NULL with the error set. */
static PyObject *name_tuple(const Names *names) {
    PyObject *tuple = PyTuple_New(names->count);
    for (int i = 0; tuple && i < names->count; i++) {
        PyObject *name = PyBytes_FromStringAndSize(names->at[i], names->len[i]);
        if (!name) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, i, name);
    }
    return tuple;
}

/* An element after its opening and price: its time and exchange, and the close. */
static inline char *element_end(char *out, const char *iso_text, const char *name, Py_ssize_t len) {
    out = put(out, TIME, sizeof(TIME) - 1);
    out = put(out, iso_text, ISO_LENGTH);
    out = put(out, EXCHANGE, sizeof(EXCHANGE) - 1);
    out = put(out, name, len);
    return put(out, CLOSE, sizeof(CLOSE) - 1);
}

static PyObject *read_values(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *s = view.buf;
    Py_ssize_t n = view.len, pos = 0, count = 0, capacity = n / 8 + 1, size = 0;
    Row *rows = PyMem_Malloc((size_t)capacity * sizeof(Row));
    int64_t *times = PyMem_Malloc((size_t)capacity * sizeof(int64_t));
    int64_t *codes = PyMem_Malloc((size_t)capacity * sizeof(int64_t));
    Names names = {.count = 0};
    int in_order = 1, added;
    PyObject *result = NULL;
    if (!rows || !times || !codes) {
        PyErr_NoMemory();
        goto done;
    }
    /* Each row: [digits,price,"name"] then a comma, or the end. Fewer than 8 bytes a
     * row is impossible, so capacity rows always suffice. */
    while (pos < n) {
        Row *row = &rows[count];
        int64_t t = 0;
        int digits = 0;
        if (s[pos++] != '[') {
            goto decline;
        }
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
            if (digits++ == MAX_TIME_DIGITS || (digits == 2 && t == 0)) {
                goto decline; /* too long for int64 here, or a leading zero */
            }
            t = t * 10 + (s[pos++] - '0');
        }
        if (!digits || t >= TIME_LIMIT_MS || pos >= n || s[pos++] != ',') {
            goto decline;
        }
        row->price = pos;
        pos = number_end(s, pos, n);
        row->price_end = pos;
        if (pos < 0 || pos + 1 >= n || s[pos] != ',' || s[pos + 1] != '"') {
            goto decline;
        }
        pos += 2;
        row->name = pos;
        while (pos < n && s[pos] != '"') {
            unsigned char c = (unsigned char)s[pos++];
            if (c == '\\' || c < 0x20) {
                goto decline;
            }
        }
        row->name_end = pos;
        if (pos + 1 >= n || s[pos + 1] != ']') {
            goto decline;
        }
        pos += 2;
        if (pos < n && (s[pos++] != ',' || pos == n)) {
            goto decline;
        }
        Py_ssize_t len = row->name_end - row->name;
        int code = code_of(&names, s + row->name, len, count ? codes[count - 1] : -1, &added);
        if (code < 0) {
            goto decline;
        }
        if (count && in_order) {
            in_order = follows(&names, t, s + row->name, len, times[count - 1], codes[count - 1]);
        }
        times[count] = t;
        codes[count++] = code;
        size += (Py_ssize_t)FIXED + (row->price_end - row->price) + len;
    }
    if (!count) {
        goto decline;
    }
    PyObject *blob = PyBytes_FromStringAndSize(NULL, size);
    PyObject *starts = PyBytes_FromStringAndSize(NULL, (count + 1) * (Py_ssize_t)sizeof(int64_t));
    PyObject *time_column = PyBytes_FromStringAndSize((const char *)times, count * (Py_ssize_t)sizeof(int64_t));
    PyObject *code_column = PyBytes_FromStringAndSize((const char *)codes, count * (Py_ssize_t)sizeof(int64_t));
    PyObject *name_list = name_tuple(&names);
    if (!blob || !starts || !time_column || !code_column || !name_list) {
        goto fail;
    }
    char *out = PyBytes_AS_STRING(blob), *begin = out;
    int64_t *start = (int64_t *)PyBytes_AS_STRING(starts);
    char text[ISO_LENGTH];
    int64_t formatted = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        const Row *row = &rows[i];
        start[i] = out - begin;
        if (times[i] != formatted) { /* a tick's exchanges share its time */
            iso(times[i], text);
            formatted = times[i];
        }
        out = put(out, OPEN, sizeof(OPEN) - 1);
        out = put(out, s + row->price, row->price_end - row->price);
        out = element_end(out, text, s + row->name, row->name_end - row->name);
    }
    start[count] = out - begin;
    result = Py_BuildValue("(NNNNNO)", blob, starts, time_column, code_column, name_list,
                           in_order ? Py_True : Py_False);
    goto done;
fail:
    Py_XDECREF(blob);
    Py_XDECREF(starts);
    Py_XDECREF(time_column);
    Py_XDECREF(code_column);
    Py_XDECREF(name_list);
    goto done;
decline:
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(rows);
    PyMem_Free(times);
    PyMem_Free(codes);
    PyBuffer_Release(&view);
    return result;
}

/* MessagePack: InfluxDB's other answer form (Accept: application/x-msgpack), which
 * costs influxd about 40 % less CPU than JSON for the same answer (docs/benchmarks.md).
 * A chunk is read in two steps around one orjson call that prints its prices:
 * read_packed takes the points' columns (prices as doubles), elements writes the
 * answer's elements from the printed prices, each laid out as InfluxDB's JSON writes
 * a float (Go's encoding/json), so the bytes are those of the JSON form. */

typedef struct {
    const unsigned char *s;
    Py_ssize_t pos, n;
} Cursor;

static int need(const Cursor *c, Py_ssize_t k) { return c->pos + k <= c->n; }

static uint64_t big_endian(const unsigned char *p, int k) {
    uint64_t v = 0;
    for (int i = 0; i < k; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* A container's count (maps: 1, arrays: 0), or -1 when the next value is not one. */
static int64_t container(Cursor *c, int map) {
    if (!need(c, 1)) {
        return -1;
    }
    unsigned char b = c->s[c->pos];
    int64_t count;
    if ((b & 0xf0) == (map ? 0x80 : 0x90)) {
        count = b & 0x0f;
        c->pos += 1;
    } else if (b == (map ? 0xde : 0xdc) && need(c, 3)) {
        count = (int64_t)big_endian(c->s + c->pos + 1, 2);
        c->pos += 3;
    } else if (b == (map ? 0xdf : 0xdd) && need(c, 5)) {
        count = (int64_t)big_endian(c->s + c->pos + 1, 4);
        c->pos += 5;
    } else {
        return -1;
    }
    return count;
}

/* A string's bytes; 0 when the next value is not a string. */
static int string(Cursor *c, const char **at, Py_ssize_t *length) {
    if (!need(c, 1)) {
        return 0;
    }
    unsigned char b = c->s[c->pos];
    int head = (b & 0xe0) == 0xa0 ? 1 : b == 0xd9 ? 2 : b == 0xda ? 3 : b == 0xdb ? 5 : 0;
    if (!head || !need(c, head)) {
        return 0;
    }
    Py_ssize_t len = head == 1 ? (b & 0x1f) : (Py_ssize_t)big_endian(c->s + c->pos + 1, head - 1);
    if (!need(c, head + len)) {
        return 0;
    }
    *at = (const char *)c->s + c->pos + head;
    *length = len;
    c->pos += head + len;
    return 1;
}

static int is(const char *at, Py_ssize_t length, const char *word) {
    return (size_t)length == strlen(word) && !memcmp(at, word, (size_t)length);
}

/* An integer (any width); 0 when the next value is not one, or past int64. */
static int integer(Cursor *c, int64_t *value) {
    if (!need(c, 1)) {
        return 0;
    }
    unsigned char b = c->s[c->pos];
    if (b <= 0x7f || b >= 0xe0) {
        *value = (int8_t)b;
        c->pos += 1;
        return 1;
    }
    static const int widths[] = {1, 2, 4, 8};
    if (b < 0xcc || b > 0xd3) {
        return 0;
    }
    int k = widths[(b - 0xcc) % 4];
    if (!need(c, 1 + k)) {
        return 0;
    }
    uint64_t v = big_endian(c->s + c->pos + 1, k);
    if (b <= 0xcf) { /* unsigned */
        if (v > INT64_MAX) {
            return 0;
        }
        *value = (int64_t)v;
    } else { /* signed: extend the sign of its width */
        int shift = 64 - 8 * k;
        *value = (int64_t)(v << shift) >> shift;
    }
    c->pos += 1 + k;
    return 1;
}

/* Past one value of any kind; 0 when it is malformed or cut short. */
static int skip(Cursor *c) {
    int64_t pending = 1;
    while (pending-- > 0) {
        if (!need(c, 1)) {
            return 0;
        }
        unsigned char b = c->s[c->pos];
        int64_t count;
        const char *at;
        Py_ssize_t length;
        int64_t value;
        if ((count = container(c, 1)) >= 0) {
            pending += 2 * count;
        } else if ((count = container(c, 0)) >= 0) {
            pending += count;
        } else if (string(c, &at, &length) || integer(c, &value)) {
            continue;
        } else if (b == 0xc0 || b == 0xc2 || b == 0xc3) {
            c->pos += 1;
        } else if (b == 0xca || b == 0xcb) {
            c->pos += b == 0xca ? 5 : 9;
        } else {
            return 0; /* bin, ext: not in InfluxDB's answers */
        }
        if (c->pos > c->n) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    double *prices;
    int64_t *times, *codes;
    Py_ssize_t count, capacity;
    Names names;
    int in_order;
} Points;

/* A series' values: [[time, price, "exchange"], ...]; 0 to decline. */
static int packed_values(Cursor *c, Points *p) {
    int64_t rows = container(c, 0);
    if (rows < 0 || rows > p->capacity - p->count) {
        return 0;
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t t;
        const char *name;
        Py_ssize_t len;
        if (container(c, 0) != 3 || !integer(c, &t) || t < 0 || t >= TIME_LIMIT_MS || !need(c, 9) ||
            c->s[c->pos] != 0xcb) {
            return 0;
        }
        uint64_t bits = big_endian(c->s + c->pos + 1, 8);
        c->pos += 9;
        if (!string(c, &name, &len)) {
            return 0;
        }
        Py_ssize_t i = p->count;
        int added, code = code_of(&p->names, name, len, i ? p->codes[i - 1] : -1, &added);
        if (code < 0) {
            return 0;
        }
        for (Py_ssize_t k = 0; added && k < len; k++) { /* checked once a name */
            unsigned char ch = (unsigned char)name[k];
            if (ch == '"' || ch == '\\' || ch < 0x20) {
                return 0; /* would need escaping: the general reading does that */
            }
        }
        if (i && p->in_order) {
            p->in_order = follows(&p->names, t, name, len, p->times[i - 1], p->codes[i - 1]);
        }
        memcpy(&p->prices[i], &bits, sizeof(double));
        p->times[i] = t;
        p->codes[i] = code;
        p->count++;
    }
    return 1;
}

/* One series: its columns must be time, price, exchange, before its values. */
static int packed_series(Cursor *c, Points *p) {
    int64_t keys = container(c, 1);
    int columns = 0;
    if (keys < 0) {
        return 0;
    }
    while (keys-- > 0) {
        const char *key;
        Py_ssize_t len;
        if (!string(c, &key, &len)) {
            return 0;
        }
        if (is(key, len, "columns")) {
            const char *col;
            Py_ssize_t col_len;
            static const char *const expected[] = {"time", "price", "exchange"};
            if (container(c, 0) != 3) {
                return 0;
            }
            for (int i = 0; i < 3; i++) {
                if (!string(c, &col, &col_len) || !is(col, col_len, expected[i])) {
                    return 0;
                }
            }
            columns = 1;
        } else if (is(key, len, "values")) {
            if (!columns || !packed_values(c, p)) {
                return 0;
            }
        } else if (is(key, len, "name") || is(key, len, "partial")) {
            if (!skip(c)) {
                return 0;
            }
        } else {
            return 0; /* tags (a GROUP BY), or anything else: the general reading */
        }
    }
    return 1;
}

/* The chunk: {"results": [{"statement_id": 0, "series": [...], "partial": true}]}. */
static int packed_chunk(Cursor *c, Points *p) {
    int64_t keys = container(c, 1), results, fields, series;
    const char *key;
    Py_ssize_t len;
    if (keys != 1 || !string(c, &key, &len) || !is(key, len, "results") || (results = container(c, 0)) != 1 ||
        (fields = container(c, 1)) < 0) {
        return 0;
    }
    while (fields-- > 0) {
        if (!string(c, &key, &len)) {
            return 0;
        }
        if (is(key, len, "series")) {
            if ((series = container(c, 0)) < 0) {
                return 0;
            }
            while (series-- > 0) {
                if (!packed_series(c, p)) {
                    return 0;
                }
            }
        } else if (is(key, len, "statement_id") || is(key, len, "partial")) {
            if (!skip(c)) {
                return 0;
            }
        } else {
            return 0; /* an error, messages: the general reading says what they are */
        }
    }
    return c->pos == c->n;
}

static PyObject *read_packed(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    /* A point takes at least 12 bytes (a fixarray, a fixint, a float64, an empty
     * fixstr); a chunk claiming more points than that is declined. */
    Points p = {.capacity = view.len / 12 + 1, .names = {.count = 0}, .in_order = 1};
    Cursor c = {.s = view.buf, .pos = 0, .n = view.len};
    PyObject *result = NULL;
    p.prices = PyMem_Malloc((size_t)p.capacity * sizeof(double));
    p.times = PyMem_Malloc((size_t)p.capacity * sizeof(int64_t));
    p.codes = PyMem_Malloc((size_t)p.capacity * sizeof(int64_t));
    if (!p.prices || !p.times || !p.codes) {
        PyErr_NoMemory();
    } else if (!packed_chunk(&c, &p) || !p.count) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *names = name_tuple(&p.names);
        Py_ssize_t k = p.count * (Py_ssize_t)sizeof(int64_t);
        result = names ? Py_BuildValue("(y#y#y#NO)", (const char *)p.prices, k, (const char *)p.times, k,
                                       (const char *)p.codes, k, names, p.in_order ? Py_True : Py_False)
                       : NULL;
    }
    PyMem_Free(p.prices);
    PyMem_Free(p.times);
    PyMem_Free(p.codes);
    PyBuffer_Release(&view);
    return result;
}

/* One number as orjson prints a float (shortest round-trip digits: "62018.0", "1e-7",
 * "1.2345678901234568e+20", "-0.0") laid out as Go's encoding/json does: plain decimal
 * for 1e-6 <= |x| < 1e21 without a trailing ".0", else d.ddde-7 / d.ddde+21. Returns the
 * length written (at most MAX_FLOAT: a sign, 32 digits, "0." and five zeros, or an
 * exponent), or -1 when it is not such a number. */
static Py_ssize_t go_float(const char *s, Py_ssize_t n, char *out) {
    char digits[32];
    int count = 0, point = 0, seen_point = 0, negative = 0, exponent = 0;
    Py_ssize_t i = 0;
    if (i < n && s[i] == '-') {
        negative = 1;
        i++;
    }
    for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'); i++) {
        if (s[i] == '.') {
            if (seen_point++) {
                return -1;
            }
            point = count;
        } else if (count || s[i] != '0') {
            if (count == (int)sizeof(digits)) {
                return -1;
            }
            digits[count++] = s[i];
        } else if (seen_point) {
            point--; /* a leading zero after the point: 0.00001 */
        }
    }
    if (!seen_point) {
        point = count;
    }
    if (i < n && s[i] == 'e') {
        int sign = 1, e = 0, seen = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            sign = s[i++] == '-' ? -1 : 1;
        }
        for (; i < n && s[i] >= '0' && s[i] <= '9' && e < 10000; i++, seen++) {
            e = e * 10 + (s[i] - '0');
        }
        if (!seen) {
            return -1;
        }
        exponent = sign * e;
    }
    if (i != n) {
        return -1;
    }
    while (count && digits[count - 1] == '0') {
        count--;
    }
    char *o = out;
    if (negative) {
        *o++ = '-';
    }
    if (!count) {
        *o++ = '0';
        return o - out;
    }
    int dp = point + exponent; /* the value is 0.digits x 10^dp */
    if (dp >= -5 && dp <= 21) {
        if (dp <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int z = 0; z < -dp; z++) {
                *o++ = '0';
            }
            o = put(o, digits, count);
        } else if (dp >= count) {
            o = put(o, digits, count);
            for (int z = count; z < dp; z++) {
                *o++ = '0';
            }
        } else {
            o = put(o, digits, dp);
            *o++ = '.';
            o = put(o, digits + dp, count - dp);
        }
    } else {
        *o++ = digits[0];
        if (count > 1) {
            *o++ = '.';
            o = put(o, digits + 1, count - 1);
        }
        o += sprintf(o, dp - 1 < 0 ? "e-%d" : "e+%02d", abs(dp - 1));
    }
    return o - out;
}

/* Where the number at pos ends (a comma or the closing bracket), and whether orjson's
 * text is Go's already: plain decimal, not ending in ".0" (the prices of a market). */
static Py_ssize_t number_text(const char *s, Py_ssize_t pos, Py_ssize_t last, int *as_is) {
    Py_ssize_t end = pos;
    int exponent = 0;
    while (end < last && s[end] != ',') {
        exponent |= s[end] == 'e';
        end++;
    }
    *as_is = !exponent && !(end - pos >= 2 && s[end - 2] == '.' && s[end - 1] == '0');
    return end;
}

static PyObject *elements(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer text, times_view, codes_view;
    PyObject *names, *result = NULL, *blob = NULL, *starts = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*O!", &text, &times_view, &codes_view, &PyTuple_Type, &names)) {
        return NULL;
    }
    const char *s = text.buf;
    const int64_t *times = times_view.buf, *codes = codes_view.buf;
    Py_ssize_t count = times_view.len / (Py_ssize_t)sizeof(int64_t), last = text.len - 1;
    Py_ssize_t names_count = PyTuple_GET_SIZE(names), pos = 1, size = 0;
    char number[MAX_FLOAT];
    for (Py_ssize_t j = 0; j < names_count; j++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, j))) {
            PyErr_SetString(PyExc_TypeError, "names must be bytes");
            goto done;
        }
    }
    if (codes_view.len != times_view.len || !count || text.len < 2 || s[0] != '[' || s[last] != ']') {
        goto decline;
    }
    /* First the size: the text of most prices is Go's already, the others are laid out
     * once here to learn their length. */
    for (Py_ssize_t i = 0; i < count; i++) {
        int as_is;
        Py_ssize_t end = number_text(s, pos, last, &as_is);
        Py_ssize_t length = as_is ? end - pos : go_float(s + pos, end - pos, number);
        if (codes[i] < 0 || codes[i] >= names_count || times[i] < 0 || times[i] >= TIME_LIMIT_MS ||
            (i == count - 1) != (end == last) || end - pos > 40 || length < 0) {
            goto decline; /* null (a NaN or an infinity, which InfluxDB does not store) */
        }
        size += (Py_ssize_t)FIXED + length + PyBytes_GET_SIZE(PyTuple_GET_ITEM(names, codes[i]));
        pos = end + 1;
    }
    blob = PyBytes_FromStringAndSize(NULL, size);
    starts = PyBytes_FromStringAndSize(NULL, (count + 1) * (Py_ssize_t)sizeof(int64_t));
    if (!blob || !starts) {
        goto fail;
    }
    char *out = PyBytes_AS_STRING(blob), *begin = out, iso_text[ISO_LENGTH];
    int64_t *start = (int64_t *)PyBytes_AS_STRING(starts), formatted = -1;
    pos = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int as_is;
        Py_ssize_t end = number_text(s, pos, last, &as_is);
        start[i] = out - begin;
        out = put(out, OPEN, sizeof(OPEN) - 1);
        out += as_is ? (put(out, s + pos, end - pos) - out) : go_float(s + pos, end - pos, out);
        if (times[i] != formatted) {
            iso(times[i], iso_text);
            formatted = times[i];
        }
        PyObject *name = PyTuple_GET_ITEM(names, codes[i]);
        out = element_end(out, iso_text, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        pos = end + 1;
    }
    start[count] = out - begin;
    result = Py_BuildValue("(NN)", blob, starts);
    goto done;
decline:
    result = Py_NewRef(Py_None);
    goto done;
fail:
    Py_XDECREF(blob);
    Py_XDECREF(starts);
done:
    PyBuffer_Release(&text);
    PyBuffer_Release(&times_view);
    PyBuffer_Release(&codes_view);
    return result;
}

static PyMethodDef methods[] = {
    {"read_values", read_values, METH_O,
     "read_values(values, /)\n--\n\n"
     "The answer's elements of a chunk's values of the plain shape, each followed by a\n"
     "comma, and their columns: (elements, starts, times, codes, names, in_order), the\n"
     "three columns as native int64 bytes, codes indexing names (the exchanges' bytes,\n"
     "in the order first seen); None for anything else."},
    {"read_packed", read_packed, METH_O,
     "read_packed(chunk, /)\n--\n\n"
     "The points of a MessagePack chunk of the plain shape: (prices, times, codes, names,\n"
     "in_order), prices as native float64 bytes, times and codes as int64 bytes, codes\n"
     "indexing names (the exchanges' bytes, in the order first seen); None for anything\n"
     "else."},
    {"elements", elements, METH_VARARGS,
     "elements(prices, times, codes, names, /)\n--\n\n"
     "The answer's elements, each followed by a comma, and where each starts: prices as\n"
     "orjson prints a float64 array, laid out as InfluxDB's JSON; None when one is not\n"
     "a finite number."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_chunkreader",
    .m_doc = "The plain shape of a shard's price chunk, read in C (federation/router/rows.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__chunkreader(void) { return PyModule_Create(&module); }
