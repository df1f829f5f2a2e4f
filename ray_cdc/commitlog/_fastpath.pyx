# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, infer_types=False, embedsignature=False
"""The compiled kernel of the Arrow fast path: commitlog sections straight into Arrow buffers.

`Kernel.run(data, off, base, skip_until, segment_id)` walks the mutation entries of one section
(format doc §6: size, crc1, body, crc2, both CRCs checked in C) and decodes each body (§7–§13) into
the `ColumnStore` of its table's `TableBatchBuilder`: growable C buffers in Arrow layout per column
(validity bitmap, values, offsets), plus the metadata columns (op codes, writetime, ttl, expiry,
segment, position, present-column slots). No Python object is made per entry, row or cell;
`TableBatchBuilder.finish()` turns the buffers into Arrow arrays with `pa.Array.from_buffers`.

`run` stops, returning where it stopped, at the first entry it does not take: damaged framing (a
CRC mismatch, a size below 10, padding, an entry running past the section), and any mutation the
kernel declines. The caller's Python loop (segment.py) handles that one entry, with every typed
error and skip rule, and calls `run` again after it. `run` also stops right after an entry that
fills a builder (max_rows / max_bytes), so batches close at the same entry as on the Python path.

The kernel takes the common case only: every update belongs to a table with a `TablePlan`, and
has no partition deletion, no static row, no range tombstone marker, no complex (non-frozen
collection or UDT) and no counter column in its header. For anything else, or for input it
cannot prove well-formed, it declines the mutation having appended nothing (the whole mutation is
parsed into C scratch arrays first; nothing is appended before the last byte checks out), and the
Python path decodes it. Rows the Python path adds to a builder are moved into its store
(`ColumnStore.absorb`) before the kernel appends to it again, so the row order is the log order;
a store can always be turned back into the Python lists the Python path fills (`drain`), which is
the fallback for anything `finish()` cannot build from the buffers, and what the tests compare.

Every read is bounds-checked against the body length by hand (the module is compiled with Cython's
own index checks off: no Python-level indexing of the body happens here).

The module also keeps the list-based column builders `TableBatchBuilder.finish()` uses for batches
filled by the Python path only (`fixed_column`, `variable_column`, `int_column`, `string_column`,
`present_column`): the same results as the numpy code in arrow_batches.py.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact, PyLong_FromLong, PyLong_FromLongLong
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_CheckExact
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #define TIMESTAMP_EPOCH 1442880000000000LL
    #define DELETION_TIME_EPOCH 1442880000
    #define NO_DELETION_TIME 0x7FFFFFFF
    #define P_IS_EMPTY 0x01
    #define P_HAS_PARTITION_DELETION 0x04
    #define P_HAS_STATIC_ROW 0x08
    #define P_HAS_ROW_ESTIMATE 0x10
    #define END_OF_PARTITION 0x01
    #define IS_MARKER 0x02
    #define HAS_TIMESTAMP 0x04
    #define HAS_TTL 0x08
    #define HAS_DELETION 0x10
    #define HAS_ALL_COLUMNS 0x20
    #define EXTENSION_FLAG 0x80
    #define CELL_IS_DELETED 0x01
    #define CELL_IS_EXPIRING 0x02
    #define CELL_HAS_EMPTY_VALUE 0x04
    #define CELL_USE_ROW_TIMESTAMP 0x08
    #define CELL_USE_ROW_TTL 0x10
    #define V_NONE (-1)
    #define V_PK (-2)
    #define PRES_ALL 0
    #define PRES_MASK 1
    #define PRES_LIST 2
    #define MAX_CACHED_HEADERS 256
    #define SCRATCH_KEEP (1 << 20)
    #define MIN_ENTRY_SIZE 10
    #define ENTRY_OVERHEAD 12
    #define RCDC_INT64_MAX ((int64_t)0x7FFFFFFFFFFFFFFFLL)
    #define RCDC_INT64_MIN ((int64_t)(-0x7FFFFFFFFFFFFFFFLL - 1))
    static const uint8_t rcdc_extra[256] = {
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
        1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
        2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
        3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3, 4,4,4,4,4,4,4,4,5,5,5,5,6,6,7,8
    };
    /* big-endian `width`-byte number at src -> native order at dst (no alignment assumed) */
    static inline void rcdc_swap(uint8_t* dst, const uint8_t* src, Py_ssize_t width) {
        if (width == 8) { uint64_t x; memcpy(&x, src, 8); x = __builtin_bswap64(x); memcpy(dst, &x, 8); }
        else if (width == 4) { uint32_t x; memcpy(&x, src, 4); x = __builtin_bswap32(x); memcpy(dst, &x, 4); }
        else { uint16_t x; memcpy(&x, src, 2); x = __builtin_bswap16(x); memcpy(dst, &x, 2); }
    }
    static inline uint32_t rcdc_be32(const uint8_t* p) {
        uint32_t x; memcpy(&x, p, 4); return __builtin_bswap32(x);
    }
    /* CRC-32 (IEEE 802.3, reflected, what zlib.crc32 and java.util.zip.CRC32 compute), slicing by 8:
       a table-driven version in the module itself, so the kernel needs no zlib headers or library
       at build time. The tables are filled once, at import (rcdc_crc_init). */
    static uint32_t rcdc_crc_table[8][256];
    static void rcdc_crc_init(void) {
        uint32_t i, c; int k, t;
        for (i = 0; i < 256; i++) {
            c = i;
            for (k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
            rcdc_crc_table[0][i] = c;
        }
        for (i = 0; i < 256; i++) {
            c = rcdc_crc_table[0][i];
            for (t = 1; t < 8; t++) { c = rcdc_crc_table[0][c & 0xFF] ^ (c >> 8); rcdc_crc_table[t][i] = c; }
        }
    }
    static uint32_t rcdc_crc32(uint32_t crc, const uint8_t* p, Py_ssize_t n) {
        crc = ~crc;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint32_t one, two;
            memcpy(&one, p, 4); memcpy(&two, p + 4, 4);
            one ^= crc;
            crc = rcdc_crc_table[7][one & 0xFF] ^ rcdc_crc_table[6][(one >> 8) & 0xFF] ^
                  rcdc_crc_table[5][(one >> 16) & 0xFF] ^ rcdc_crc_table[4][one >> 24] ^
                  rcdc_crc_table[3][two & 0xFF] ^ rcdc_crc_table[2][(two >> 8) & 0xFF] ^
                  rcdc_crc_table[1][(two >> 16) & 0xFF] ^ rcdc_crc_table[0][two >> 24];
            p += 8; n -= 8;
        }
    #endif
        while (n-- > 0) crc = rcdc_crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
    """
    int64_t TIMESTAMP_EPOCH
    int DELETION_TIME_EPOCH
    int NO_DELETION_TIME
    int P_IS_EMPTY
    int P_HAS_PARTITION_DELETION
    int P_HAS_STATIC_ROW
    int P_HAS_ROW_ESTIMATE
    int END_OF_PARTITION
    int IS_MARKER
    int HAS_TIMESTAMP
    int HAS_TTL
    int HAS_DELETION
    int HAS_ALL_COLUMNS
    int EXTENSION_FLAG
    int CELL_IS_DELETED
    int CELL_IS_EXPIRING
    int CELL_HAS_EMPTY_VALUE
    int CELL_USE_ROW_TIMESTAMP
    int CELL_USE_ROW_TTL
    int V_NONE
    int V_PK
    int PRES_ALL
    int PRES_MASK
    int PRES_LIST
    int MAX_CACHED_HEADERS
    int SCRATCH_KEEP
    int MIN_ENTRY_SIZE
    int ENTRY_OVERHEAD
    int64_t RCDC_INT64_MAX
    int64_t RCDC_INT64_MIN
    const uint8_t rcdc_extra[256]
    void rcdc_swap(uint8_t* dst, const uint8_t* src, Py_ssize_t width) nogil
    uint32_t rcdc_be32(const uint8_t* p) nogil
    void rcdc_crc_init()
    uint32_t rcdc_crc32(uint32_t crc, const uint8_t* p, Py_ssize_t n) nogil

rcdc_crc_init()


def crc32(data, uint32_t value=0):
    """The kernel's CRC-32 of a bytes-like object (as zlib.crc32(data, value)); for the tests."""
    cdef Py_buffer view
    cdef uint32_t out
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        out = rcdc_crc32(value, <const uint8_t*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return out


# the op codes of the store (`_op` strings, in this order; arrow_batches.py has the same list)
OPS = ("insert", "update", "delete", "partition_delete", "range_delete")
cdef tuple OP_NAMES = OPS
cdef list OP_UTF8 = [name.encode() for name in OPS]
cdef dict OP_CODE = {name: i for i, name in enumerate(OPS)}

# --- reading primitives: each returns 0, or -1 when the input does not check out ----------------------


cdef struct Cur:
    const uint8_t* b
    Py_ssize_t n
    Py_ssize_t p


cdef inline int rd_u8(Cur* c, uint8_t* out) noexcept nogil:
    if c.p >= c.n:
        return -1
    out[0] = c.b[c.p]
    c.p += 1
    return 0


cdef inline int rd_uvint(Cur* c, uint64_t* out) noexcept nogil:
    """An unsigned vint as 64 bits, exactly like primitives.read_uvint."""
    cdef Py_ssize_t p = c.p
    cdef uint8_t b0
    cdef int extra, i
    cdef uint64_t v
    if p >= c.n:
        return -1
    b0 = c.b[p]
    if b0 < 0x80:
        out[0] = b0
        c.p = p + 1
        return 0
    extra = rcdc_extra[b0]
    if extra > c.n - p - 1:
        return -1
    v = (b0 & (0xFF >> extra)) if extra < 8 else 0
    for i in range(1, extra + 1):
        v = (v << 8) | c.b[p + i]
    out[0] = v
    c.p = p + 1 + extra
    return 0


cdef inline int rd_len(Cur* c, Py_ssize_t* out) noexcept nogil:
    """A vint length that must fit in what is left of the body."""
    cdef uint64_t v
    if rd_uvint(c, &v) < 0:
        return -1
    if v > <uint64_t>(c.n - c.p):
        return -1
    out[0] = <Py_ssize_t>v
    return 0


cdef inline int rd_ts(Cur* c, int64_t base, int64_t* out) noexcept nogil:
    """A timestamp delta (mutation_decoder._ts): a 1-byte delta is added without wrapping there, so
    a sum past 2^63-1 (a Python int the batch could not hold) is declined; longer ones wrap."""
    cdef uint64_t v
    cdef uint8_t b0
    if c.p >= c.n:
        return -1
    b0 = c.b[c.p]
    if b0 < 0x80:
        if base > RCDC_INT64_MAX - <int64_t>b0:
            return -1
        out[0] = base + <int64_t>b0
        c.p += 1
        return 0
    if rd_uvint(c, &v) < 0:
        return -1
    out[0] = <int64_t>(<uint64_t>base + v)
    return 0


cdef inline int rd_i32(Cur* c, int32_t base, int32_t* out) noexcept nogil:
    """A vint32 delta (mutation_decoder._i32): must be an int or a sign-extended negative int; the
    sum wraps like Java int arithmetic."""
    cdef uint64_t d
    if rd_uvint(c, &d) < 0:
        return -1
    if d > 0x7FFFFFFFULL and d < 0xFFFFFFFF80000000ULL:
        return -1
    out[0] = <int32_t><uint32_t>(<uint64_t><int64_t>base + d)
    return 0


cdef inline int rd_value(Cur* c, int width, Py_ssize_t* off, Py_ssize_t* ln) noexcept nogil:
    """A value: `width` bytes when fixed (width >= 0), else vbytes."""
    cdef Py_ssize_t n
    if width < 0:
        if rd_len(c, &n) < 0:
            return -1
    else:
        n = width
        if n > c.n - c.p:
            return -1
    off[0] = c.p
    ln[0] = n
    c.p += n
    return 0


# --- scratch records ------------------------------------------------------------------------------


cdef struct Val:
    Py_ssize_t off
    Py_ssize_t len  # >= 0: bytes at body[off:off+len]; V_NONE: None; V_PK: pk component `off`


cdef struct RowRec:
    Py_ssize_t upd
    Py_ssize_t val_start
    Py_ssize_t pres_start  # PRES_LIST: first index in the present-index scratch
    Py_ssize_t pres_n
    uint64_t mask  # PRES_MASK: bit i = header column i present
    int64_t wt
    int32_t ttl
    int32_t exp
    int pres_kind
    int op  # 0 insert, 1 update, 2 delete
    int has_wt
    int has_ttl


cdef struct UpdRec:
    PyObject* plan  # borrowed: held by Kernel.plans for the duration of add()
    PyObject* hdr  # borrowed: held by the plan's header cache (NULL for an empty update)
    Py_ssize_t key_off
    Py_ssize_t key_len
    Py_ssize_t pk_start  # first pk component in the pk scratch (composite keys)
    int64_t nbytes


# --- growable buffers and the column store ---------------------------------------------------------

cdef extern from *:
    """
    static const char* const rcdc_op_name[5] = {"insert", "update", "delete", "partition_delete", "range_delete"};
    static const Py_ssize_t rcdc_op_len[5] = {6, 6, 6, 16, 12};
    """
    const char* rcdc_op_name[5]
    const Py_ssize_t rcdc_op_len[5]


cdef struct Buf:
    char* p
    Py_ssize_t len
    Py_ssize_t cap


cdef int buf_reserve(Buf* b, Py_ssize_t need) except -1:
    """Room for `need` bytes in all; the contents are kept, new bytes are not initialised."""
    cdef Py_ssize_t cap
    cdef char* mem
    if need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 256
    while cap < need:
        cap *= 2
    mem = <char*>realloc(b.p, cap)
    if mem == NULL:
        raise MemoryError()
    b.p = mem
    b.cap = cap
    return 0


cdef int buf_reserve_zeroed(Buf* b, Py_ssize_t need) except -1:
    """As buf_reserve, with the new bytes zeroed (validity bitmaps: only valid bits are ever set)."""
    cdef Py_ssize_t old = b.cap
    buf_reserve(b, need)
    if b.cap > old:
        memset(b.p + old, 0, b.cap - old)
    return 0


cdef inline void set_bit(Buf* b, Py_ssize_t i) noexcept nogil:
    b.p[i >> 3] = <char>(<uint8_t>b.p[i >> 3] | <uint8_t>(1 << (i & 7)))


cdef inline bint get_bit(Buf* b, Py_ssize_t i) noexcept nogil:
    return (<uint8_t>b.p[i >> 3] >> (i & 7)) & 1


cdef struct Col:
    Buf data
    Buf offs  # VAR mode: int64 offsets, rows + 1 of them
    Buf valid  # validity bitmap
    Py_ssize_t nulls
    Py_ssize_t width  # >= 0: FIXED mode, every value exactly `width` bytes (nulls zero-filled); -1: VAR
    # FIXED mode keeps data.cap >= row_cap * width (put() writes there unchecked): grow_rows and
    # clear() (back to FIXED after a batch in VAR mode) make sure of it
    Py_ssize_t type_width  # the column type's fixed width, -1 when it has none: the mode clear() resets to


cdef class ColumnStore:
    """One table's pending rows as Arrow-layout C buffers, owned by its TableBatchBuilder.

    Value columns keep the raw value bytes of the commitlog: a fixed-width column (FIXED mode)
    one `width`-byte big-endian value per row, swapped to native order only when the batch is
    made; every other column (VAR mode) data + int64 offsets. A fixed-width column that gets a
    value of another length (an empty value, a damaged key) turns into VAR mode, and `finish()`
    then decodes it value by value, exactly like the list path does. Metadata columns are kept in
    their final form: op codes, int64 writetimes, int32 ttls, int64 expiries/segments/positions,
    and per row the slots of the columns it writes (`_present`).
    """

    cdef Col* cols
    cdef Py_ssize_t n_cols
    cdef Py_ssize_t rows
    cdef Py_ssize_t row_cap
    cdef int64_t nbytes_c
    cdef Buf op
    cdef Buf wt
    cdef Buf wt_valid
    cdef Buf ttl
    cdef Buf ttl_valid
    cdef Buf exp
    cdef Buf exp_valid
    cdef Buf seg
    cdef Buf pos
    cdef Buf pres_off  # int64 per row + 1: where the row's slots start in `pres`
    cdef Buf pres  # int32 slots
    cdef Py_ssize_t wt_nulls, ttl_nulls, exp_nulls
    cdef Py_ssize_t* name_len
    cdef bytes names_blob
    cdef Py_ssize_t* name_off
    cdef readonly list names  # the column name of each slot
    cdef dict slot_of
    cdef readonly bint broken  # the builder has list rows absorb() cannot take: the kernel stays off

    def __cinit__(self):
        self.cols = NULL
        self.name_len = NULL
        self.name_off = NULL

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.cols != NULL:
            for i in range(self.n_cols):
                free(self.cols[i].data.p)
                free(self.cols[i].offs.p)
                free(self.cols[i].valid.p)
            free(self.cols)
        free(self.op.p)
        free(self.wt.p)
        free(self.wt_valid.p)
        free(self.ttl.p)
        free(self.ttl_valid.p)
        free(self.exp.p)
        free(self.exp_valid.p)
        free(self.seg.p)
        free(self.pos.p)
        free(self.pres_off.p)
        free(self.pres.p)
        free(self.name_len)
        free(self.name_off)

    def __init__(self, builder):
        cdef Py_ssize_t i, w, total = 0
        columns = list(builder.columns)
        self.n_cols = len(columns)
        self.cols = <Col*>malloc(sizeof(Col) * (self.n_cols + 1))
        self.name_len = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.n_cols + 1))
        self.name_off = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.n_cols + 1))
        if self.cols == NULL or self.name_len == NULL or self.name_off == NULL:
            raise MemoryError()
        memset(self.cols, 0, sizeof(Col) * (self.n_cols + 1))
        self.names = [c.name for c in columns]
        encoded = [name.encode("utf-8") for name in self.names]
        for i in range(self.n_cols):
            typ = columns[i].type
            width = typ.fixed_width
            w = -1 if width is None or typ.is_multicell else <Py_ssize_t>width
            self.cols[i].type_width = w
            self.cols[i].width = w
            self.name_off[i] = total
            self.name_len[i] = len(encoded[i])
            total += self.name_len[i]
        self.names_blob = b"".join(encoded)
        self.slot_of = {name: i for i, name in enumerate(self.names)}
        self.grow_rows(64)
        self.clear()

    def __len__(self):
        return self.rows

    @property
    def nbytes(self):
        """Value bytes of the rows (the builder's `max_bytes` measure)."""
        return self.nbytes_c

    def width(self, Py_ssize_t slot):
        """The slot's mode now: its fixed width (FIXED), or -1 (VAR)."""
        return self.col(slot).width

    cdef Col* col(self, Py_ssize_t slot) except NULL:
        if slot < 0 or slot >= self.n_cols:
            raise IndexError(f"no column slot {slot}")
        return &self.cols[slot]

    def clear(self):
        """Forget every row; the buffers are kept for the next batch."""
        cdef Py_ssize_t i, bits = (self.rows + 7) // 8
        cdef Col* c
        for i in range(self.n_cols):
            c = &self.cols[i]
            memset(c.valid.p, 0, bits)
            c.nulls = 0
            c.width = c.type_width
            c.data.len = 0
            if c.width >= 0:
                buf_reserve(&c.data, self.row_cap * c.width + 8)  # rows may have grown while in VAR mode
            else:
                buf_reserve(&c.offs, (self.row_cap + 1) * 8)
                (<int64_t*>c.offs.p)[0] = 0
        memset(self.wt_valid.p, 0, bits)
        memset(self.ttl_valid.p, 0, bits)
        memset(self.exp_valid.p, 0, bits)
        self.wt_nulls = self.ttl_nulls = self.exp_nulls = 0
        self.pres.len = 0
        (<int64_t*>self.pres_off.p)[0] = 0
        self.rows = 0
        self.nbytes_c = 0
        self.broken = False

    # --- appending (the kernel's emit and absorb) ---------------------------------------------------

    cdef int grow_rows(self, Py_ssize_t need) except -1:
        """Room for `need` rows in every per-row buffer (value data of VAR columns grows by itself)."""
        cdef Py_ssize_t cap = self.row_cap * 2 if self.row_cap else 64, i, bits
        cdef Col* c
        while cap < need:
            cap *= 2
        bits = (cap + 7) // 8
        for i in range(self.n_cols):
            c = &self.cols[i]
            buf_reserve_zeroed(&c.valid, bits)
            if c.width >= 0:
                buf_reserve(&c.data, cap * c.width + 8)
            else:
                buf_reserve(&c.offs, (cap + 1) * 8)
        buf_reserve(&self.op, cap)
        buf_reserve(&self.wt, cap * 8)
        buf_reserve_zeroed(&self.wt_valid, bits)
        buf_reserve(&self.ttl, cap * 4)
        buf_reserve_zeroed(&self.ttl_valid, bits)
        buf_reserve(&self.exp, cap * 8)
        buf_reserve_zeroed(&self.exp_valid, bits)
        buf_reserve(&self.seg, cap * 8)
        buf_reserve(&self.pos, cap * 8)
        buf_reserve(&self.pres_off, (cap + 1) * 8)
        self.row_cap = cap
        return 0

    cdef inline int begin_row(self, Py_ssize_t n_present) except -1:
        """Room for one more row, with up to `n_present` present slots."""
        if self.rows >= self.row_cap:
            self.grow_rows(self.rows + 1)
        if self.pres.len + n_present * 4 > self.pres.cap:
            buf_reserve(&self.pres, self.pres.len + n_present * 4)
        return 0

    cdef int to_var(self, Col* c) except -1:
        """FIXED -> VAR mode: the values so far keep their bytes (nulls: zero-filled, never read)."""
        cdef Py_ssize_t k, w = c.width
        cdef int64_t* offs
        buf_reserve(&c.offs, (self.row_cap + 1) * 8)
        offs = <int64_t*>c.offs.p
        for k in range(self.rows + 1):
            offs[k] = k * w
        c.data.len = self.rows * w
        c.width = -1
        return 0

    cdef inline int put(self, Py_ssize_t s, const char* p, Py_ssize_t ln) except -1:
        """The value of slot `s` in the current row: `ln` bytes at `p`."""
        cdef Col* c = &self.cols[s]
        cdef Py_ssize_t r = self.rows
        if c.width >= 0:
            if ln == c.width:
                memcpy(c.data.p + r * ln, p, ln)
                set_bit(&c.valid, r)
                return 0
            self.to_var(c)
        if c.data.len + ln > c.data.cap:
            buf_reserve(&c.data, c.data.len + ln)
        memcpy(c.data.p + c.data.len, p, ln)
        c.data.len += ln
        (<int64_t*>c.offs.p)[r + 1] = c.data.len
        set_bit(&c.valid, r)
        return 0

    cdef inline void put_null(self, Py_ssize_t s) noexcept:
        cdef Col* c = &self.cols[s]
        c.nulls += 1
        if c.width >= 0:
            memset(c.data.p + self.rows * c.width, 0, c.width)
        else:
            (<int64_t*>c.offs.p)[self.rows + 1] = c.data.len

    cdef inline void add_present(self, int slot) noexcept:
        (<int32_t*>(self.pres.p + self.pres.len))[0] = slot
        self.pres.len += 4

    cdef inline void end_row(self, int op, bint has_wt, int64_t wt, bint has_ttl, int32_t ttl, bint has_exp,
                             int64_t exp, int64_t seg, int64_t pos) noexcept:
        cdef Py_ssize_t r = self.rows
        self.op.p[r] = <char>op
        if has_wt:
            (<int64_t*>self.wt.p)[r] = wt
            set_bit(&self.wt_valid, r)
        else:
            (<int64_t*>self.wt.p)[r] = 0
            self.wt_nulls += 1
        if has_ttl:
            (<int32_t*>self.ttl.p)[r] = ttl
            set_bit(&self.ttl_valid, r)
        else:
            (<int32_t*>self.ttl.p)[r] = 0
            self.ttl_nulls += 1
        if has_exp:
            (<int64_t*>self.exp.p)[r] = exp
            set_bit(&self.exp_valid, r)
        else:
            (<int64_t*>self.exp.p)[r] = 0
            self.exp_nulls += 1
        (<int64_t*>self.seg.p)[r] = seg
        (<int64_t*>self.pos.p)[r] = pos
        (<int64_t*>self.pres_off.p)[r + 1] = self.pres.len // 4
        self.rows = r + 1

    # --- rows of the Python path ---------------------------------------------------------------------

    def absorb(self, builder):
        """Move the rows the Python path appended to the builder's lists into the buffers (then
        the lists are empty); False, with nothing moved and the store marked `broken`, when a
        value has no place here (an int out of range, a value that is not bytes): the lists then
        stay the batch's fallback (see `drain`)."""
        return self.absorb_lists(builder)

    cdef bint absorb_lists(self, builder) except -1:
        cdef list raw = builder.raw, ops = builder.op, wts = builder.writetime, ttls = builder.ttl
        cdef list exps = builder.expires, segs = builder.segment, poss = builder.position, pres = builder.present
        cdef Py_ssize_t m = PyList_GET_SIZE(ops), r, s
        cdef list column
        cdef object item, names
        cdef long long wt, ttl, exp, seg, pos
        cdef bint has_wt, has_ttl, has_exp
        if m == 0:
            return True
        if self.broken or PyList_GET_SIZE(raw) != self.n_cols:
            self.broken = True
            return False
        if not self.lists_fit(raw, ops, wts, ttls, exps, segs, poss, pres, m):
            self.broken = True
            return False
        for r in range(m):
            names = <object>PyList_GET_ITEM(pres, r)
            self.begin_row(len(names))
            for s in range(self.n_cols):
                item = <object>PyList_GET_ITEM(<list>PyList_GET_ITEM(raw, s), r)
                if item is None:
                    self.put_null(s)
                else:
                    self.put(s, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item))
            for name in names:
                self.add_present(<int>self.slot_of[name])
            has_wt, wt = _opt_int(<object>PyList_GET_ITEM(wts, r))
            has_ttl, ttl = _opt_int(<object>PyList_GET_ITEM(ttls, r))
            has_exp, exp = _opt_int(<object>PyList_GET_ITEM(exps, r))
            _, seg = _opt_int(<object>PyList_GET_ITEM(segs, r))
            _, pos = _opt_int(<object>PyList_GET_ITEM(poss, r))
            self.end_row(<int>OP_CODE[<object>PyList_GET_ITEM(ops, r)], has_wt, wt, has_ttl, <int32_t>ttl,
                         has_exp, exp, seg, pos)
        self.nbytes_c += builder._nbytes
        builder._nbytes = 0
        for column in raw:
            del column[:]
        for column in (ops, wts, ttls, exps, segs, poss, pres):
            del column[:]
        return True

    cdef bint lists_fit(self, list raw, list ops, list wts, list ttls, list exps, list segs, list poss,
                       list pres, Py_ssize_t m) except -1:
        """Whether every list row has a place in the buffers (checked before anything moves)."""
        cdef Py_ssize_t r
        cdef list column
        cdef object item
        for column in raw:
            if PyList_GET_SIZE(column) != m:
                return False
            for r in range(m):
                item = <object>PyList_GET_ITEM(column, r)
                if item is not None and not PyBytes_CheckExact(item):
                    return False
        for column in (wts, ttls, exps, segs, poss, pres):
            if PyList_GET_SIZE(column) != m:
                return False
        for r in range(m):
            item = <object>PyList_GET_ITEM(ops, r)
            if not PyUnicode_CheckExact(item) or item not in OP_CODE:
                return False
            if not (_fits(<object>PyList_GET_ITEM(wts, r), 64, True) and _fits(<object>PyList_GET_ITEM(ttls, r), 32, True)
                    and _fits(<object>PyList_GET_ITEM(exps, r), 64, True)
                    and _fits(<object>PyList_GET_ITEM(segs, r), 64, False)
                    and _fits(<object>PyList_GET_ITEM(poss, r), 64, False)):
                return False
            item = <object>PyList_GET_ITEM(pres, r)
            if type(item) is not list and type(item) is not tuple:
                return False
            for name in item:
                if not PyUnicode_CheckExact(name) or name not in self.slot_of:
                    return False
        return True

    def drain(self, builder):
        """Put the rows back into the builder's lists, in front of any list rows, as the Python path
        would have appended them (bytes values, str ops, ints), and forget them here."""
        cdef Py_ssize_t n = self.rows, r, s, k
        cdef int64_t* po = <int64_t*>self.pres_off.p
        cdef int32_t* ps = <int32_t*>self.pres.p
        cdef list names = self.names
        raw = builder.raw
        for s in range(self.n_cols):
            (<list>raw[s])[0:0] = self.values(s)
        builder.op[0:0] = [OP_NAMES[<uint8_t>self.op.p[r]] for r in range(n)]
        builder.writetime[0:0] = self.int_values(0)
        builder.ttl[0:0] = self.int_values(1)
        builder.expires[0:0] = self.int_values(2)
        builder.segment[0:0] = self.int_values(3)
        builder.position[0:0] = self.int_values(4)
        builder.present[0:0] = [[names[ps[k]] for k in range(po[r], po[r + 1])] for r in range(n)]
        builder._nbytes = builder._nbytes + self.nbytes_c
        self.clear()

    # --- making the batch: buffers for pa.Array.from_buffers -----------------------------------------

    def values(self, Py_ssize_t slot):
        """One column as the Python path's raw list: bytes per value, None for nulls."""
        cdef Col* c = self.col(slot)
        cdef Py_ssize_t i, w = c.width
        cdef int64_t* offs = <int64_t*>c.offs.p
        cdef list out = []
        for i in range(self.rows):
            if not get_bit(&c.valid, i):
                out.append(None)
            elif w >= 0:
                out.append(PyBytes_FromStringAndSize(c.data.p + i * w, w))
            else:
                out.append(PyBytes_FromStringAndSize(c.data.p + offs[i], offs[i + 1] - offs[i]))
        return out

    def fixed_column(self, Py_ssize_t slot, int kind):
        """A FIXED column -> (validity or None, data, null count), as the list-based
        `fixed_column(raw, width, kind)` gives it; None when the column is in VAR mode."""
        cdef Col* c = self.col(slot)
        cdef Py_ssize_t n = self.rows, w = c.width, i, nbits = (n + 7) // 8
        cdef uint8_t* out
        cdef const uint8_t* src = <const uint8_t*>c.data.p
        cdef bytes data
        if w <= 0 or (kind == 2 and w != 1) or (kind == 1 and w != 2 and w != 4 and w != 8):
            return None
        validity = PyBytes_FromStringAndSize(c.valid.p, nbits) if c.nulls else None
        if kind == 2:  # boolean: any non-zero byte is true (nulls are zero-filled)
            data = PyBytes_FromStringAndSize(NULL, nbits)
            out = <uint8_t*>PyBytes_AS_STRING(data)
            memset(out, 0, nbits)
            for i in range(n):
                if src[i]:
                    out[i >> 3] |= <uint8_t>(1 << (i & 7))
        elif kind == 1:  # big-endian numbers to native order
            data = PyBytes_FromStringAndSize(NULL, n * w)
            out = <uint8_t*>PyBytes_AS_STRING(data)
            if w == 8:
                for i in range(n):
                    rcdc_swap(out + i * 8, src + i * 8, 8)
            elif w == 4:
                for i in range(n):
                    rcdc_swap(out + i * 4, src + i * 4, 4)
            else:
                for i in range(n):
                    rcdc_swap(out + i * 2, src + i * 2, 2)
        else:
            data = PyBytes_FromStringAndSize(c.data.p, n * w)
        return validity, data, c.nulls

    def variable_column(self, Py_ssize_t slot):
        """A VAR column -> (validity or None, offsets, data, null count, large), as the list-based
        `variable_column(raw)` gives it; None when the column is in FIXED mode."""
        cdef Col* c = self.col(slot)
        cdef Py_ssize_t n = self.rows, i
        cdef int64_t* src = <int64_t*>c.offs.p
        cdef int32_t* off32
        cdef bint large
        cdef bytes offsets
        if c.width >= 0:
            return None
        large = c.data.len > 0x7FFFFFFF
        if large:
            offsets = PyBytes_FromStringAndSize(c.offs.p, (n + 1) * 8)
        else:
            offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)
            off32 = <int32_t*>PyBytes_AS_STRING(offsets)
            for i in range(n + 1):
                off32[i] = <int32_t>src[i]
        validity = PyBytes_FromStringAndSize(c.valid.p, (n + 7) // 8) if c.nulls else None
        return validity, offsets, PyBytes_FromStringAndSize(c.data.p, c.data.len), c.nulls, large

    cdef list int_values(self, int which):
        cdef Py_ssize_t r
        cdef int64_t* src
        cdef list out = []
        if which == 0:
            for r in range(self.rows):
                out.append(PyLong_FromLongLong((<int64_t*>self.wt.p)[r]) if get_bit(&self.wt_valid, r) else None)
        elif which == 1:
            for r in range(self.rows):
                out.append(PyLong_FromLong((<int32_t*>self.ttl.p)[r]) if get_bit(&self.ttl_valid, r) else None)
        elif which == 2:
            for r in range(self.rows):
                out.append(PyLong_FromLongLong((<int64_t*>self.exp.p)[r]) if get_bit(&self.exp_valid, r) else None)
        else:
            src = <int64_t*>(self.seg.p if which == 3 else self.pos.p)
            for r in range(self.rows):
                out.append(PyLong_FromLongLong(src[r]))
        return out

    def int_column(self, int which):
        """A metadata column -> (validity or None, little-endian data, null count): 0 `_writetime`
        (int64), 1 `_ttl` (int32), 2 `_expires_at` (int64 seconds), 3 `_segment_id`, 4 `_position`."""
        cdef Py_ssize_t n = self.rows, nbits = (n + 7) // 8
        if which == 0:
            return (PyBytes_FromStringAndSize(self.wt_valid.p, nbits) if self.wt_nulls else None,
                    PyBytes_FromStringAndSize(self.wt.p, n * 8), self.wt_nulls)
        if which == 1:
            return (PyBytes_FromStringAndSize(self.ttl_valid.p, nbits) if self.ttl_nulls else None,
                    PyBytes_FromStringAndSize(self.ttl.p, n * 4), self.ttl_nulls)
        if which == 2:
            return (PyBytes_FromStringAndSize(self.exp_valid.p, nbits) if self.exp_nulls else None,
                    PyBytes_FromStringAndSize(self.exp.p, n * 8), self.exp_nulls)
        if which == 3:
            return None, PyBytes_FromStringAndSize(self.seg.p, n * 8), 0
        if which == 4:
            return None, PyBytes_FromStringAndSize(self.pos.p, n * 8), 0
        raise ValueError(f"no metadata column {which}")

    def op_column(self):
        """`_op` -> (int32 offsets, UTF-8 data) of a string array without nulls."""
        cdef Py_ssize_t n = self.rows, r, total = 0
        cdef uint8_t code
        cdef int32_t* off
        cdef char* out
        cdef bytes offsets, data
        for r in range(n):
            total += rcdc_op_len[<uint8_t>self.op.p[r]]
        offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)
        data = PyBytes_FromStringAndSize(NULL, total)
        off = <int32_t*>PyBytes_AS_STRING(offsets)
        out = PyBytes_AS_STRING(data)
        total = 0
        for r in range(n):
            off[r] = <int32_t>total
            code = <uint8_t>self.op.p[r]
            memcpy(out + total, rcdc_op_name[code], rcdc_op_len[code])
            total += rcdc_op_len[code]
        off[n] = <int32_t>total
        return offsets, data

    def present_column(self):
        """`_present` -> (int32 list offsets, int32 string offsets, UTF-8 data) of a list<string>
        array without nulls; None when it needs 64-bit offsets."""
        cdef Py_ssize_t n = self.rows, count = self.pres.len // 4, k, total = 0, ln
        cdef int64_t* po = <int64_t*>self.pres_off.p
        cdef int32_t* ps = <int32_t*>self.pres.p
        cdef int32_t* loff
        cdef int32_t* soff
        cdef char* out
        cdef const char* blob = PyBytes_AS_STRING(self.names_blob)
        cdef Py_ssize_t r
        cdef bytes list_offsets, str_offsets, data
        for k in range(count):
            total += self.name_len[ps[k]]
        if count > 0x7FFFFFFF or total > 0x7FFFFFFF:
            return None
        list_offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)
        loff = <int32_t*>PyBytes_AS_STRING(list_offsets)
        for r in range(n + 1):
            loff[r] = <int32_t>po[r]
        str_offsets = PyBytes_FromStringAndSize(NULL, (count + 1) * 4)
        data = PyBytes_FromStringAndSize(NULL, total)
        soff = <int32_t*>PyBytes_AS_STRING(str_offsets)
        out = PyBytes_AS_STRING(data)
        total = 0
        for k in range(count):
            soff[k] = <int32_t>total
            ln = self.name_len[ps[k]]
            memcpy(out + total, blob + self.name_off[ps[k]], ln)
            total += ln
        soff[count] = <int32_t>total
        return list_offsets, str_offsets, data


cdef bint _fits(object item, int bits, bint nullable) except -1:
    """An int of that many bits (or None when nullable): what the store's int columns hold."""
    cdef long long v
    cdef int overflow = 0
    if item is None:
        return nullable
    if not PyLong_CheckExact(item):
        return False
    v = PyLong_AsLongLongAndOverflow(item, &overflow)
    if overflow:
        return False
    return bits == 64 or -0x80000000 <= v <= 0x7FFFFFFF


cdef inline tuple _opt_int(object item):
    if item is None:
        return False, 0
    return True, <long long>item

cdef class HeaderInfo:
    """One regular-column header (raw bytes) of a table, resolved to slots and widths once."""

    cdef bint ok
    cdef Py_ssize_t n
    cdef int* slot  # builder slot per header column; -1 = a dropped column
    cdef int* width  # fixed width per header column; -1 = vbytes
    cdef bytes raw
    cdef uint64_t all_mask

    def __cinit__(self):
        self.slot = NULL
        self.width = NULL

    def __dealloc__(self):
        free(self.slot)
        free(self.width)


cdef class TablePlan:
    """What the kernel needs of one table: its builder's column store, slots, clustering widths,
    and a cache of the column headers seen (most mutations of a table repeat one header byte for
    byte)."""

    cdef readonly object builder
    cdef readonly object table
    cdef readonly bytes table_id
    cdef readonly ColumnStore store
    cdef list pending  # the builder's `op` list: rows of the Python path not yet in the store
    cdef Py_ssize_t n_slots
    cdef Py_ssize_t n_pk
    cdef Py_ssize_t n_ck
    cdef int* ck_width
    cdef dict slot_of
    cdef list columns
    cdef HeaderInfo last_hdr
    cdef dict hdrs

    def __cinit__(self):
        self.ck_width = NULL

    def __dealloc__(self):
        free(self.ck_width)

    def __init__(self, builder):
        cdef Py_ssize_t i
        table = builder.table
        self.builder = builder
        self.table = table
        self.table_id = table.id.bytes
        self.columns = list(builder.columns)
        self.slot_of = builder.slot
        self.n_slots = len(self.columns)
        self.n_pk = builder.n_pk
        self.n_ck = builder.n_ck
        if self.n_pk < 1 or self.n_pk + self.n_ck > self.n_slots or len(builder.raw) != self.n_slots:
            raise ValueError("builder layout does not match its table")
        if type(builder.op) is not list:
            raise TypeError("builder.op must be a list")
        self.pending = builder.op
        store = builder.store
        if store is None:
            store = ColumnStore(builder)
            builder.store = store
        elif not isinstance(store, ColumnStore) or (<ColumnStore>store).n_cols != self.n_slots:
            raise ValueError("builder.store does not match its table")
        self.store = <ColumnStore>store
        widths = [c.type.fixed_width for c in table.clustering]
        if len(widths) != self.n_ck:
            raise ValueError("builder clustering does not match its table")
        self.ck_width = <int*>malloc(sizeof(int) * (self.n_ck + 1))
        if self.ck_width == NULL:
            raise MemoryError()
        for i in range(self.n_ck):
            self.ck_width[i] = -1 if widths[i] is None else <int>widths[i]
        self.last_hdr = None
        self.hdrs = {}

    cdef HeaderInfo build_header(self, bytes raw):
        """Resolve a header's names (a cache miss); `ok` is False when the kernel must decline it."""
        cdef HeaderInfo h = HeaderInfo.__new__(HeaderInfo)
        cdef Cur c
        cdef uint64_t count
        cdef Py_ssize_t ln, i
        h.raw = raw
        h.ok = False
        c.b = <const uint8_t*>PyBytes_AS_STRING(raw)
        c.n = PyBytes_GET_SIZE(raw)
        c.p = 0
        if rd_uvint(&c, &count) < 0 or count > <uint64_t>c.n:
            return h
        h.n = <Py_ssize_t>count
        h.slot = <int*>malloc(sizeof(int) * (h.n + 1))
        h.width = <int*>malloc(sizeof(int) * (h.n + 1))
        if h.slot == NULL or h.width == NULL:
            raise MemoryError()
        for i in range(h.n):
            if rd_len(&c, &ln) < 0:
                return h
            try:
                name = PyBytes_FromStringAndSize(<char*>c.b + c.p, ln).decode("utf-8")
            except UnicodeDecodeError:
                return h
            c.p += ln
            col = self.table.column(name)
            if col is None or col.is_complex or col.type.name == "counter":
                return h
            width = col.type.fixed_width
            h.width[i] = -1 if width is None else <int>width
            h.slot[i] = <int>self.slot_of.get(name, -1)
        if c.p != c.n:
            return h
        h.all_mask = ((<uint64_t>1) << h.n) - 1 if h.n < 64 else 0
        h.ok = True
        return h

    cdef HeaderInfo header(self, Cur* c):
        """The header at the cursor (moved past it), or None when it runs past the body."""
        cdef Py_ssize_t start = c.p, ln, i
        cdef HeaderInfo h = self.last_hdr
        cdef uint64_t count
        if h is not None:
            ln = PyBytes_GET_SIZE(h.raw)
            if ln <= c.n - start and memcmp(c.b + start, PyBytes_AS_STRING(h.raw), ln) == 0:
                c.p = start + ln
                return h
        if rd_uvint(c, &count) < 0 or count > <uint64_t>(c.n - c.p):
            return None
        for i in range(<Py_ssize_t>count):
            if rd_len(c, &ln) < 0:
                return None
            c.p += ln
        raw = PyBytes_FromStringAndSize(<char*>c.b + start, c.p - start)
        h = self.hdrs.get(raw)
        if h is None:
            h = self.build_header(raw)
            if len(self.hdrs) >= MAX_CACHED_HEADERS:
                self.hdrs.clear()
            self.hdrs[raw] = h
        self.last_hdr = h
        return h


cdef class Kernel:
    """Decodes mutation entries into the column stores of the tables it has plans for.

    Plans are keyed by the 16 raw bytes of the table id; the caller adds and drops them as its
    schema lookups change (a plan must describe the schema the Python decoder would use now).
    """

    cdef dict plans
    cdef TablePlan last
    cdef int64_t max_rows
    cdef int64_t max_bytes
    # scratch
    cdef Val* vals
    cdef Py_ssize_t vals_cap
    cdef RowRec* rows
    cdef Py_ssize_t rows_cap
    cdef UpdRec* upds
    cdef Py_ssize_t upds_cap
    cdef Val* pks
    cdef Py_ssize_t pks_cap
    cdef int* pres
    cdef Py_ssize_t pres_cap
    cdef Py_ssize_t n_vals, n_rows, n_upds, n_pks, n_pres

    def __cinit__(self):
        self.vals = NULL
        self.rows = NULL
        self.upds = NULL
        self.pks = NULL
        self.pres = NULL
        self.vals_cap = self.rows_cap = self.upds_cap = self.pks_cap = self.pres_cap = 0

    def __dealloc__(self):
        free(self.vals)
        free(self.rows)
        free(self.upds)
        free(self.pks)
        free(self.pres)

    def __init__(self, max_rows=65536, max_bytes=16 << 20):
        self.plans = {}
        self.last = None
        # limits beyond int64 cannot be reached anyway
        self.max_rows = min(max(<object>max_rows, 0), RCDC_INT64_MAX)
        self.max_bytes = min(max(<object>max_bytes, 0), RCDC_INT64_MAX)

    # --- plans --------------------------------------------------------------------------------

    def set_plan(self, TablePlan plan not None):
        self.plans[plan.table_id] = plan
        self.last = None

    def drop_plan(self, bytes table_id not None):
        self.plans.pop(table_id, None)
        self.last = None

    def plan(self, bytes table_id not None):
        return self.plans.get(table_id)

    def plan_ids(self):
        return list(self.plans)

    def clear(self):
        self.plans.clear()
        self.last = None

    def touched(self):
        """The builders of the last mutation taken, in update order (valid right after `add` or
        `run` returned; run stops after the mutation that filled a builder)."""
        return [(<TablePlan>self.upds[u].plan).builder for u in range(self.n_upds)]

    cdef TablePlan lookup(self, const uint8_t* tid):
        cdef TablePlan p = self.last
        if p is not None and memcmp(PyBytes_AS_STRING(p.table_id), tid, 16) == 0:
            return p
        p = self.plans.get(PyBytes_FromStringAndSize(<const char*>tid, 16))
        if p is not None:
            self.last = p
        return p

    # --- scratch ------------------------------------------------------------------------------

    cdef int grow(self, void** arr, Py_ssize_t* cap, Py_ssize_t need, size_t size) except -1:
        cdef Py_ssize_t new_cap
        cdef void* mem
        if need <= cap[0]:
            return 0
        new_cap = cap[0] * 2 if cap[0] else 64
        while new_cap < need:
            new_cap *= 2
        mem = realloc(arr[0], new_cap * size)
        if mem == NULL:
            raise MemoryError()
        arr[0] = mem
        cap[0] = new_cap
        return 0

    cdef void trim(self) noexcept:
        free(self.vals)
        free(self.rows)
        free(self.pres)
        self.vals = NULL
        self.rows = NULL
        self.pres = NULL
        self.vals_cap = self.rows_cap = self.pres_cap = 0

    # --- entry points ---------------------------------------------------------------------------

    def add(self, body, int64_t segment_id, int64_t offset):
        """Append the rows of one mutation body; 0 = declined (nothing appended), 1 = appended,
        2 = appended and a builder it touched reached max_rows or max_bytes (see `touched`)."""
        if not self.plans:
            return 0
        if type(body) is not bytes:
            body = bytes(body)
        try:
            if self.parse(<const uint8_t*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)) <= 0:
                return 0
            return self.emit(PyBytes_AS_STRING(body), segment_id, offset)
        finally:
            if self.vals_cap > SCRATCH_KEEP or self.rows_cap > SCRATCH_KEEP:
                self.trim()  # a huge mutation: do not keep its scratch for the small ones

    def run(self, data, Py_ssize_t off, int64_t base, int64_t skip_until, int64_t segment_id):
        """Take the entries of a section's `data` from `off` on, while they are whole, both CRCs
        match and their mutations are ones the kernel decodes; entries ending at or before
        `skip_until` (relative to data) are passed over. `base` is the logical offset of data[0].

        Returns (off, taken, last_end, full): where it stopped (the start of the first entry not
        taken, or len(data)), how many entries it decoded, the end of the last one (relative), and
        whether that last one filled a builder (then it stopped right after it: see `touched`).
        The caller's Python loop handles the entry at `off` (damage, padding, a declined mutation).
        """
        cdef Py_buffer view
        cdef const uint8_t* b
        cdef Py_ssize_t n, end, taken = 0, last_end = 0
        cdef int64_t size
        cdef uint32_t crc
        cdef int full = 0
        if not self.plans or off < 0:
            return off, 0, 0, False
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            b = <const uint8_t*>view.buf
            n = view.len
            while n - off >= 8:
                size = <int32_t>rcdc_be32(b + off)
                if size < MIN_ENTRY_SIZE:
                    break  # end of data (zero), or damage: the Python loop says which
                crc = rcdc_crc32(0, b + off, 4)
                if crc != rcdc_be32(b + off + 4) or size > n - off - ENTRY_OVERHEAD:
                    break
                end = off + ENTRY_OVERHEAD + <Py_ssize_t>size
                if end <= skip_until:
                    off = end  # consumed before the resume point (its body is not even checked)
                    continue
                if rcdc_crc32(crc, b + off + 8, <Py_ssize_t>size) != rcdc_be32(b + end - 4):
                    break
                if self.parse(b + off + 8, <Py_ssize_t>size) <= 0:
                    break
                full = self.emit(<const char*>b + off + 8, segment_id, base + end) == 2
                taken += 1
                last_end = end
                off = end
                if full:
                    break
        finally:
            PyBuffer_Release(&view)
            if self.vals_cap > SCRATCH_KEEP or self.rows_cap > SCRATCH_KEEP:
                self.trim()
        return off, taken, last_end, bool(full)

    # --- the walk -----------------------------------------------------------------------------

    cdef int parse(self, const uint8_t* body, Py_ssize_t size) except -2:
        cdef Cur c
        cdef uint64_t count
        cdef Py_ssize_t u, j
        c.b = body
        c.n = size
        c.p = 0
        self.n_vals = self.n_rows = self.n_upds = self.n_pks = self.n_pres = 0
        if rd_uvint(&c, &count) < 0 or count < 1 or count > <uint64_t>(c.n // 18):
            return 0  # an update takes at least 18 bytes (table id, key length, flags)
        for u in range(<Py_ssize_t>count):
            if self.parse_update(&c) <= 0:
                return 0
        if c.p != c.n:
            return 0
        return 1

    cdef int parse_update(self, Cur* c) except -2:
        cdef TablePlan plan
        cdef HeaderInfo h
        cdef UpdRec* upd
        cdef Py_ssize_t j, key_off, key_len, kp, part_len, parts
        cdef uint8_t pflags, flags, ext
        cdef uint64_t ts_raw
        cdef int64_t min_ts
        cdef int32_t min_ldt, min_ttl, scratch32
        if 16 > c.n - c.p:
            return 0
        plan = self.lookup(c.b + c.p)
        if plan is None:
            return 0
        for j in range(self.n_upds):
            if self.upds[j].plan == <PyObject*>plan:
                return 0  # the same table twice: the batcher checks its limits after each update
        if plan.store.broken:
            return 0  # the Python path's rows of this batch stay in the lists until finish()
        if PyList_GET_SIZE(plan.pending) and not plan.store.absorb_lists(plan.builder):
            return 0  # rows of the Python path come first (log order), and these cannot move
        c.p += 16
        if rd_len(c, &key_len) < 0:
            return 0
        self.grow(<void**>&self.upds, &self.upds_cap, self.n_upds + 1, sizeof(UpdRec))
        key_off = c.p
        c.p += key_len
        if rd_u8(c, &pflags) < 0:
            return 0
        upd = &self.upds[self.n_upds]
        upd.plan = <PyObject*>plan
        upd.hdr = NULL
        upd.key_off = key_off
        upd.key_len = key_len
        upd.pk_start = self.n_pks
        upd.nbytes = 0
        self.n_upds += 1
        if pflags & P_IS_EMPTY:
            return 1
        if pflags & (P_HAS_PARTITION_DELETION | P_HAS_STATIC_ROW):
            return 0
        if rd_uvint(c, &ts_raw) < 0:
            return 0
        min_ts = <int64_t>(ts_raw + <uint64_t>TIMESTAMP_EPOCH)
        if rd_i32(c, DELETION_TIME_EPOCH, &min_ldt) < 0 or rd_i32(c, 0, &min_ttl) < 0:
            return 0
        h = plan.header(c)
        if h is None or not h.ok:
            return 0
        upd.hdr = <PyObject*>h
        if pflags & P_HAS_ROW_ESTIMATE:
            if rd_i32(c, 0, &scratch32) < 0:
                return 0
        if plan.n_pk > 1:
            # split_composite: u16 length, bytes, end-of-component byte; exactly n_pk components
            self.grow(<void**>&self.pks, &self.pks_cap, self.n_pks + plan.n_pk, sizeof(Val))
            kp = 0
            parts = 0
            while kp < key_len:
                if key_len - kp < 2:
                    return 0
                part_len = (<Py_ssize_t>c.b[key_off + kp] << 8) | c.b[key_off + kp + 1]
                if part_len > key_len - kp - 2 or parts >= plan.n_pk:
                    return 0
                self.pks[self.n_pks + parts].off = key_off + kp + 2
                self.pks[self.n_pks + parts].len = part_len
                parts += 1
                kp += 3 + part_len
            if parts != plan.n_pk:
                return 0
            self.n_pks += parts
        while True:
            if rd_u8(c, &flags) < 0:
                return 0
            if flags & END_OF_PARTITION:
                return 1
            if flags & IS_MARKER:
                return 0
            if self.parse_row(c, plan, h, flags, min_ts, min_ldt, min_ttl) <= 0:
                return 0

    cdef int parse_row(self, Cur* c, TablePlan plan, HeaderInfo h, uint8_t flags,
                       int64_t min_ts, int32_t min_ldt, int32_t min_ttl) except -2:
        cdef RowRec* row
        cdef Val* vals
        cdef UpdRec* upd = &self.upds[self.n_upds - 1]
        cdef uint8_t ext, cflags
        cdef uint64_t bits, v, idx, prev
        cdef Py_ssize_t s, off, limit, i, k, n_cols, present, n_listed, voff, vlen, first
        cdef int64_t lts, dts = 0, cts
        cdef int32_t lttl, lldt, dldt = 0, cttl, cldt
        cdef int has_live, slot, kind
        cdef Py_ssize_t n_slots = plan.n_slots, n_pk = plan.n_pk, n_ck = plan.n_ck
        if flags & EXTENSION_FLAG:
            if rd_u8(c, &ext) < 0:
                return 0
        self.grow(<void**>&self.rows, &self.rows_cap, self.n_rows + 1, sizeof(RowRec))
        self.grow(<void**>&self.vals, &self.vals_cap, self.n_vals + n_slots, sizeof(Val))
        row = &self.rows[self.n_rows]
        vals = &self.vals[self.n_vals]
        row.upd = self.n_upds - 1
        row.val_start = self.n_vals
        for s in range(n_pk):
            vals[s].off = s
            vals[s].len = V_PK
        for s in range(n_pk, n_slots):
            vals[s].off = 0
            vals[s].len = V_NONE
        # clustering: blocks of 32 values, each block after a null/empty header
        off = 0
        while off < n_ck:
            limit = n_ck if n_ck - off < 32 else off + 32
            if rd_uvint(c, &bits) < 0:
                return 0
            for i in range(limit - off):
                if bits & ((<uint64_t>2) << (2 * i)):
                    vals[n_pk + off + i].len = V_NONE
                elif bits & ((<uint64_t>1) << (2 * i)):
                    vals[n_pk + off + i].off = c.p
                    vals[n_pk + off + i].len = 0
                else:
                    if rd_value(c, plan.ck_width[off + i], &voff, &vlen) < 0:
                        return 0
                    vals[n_pk + off + i].off = voff
                    vals[n_pk + off + i].len = vlen
            off = limit
        # liveness (ttl before ldt here), row deletion
        has_live = (flags & HAS_TIMESTAMP) != 0
        lts = RCDC_INT64_MIN
        lttl = 0
        lldt = NO_DELETION_TIME
        if has_live:
            if rd_ts(c, min_ts, &lts) < 0:
                return 0
            if flags & HAS_TTL:
                if rd_i32(c, min_ttl, &lttl) < 0 or rd_i32(c, min_ldt, &lldt) < 0:
                    return 0
        if flags & HAS_DELETION:
            if rd_ts(c, min_ts, &dts) < 0 or rd_i32(c, min_ldt, &dldt) < 0:
                return 0
        row.op = 0 if has_live else 1
        row.has_wt = has_live
        row.wt = lts
        row.has_ttl = 0
        row.ttl = 0
        row.exp = NO_DELETION_TIME
        if has_live and lttl != 0:
            row.has_ttl = 1
            row.ttl = lttl
            row.exp = lldt
        # which header columns the row has
        n_cols = h.n
        kind = PRES_ALL
        if not (flags & HAS_ALL_COLUMNS):
            if rd_uvint(c, &v) < 0:
                return 0
            if v != 0:
                if n_cols < 64:
                    kind = PRES_MASK
                    row.mask = (~v) & h.all_mask
                else:
                    if v > <uint64_t>n_cols:
                        return 0
                    kind = PRES_LIST
                    present = n_cols - <Py_ssize_t>v
                    self.grow(<void**>&self.pres, &self.pres_cap, self.n_pres + n_cols, sizeof(int))
                    row.pres_start = self.n_pres
                    n_listed = 0
                    if present < n_cols // 2:
                        for k in range(present):  # the present columns, ascending
                            if rd_uvint(c, &idx) < 0 or idx >= <uint64_t>n_cols:
                                return 0
                            if k and idx <= prev:
                                return 0
                            prev = idx
                            self.pres[self.n_pres + n_listed] = <int>idx
                            n_listed += 1
                    else:
                        first = 0  # the missing columns, ascending: present = the rest
                        for k in range(<Py_ssize_t>v):
                            if rd_uvint(c, &idx) < 0 or idx >= <uint64_t>n_cols:
                                return 0
                            if k and idx <= prev:
                                return 0
                            prev = idx
                            for i in range(first, <Py_ssize_t>idx):
                                self.pres[self.n_pres + n_listed] = <int>i
                                n_listed += 1
                            first = <Py_ssize_t>idx + 1
                        for i in range(first, n_cols):
                            self.pres[self.n_pres + n_listed] = <int>i
                            n_listed += 1
                    row.pres_n = n_listed
        row.pres_kind = kind
        # the cells, in header order
        if kind == PRES_LIST:
            k = row.pres_n
        elif kind == PRES_MASK:
            k = n_cols
        else:
            k = n_cols
        for s in range(k):
            if kind == PRES_LIST:
                i = self.pres[row.pres_start + s]
            else:
                i = s
                if kind == PRES_MASK and not ((row.mask >> i) & 1):
                    continue
            if rd_u8(c, &cflags) < 0:
                return 0
            if cflags & CELL_USE_ROW_TIMESTAMP:
                cts = lts
            elif rd_ts(c, min_ts, &cts) < 0:
                return 0
            cttl = 0
            cldt = NO_DELETION_TIME
            if cflags & CELL_USE_ROW_TTL:
                cttl = lttl
                cldt = lldt
            elif cflags & (CELL_IS_DELETED | CELL_IS_EXPIRING):
                if rd_i32(c, min_ldt, &cldt) < 0:
                    return 0
                if cflags & CELL_IS_EXPIRING:
                    if rd_i32(c, min_ttl, &cttl) < 0:
                        return 0
            if cflags & CELL_HAS_EMPTY_VALUE:
                voff = c.p
                vlen = 0
            elif rd_value(c, h.width[i], &voff, &vlen) < 0:
                return 0
            slot = h.slot[i]
            if slot < 0:
                continue  # a dropped column: parsed, not kept
            if not (cflags & CELL_IS_DELETED):
                vals[slot].off = voff
                vals[slot].len = vlen
                upd.nbytes += vlen
                if (cflags & CELL_IS_EXPIRING) and not row.has_ttl:
                    row.has_ttl = 1
                    row.ttl = cttl
                    row.exp = cldt
            if not row.has_wt or cts > row.wt:
                row.wt = cts
                row.has_wt = 1
        if flags & HAS_DELETION:
            row.op = 2
            if not row.has_wt or dts > row.wt:
                row.wt = dts
                row.has_wt = 1
        if kind == PRES_LIST:
            self.n_pres += row.pres_n
        self.n_rows += 1
        self.n_vals += n_slots
        return 1

    cdef int emit(self, const char* b, int64_t segment_id, int64_t offset) except -1:
        """Append the parsed mutation (body at `b`) to the stores; 2 when a store reached its limits."""
        cdef Py_ssize_t u, r, s, j, i
        cdef UpdRec* upd
        cdef RowRec* row
        cdef Val* v
        cdef Val* pk
        cdef TablePlan plan
        cdef HeaderInfo h
        cdef ColumnStore st
        cdef int full = 0, slot
        for r in range(self.n_rows):
            row = &self.rows[r]
            upd = &self.upds[row.upd]
            plan = <TablePlan>upd.plan
            h = <HeaderInfo>upd.hdr
            st = plan.store
            st.begin_row(h.n)
            v = &self.vals[row.val_start]
            for s in range(plan.n_slots):
                if v[s].len >= 0:
                    st.put(s, b + v[s].off, v[s].len)
                elif v[s].len == V_NONE:
                    st.put_null(s)
                elif plan.n_pk == 1:
                    st.put(s, b + upd.key_off, upd.key_len)
                else:
                    pk = &self.pks[upd.pk_start + v[s].off]
                    st.put(s, b + pk.off, pk.len)
            # _present: the header columns the row has, in header order, dropped ones left out
            if row.pres_kind == PRES_LIST:
                for j in range(row.pres_n):
                    slot = h.slot[self.pres[row.pres_start + j]]
                    if slot >= 0:
                        st.add_present(slot)
            else:
                for i in range(h.n):
                    if row.pres_kind == PRES_MASK and not ((row.mask >> i) & 1):
                        continue
                    slot = h.slot[i]
                    if slot >= 0:
                        st.add_present(slot)
            st.end_row(row.op, row.has_wt, row.wt, row.has_ttl, row.ttl,
                       row.has_ttl and row.exp != NO_DELETION_TIME, row.exp, segment_id, offset)
        for u in range(self.n_upds):
            upd = &self.upds[u]
            st = (<TablePlan>upd.plan).store
            st.nbytes_c += upd.nbytes
            if st.rows >= self.max_rows or st.nbytes_c >= self.max_bytes:
                full = 1
        return 2 if full else 1


# --- column builders for TableBatchBuilder.finish() -----------------------------------------------


def fixed_column(list raw not None, Py_ssize_t width, int kind):
    """Raw values of a fixed-width column -> (validity bitmap or None, data, null count), or None
    when a value is not bytes of exactly `width` (then the per-value path decides).

    kind 0: copy the bytes (uuid); 1: big-endian numbers of `width` 2/4/8 bytes to native order;
    2: boolean (any non-zero byte is true) as an Arrow bit-packed buffer (width 1).
    """
    cdef Py_ssize_t n = PyList_GET_SIZE(raw), i, nulls = 0, nbits = (n + 7) // 8
    cdef PyObject* item
    cdef const uint8_t* src
    cdef uint8_t* valid
    cdef uint8_t* out
    cdef bytes validity, data
    if width <= 0 or (kind == 2 and width != 1) or (kind == 1 and width not in (2, 4, 8)):
        return None
    validity = PyBytes_FromStringAndSize(NULL, nbits)
    valid = <uint8_t*>PyBytes_AS_STRING(validity)
    memset(valid, 0, nbits)
    if kind == 2:
        data = PyBytes_FromStringAndSize(NULL, nbits)
        out = <uint8_t*>PyBytes_AS_STRING(data)
        memset(out, 0, nbits)
    else:
        data = PyBytes_FromStringAndSize(NULL, n * width)
        out = <uint8_t*>PyBytes_AS_STRING(data)
    for i in range(n):
        item = PyList_GET_ITEM(raw, i)
        if item == <PyObject*>None:
            nulls += 1
            if kind != 2:
                memset(out + i * width, 0, width)
            continue
        if not PyBytes_CheckExact(<object>item) or PyBytes_GET_SIZE(<object>item) != width:
            return None
        valid[i >> 3] |= <uint8_t>(1 << (i & 7))
        src = <const uint8_t*>PyBytes_AS_STRING(<object>item)
        if kind == 1:
            rcdc_swap(out + i * width, src, width)
        elif kind == 0:
            memcpy(out + i * width, src, width)
        elif src[0]:
            out[i >> 3] |= <uint8_t>(1 << (i & 7))
    return (validity if nulls else None), data, nulls


def variable_column(list raw not None):
    """Raw values of a text/blob column -> (validity or None, offsets, data, null count, large):
    int32 offsets when the data fits them (large False), else int64. None if a value is not
    bytes."""
    cdef Py_ssize_t n = PyList_GET_SIZE(raw), i, nulls = 0, total = 0, ln
    cdef PyObject* item
    cdef uint8_t* valid
    cdef char* out
    cdef int32_t* off32
    cdef int64_t* off64
    cdef bint large
    cdef bytes validity, offsets, data
    for i in range(n):
        item = PyList_GET_ITEM(raw, i)
        if item == <PyObject*>None:
            nulls += 1
        elif not PyBytes_CheckExact(<object>item):
            return None
        else:
            total += PyBytes_GET_SIZE(<object>item)
    large = total > 0x7FFFFFFF
    offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * (8 if large else 4))
    data = PyBytes_FromStringAndSize(NULL, total)
    validity = PyBytes_FromStringAndSize(NULL, (n + 7) // 8) if nulls else None
    if nulls:
        valid = <uint8_t*>PyBytes_AS_STRING(validity)
        memset(valid, 0, (n + 7) // 8)
    out = PyBytes_AS_STRING(data)
    off32 = <int32_t*>PyBytes_AS_STRING(offsets)
    off64 = <int64_t*>PyBytes_AS_STRING(offsets)
    total = 0
    for i in range(n):
        if large:
            off64[i] = total
        else:
            off32[i] = <int32_t>total
        item = PyList_GET_ITEM(raw, i)
        if item == <PyObject*>None:
            continue
        if nulls:
            valid[i >> 3] |= <uint8_t>(1 << (i & 7))
        ln = PyBytes_GET_SIZE(<object>item)
        memcpy(out + total, PyBytes_AS_STRING(<object>item), ln)
        total += ln
    if large:
        off64[n] = total
    else:
        off32[n] = <int32_t>total
    return validity, offsets, data, nulls, large


def int_column(list values not None, int bits):
    """Python ints or None -> (validity or None, little-endian int32/int64 data, null count), or
    None when an entry is not an int of that range (then pyarrow decides, and raises)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(values), i, nulls = 0, nbits = (n + 7) // 8
    cdef PyObject* item
    cdef PyObject* prev = NULL
    cdef long long v = 0
    cdef int overflow
    cdef uint8_t* valid
    cdef int32_t* out32
    cdef int64_t* out64
    cdef bytes validity, data
    if bits != 32 and bits != 64:
        return None
    validity = PyBytes_FromStringAndSize(NULL, nbits)
    valid = <uint8_t*>PyBytes_AS_STRING(validity)
    memset(valid, 0, nbits)
    data = PyBytes_FromStringAndSize(NULL, n * (bits // 8))
    out32 = <int32_t*>PyBytes_AS_STRING(data)
    out64 = <int64_t*>PyBytes_AS_STRING(data)
    for i in range(n):
        item = PyList_GET_ITEM(values, i)
        if item == <PyObject*>None:
            nulls += 1
            if bits == 32:
                out32[i] = 0
            else:
                out64[i] = 0
            continue
        if item != prev:  # runs of one object (segment ids, positions) are read once
            if not PyLong_CheckExact(<object>item):
                return None
            v = PyLong_AsLongLongAndOverflow(<object>item, &overflow)
            if overflow or (bits == 32 and (v > 0x7FFFFFFF or v < -0x80000000)):
                return None
            prev = item
        valid[i >> 3] |= <uint8_t>(1 << (i & 7))
        if bits == 32:
            out32[i] = <int32_t>v
        else:
            out64[i] = <int64_t>v
    return (validity if nulls else None), data, nulls


cdef inline int _utf8(object text, const char** ptr, Py_ssize_t* ln) except -1:
    ptr[0] = PyUnicode_AsUTF8AndSize(text, ln)
    return 0


def string_column(list values not None):
    """str or None entries -> (validity or None, int32 offsets, UTF-8 data, null count), or None
    when an entry is not a str (or the data needs int64 offsets)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(values), i, nulls = 0, total = 0, ln = 0
    cdef PyObject* item
    cdef PyObject* prev = NULL
    cdef const char* ptr = NULL
    cdef uint8_t* valid
    cdef int32_t* off
    cdef char* out
    cdef bytes validity, offsets, data
    for i in range(n):
        item = PyList_GET_ITEM(values, i)
        if item == <PyObject*>None:
            nulls += 1
            continue
        if item != prev:
            if not PyUnicode_CheckExact(<object>item):
                return None
            _utf8(<object>item, &ptr, &ln)
            prev = item
        total += ln
        if total > 0x7FFFFFFF:
            return None
    validity = PyBytes_FromStringAndSize(NULL, (n + 7) // 8) if nulls else None
    if nulls:
        valid = <uint8_t*>PyBytes_AS_STRING(validity)
        memset(valid, 0, (n + 7) // 8)
    offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)
    off = <int32_t*>PyBytes_AS_STRING(offsets)
    data = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(data)
    prev = NULL
    total = 0
    for i in range(n):
        off[i] = <int32_t>total
        item = PyList_GET_ITEM(values, i)
        if item == <PyObject*>None:
            continue
        if nulls:
            valid[i >> 3] |= <uint8_t>(1 << (i & 7))
        if item != prev:
            _utf8(<object>item, &ptr, &ln)
            prev = item
        memcpy(out + total, ptr, ln)
        total += ln
    off[n] = <int32_t>total
    return validity, offsets, data, nulls


def present_column(list present not None):
    """`present` lists of str -> (int32 list offsets, int32 string offsets, UTF-8 data), the
    buffers of a list<string> array; None when an entry is not a list of str. Consecutive rows
    sharing one list object (the kernel shares them) are copied, not encoded again."""
    cdef Py_ssize_t n = PyList_GET_SIZE(present), i, j, m, count = 0, total = 0, ln
    cdef Py_ssize_t prev_first = 0, prev_count = 0, prev_total = 0, prev_bytes = 0
    cdef PyObject* item
    cdef PyObject* name
    cdef PyObject* prev = NULL
    cdef const char* ptr
    cdef int32_t* loff
    cdef int32_t* soff
    cdef char* out
    cdef bytes list_offsets, str_offsets, data
    # sizes first
    for i in range(n):
        item = PyList_GET_ITEM(present, i)
        if type(<object>item) is not list:
            return None
        m = PyList_GET_SIZE(<object>item)
        if item == prev:
            count += m
            total += prev_bytes
            continue
        prev_bytes = 0
        for j in range(m):
            name = PyList_GET_ITEM(<object>item, j)
            if not PyUnicode_CheckExact(<object>name):
                return None
            _utf8(<object>name, &ptr, &ln)
            prev_bytes += ln
        count += m
        total += prev_bytes
        prev = item
        if count > 0x7FFFFFFF or total > 0x7FFFFFFF:
            return None
    if count > 0x7FFFFFFF or total > 0x7FFFFFFF:
        return None
    list_offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)
    str_offsets = PyBytes_FromStringAndSize(NULL, (count + 1) * 4)
    data = PyBytes_FromStringAndSize(NULL, total)
    loff = <int32_t*>PyBytes_AS_STRING(list_offsets)
    soff = <int32_t*>PyBytes_AS_STRING(str_offsets)
    out = PyBytes_AS_STRING(data)
    prev = NULL
    count = 0
    total = 0
    for i in range(n):
        loff[i] = <int32_t>count
        item = PyList_GET_ITEM(present, i)
        m = PyList_GET_SIZE(<object>item)
        if item == prev:
            # the same names again: copy the previous row's bytes and shift its offsets
            ln = total - prev_total
            memcpy(out + total, out + prev_total, ln)
            for j in range(m):
                soff[count + j] = soff[prev_first + j] + <int32_t>ln
            prev_first = count
            prev_total = total
            total += ln
        else:
            prev_first = count
            prev_total = total
            for j in range(m):
                soff[count + j] = <int32_t>total
                _utf8(<object>PyList_GET_ITEM(<object>item, j), &ptr, &ln)
                memcpy(out + total, ptr, ln)
                total += ln
        count += m
        prev = item
    loff[n] = <int32_t>count
    soff[count] = <int32_t>total
    return list_offsets, str_offsets, data
