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
 * check that both give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_NAMES 256
#define MAX_TIME_DIGITS 18
/* 10000-01-01T00:00:00Z: four-digit years only, as NumPy writes them. */
#define TIME_LIMIT_MS 253402300800000LL
#define ISO_LENGTH 24 /* 2022-10-11T01:20:02.951Z */

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
    Py_ssize_t name_at[MAX_NAMES], name_len[MAX_NAMES];
    int names = 0, in_order = 1;
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
        /* The exchange's code: the rows of a tick cycle through a few names, so the one
         * after the last row's is tried first. */
        Py_ssize_t len = row->name_end - row->name;
        int code = count && codes[count - 1] + 1 < names ? (int)codes[count - 1] + 1 : 0;
        if (code == names || name_len[code] != len || memcmp(s + name_at[code], s + row->name, (size_t)len)) {
            code = 0;
            while (code < names &&
                   (name_len[code] != len || memcmp(s + name_at[code], s + row->name, (size_t)len))) {
                code++;
            }
        }
        if (code == names) {
            if (names == MAX_NAMES) {
                goto decline;
            }
            name_at[names] = row->name;
            name_len[names++] = len;
        }
        if (count && in_order) {
            const Row *last = &rows[count - 1];
            in_order = t > times[count - 1] ||
                       (t == times[count - 1] &&
                        compare(s + row->name, len, s + last->name, last->name_end - last->name) > 0);
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
    PyObject *name_list = PyTuple_New(names);
    if (!blob || !starts || !time_column || !code_column || !name_list) {
        goto fail;
    }
    for (int i = 0; i < names; i++) {
        PyObject *name = PyBytes_FromStringAndSize(s + name_at[i], name_len[i]);
        if (!name) {
            goto fail;
        }
        PyTuple_SET_ITEM(name_list, i, name);
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
        out = put(out, TIME, sizeof(TIME) - 1);
        out = put(out, text, ISO_LENGTH);
        out = put(out, EXCHANGE, sizeof(EXCHANGE) - 1);
        out = put(out, s + row->name, row->name_end - row->name);
        out = put(out, CLOSE, sizeof(CLOSE) - 1);
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

static PyMethodDef methods[] = {
    {"read_values", read_values, METH_O,
     "read_values(values, /)\n--\n\n"
     "The answer's elements of a chunk's values of the plain shape, each followed by a\n"
     "comma, and their columns: (elements, starts, times, codes, names, in_order), the\n"
     "three columns as native int64 bytes, codes indexing names (the exchanges' bytes,\n"
     "in the order first seen); None for anything else."},
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
