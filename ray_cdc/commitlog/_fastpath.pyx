# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, infer_types=False, embedsignature=False
"""The compiled kernel of the Arrow fast path: a mutation body straight into TableBatchBuilder lists.

`Kernel.add(body, segment_id, offset)` walks one serialized mutation (format doc §7–§13) in C and
appends its rows to the accumulators of each table's `TableBatchBuilder` (the lists `_row`/`_meta`
fill: raw value bytes per slot, op, writetime, ttl, expires, segment, position, present; and
`nbytes`), exactly as `MutationDecoder.decode` + `TableBatchBuilder.add_update` would, without
building any model object.

It takes the common case only: every update belongs to a table with a `TablePlan`, and has no
partition deletion, no static row, no range tombstone marker, no complex (non-frozen collection or
UDT) and no counter column in its header. For anything else, or for input it cannot prove
well-formed, it returns 0 having appended nothing (the whole mutation is parsed into C scratch
arrays first; nothing is appended before the last byte checks out), and the caller runs the Python
path, which also raises the exact typed errors.

Every read is bounds-checked against the body length by hand (the module is compiled with Cython's
own index checks off: no Python-level indexing of the body happens here).

The module also has the column builders `TableBatchBuilder.finish()` uses when the kernel is built
(`fixed_column`, `variable_column`, `int_column`, `string_column`, `present_column`): the same results as the numpy code in
arrow_batches.py, without a Python-level step per value.
"""

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
    #define MAX_CACHED_MASKS 4096
    #define SCRATCH_KEEP (1 << 20)
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
    int MAX_CACHED_MASKS
    int SCRATCH_KEEP
    int64_t RCDC_INT64_MAX
    int64_t RCDC_INT64_MIN
    const uint8_t rcdc_extra[256]
    void rcdc_swap(uint8_t* dst, const uint8_t* src, Py_ssize_t width) nogil

# format doc §8–§12 (the same constants as mutation_model.py)







cdef str OP_INSERT = "insert"
cdef str OP_UPDATE = "update"
cdef str OP_DELETE = "delete"


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


cdef class HeaderInfo:
    """One regular-column header (raw bytes) of a table, resolved to slots and widths once."""

    cdef bint ok
    cdef Py_ssize_t n
    cdef int* slot  # builder slot per header column; -1 = a dropped column
    cdef int* width  # fixed width per header column; -1 = vbytes
    cdef bytes raw
    cdef list names  # per header column: the builder column name, or None for a dropped column
    cdef list all_list  # `present` of a row with every column
    cdef uint64_t all_mask
    cdef dict masks  # present mask -> `present` list
    cdef uint64_t last_mask
    cdef object last_list

    def __cinit__(self):
        self.slot = NULL
        self.width = NULL

    def __dealloc__(self):
        free(self.slot)
        free(self.width)

    cdef list present_for_mask(self, uint64_t mask):
        cdef object lst
        cdef Py_ssize_t i
        if mask == self.all_mask:
            return self.all_list
        if mask == self.last_mask and self.last_list is not None:
            return <list>self.last_list
        lst = self.masks.get(mask)
        if lst is None:
            lst = [self.names[i] for i in range(self.n) if (mask >> i) & 1 and self.slot[i] >= 0]
            if len(self.masks) >= MAX_CACHED_MASKS:
                self.masks.clear()
            self.masks[mask] = lst
        self.last_mask = mask
        self.last_list = lst
        return <list>lst


cdef class TablePlan:
    """What the kernel needs of one table: its builder's lists, slots, clustering widths, and a cache
    of the column headers seen (most mutations of a table repeat one header byte for byte)."""

    cdef readonly object builder
    cdef readonly object table
    cdef readonly bytes table_id
    cdef list raw
    cdef list op
    cdef list writetime
    cdef list ttl
    cdef list expires
    cdef list segment
    cdef list position
    cdef list present
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
        self.raw = builder.raw
        self.op = builder.op
        self.writetime = builder.writetime
        self.ttl = builder.ttl
        self.expires = builder.expires
        self.segment = builder.segment
        self.position = builder.position
        self.present = builder.present
        self.columns = list(builder.columns)
        self.slot_of = builder.slot
        self.n_slots = len(self.raw)
        self.n_pk = builder.n_pk
        self.n_ck = builder.n_ck
        if self.n_slots != len(self.columns) or self.n_pk < 1 or self.n_pk + self.n_ck > self.n_slots:
            raise ValueError("builder layout does not match its table")
        for lst in self.raw:
            if type(lst) is not list:
                raise TypeError("builder.raw must hold lists")
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
        cdef int slot
        h.raw = raw
        h.ok = False
        h.names = []
        h.masks = {}
        h.last_list = None
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
            slot = <int>self.slot_of.get(name, -1)
            h.slot[i] = slot
            h.names.append(self.columns[slot].name if slot >= 0 else None)
        if c.p != c.n:
            return h
        h.all_mask = ((<uint64_t>1) << h.n) - 1 if h.n < 64 else 0
        h.all_list = [nm for nm in h.names if nm is not None]
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
    """Decodes mutation bodies into the builders of the tables it has plans for.

    Plans are keyed by the 16 raw bytes of the table id; the caller adds and drops them as its
    schema lookups change (a plan must describe the schema the Python decoder would use now).
    """

    cdef dict plans
    cdef TablePlan last
    cdef object max_rows
    cdef object max_bytes
    cdef list _touched
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
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._touched = []

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
        """The builders of the last accepted mutation, in update order."""
        return [(<TablePlan>p).builder for p in self._touched]

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

    # --- the walk -----------------------------------------------------------------------------

    def add(self, body, segment_id, offset):
        """Append the rows of one mutation body; 0 = declined (nothing appended), 1 = appended,
        2 = appended and a builder it touched reached max_rows or max_bytes (see `touched`)."""
        if not self.plans:
            return 0
        if type(body) is not bytes:
            body = bytes(body)
        try:
            if self.parse(body) <= 0:
                return 0
            return self.emit(body, segment_id, offset)
        finally:
            if self.vals_cap > SCRATCH_KEEP or self.rows_cap > SCRATCH_KEEP:
                self.trim()  # a huge mutation: do not keep its scratch for the small ones

    cdef void trim(self) noexcept:
        free(self.vals)
        free(self.rows)
        free(self.pres)
        self.vals = NULL
        self.rows = NULL
        self.pres = NULL
        self.vals_cap = self.rows_cap = self.pres_cap = 0

    cdef int parse(self, bytes body) except -2:
        cdef Cur c
        cdef uint64_t count
        cdef Py_ssize_t u, j
        c.b = <const uint8_t*>PyBytes_AS_STRING(body)
        c.n = PyBytes_GET_SIZE(body)
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

    cdef object emit(self, bytes body, object segment_id, object offset):
        cdef const char* b = PyBytes_AS_STRING(body)
        cdef Py_ssize_t u, r, s, j
        cdef UpdRec* upd
        cdef RowRec* row
        cdef Val* v
        cdef TablePlan plan
        cdef HeaderInfo h
        cdef list pk_objs = []
        cdef list pks, raw, lst
        cdef object obj
        cdef int full = 0
        for u in range(self.n_upds):
            upd = &self.upds[u]
            plan = <TablePlan>upd.plan
            if plan.n_pk == 1:
                pks = [PyBytes_FromStringAndSize(b + upd.key_off, upd.key_len)]
            elif upd.hdr == NULL:
                pks = []  # an empty update: no rows
            else:
                pks = [PyBytes_FromStringAndSize(b + self.pks[upd.pk_start + j].off, self.pks[upd.pk_start + j].len)
                       for j in range(plan.n_pk)]
            pk_objs.append(pks)
        for r in range(self.n_rows):
            row = &self.rows[r]
            upd = &self.upds[row.upd]
            plan = <TablePlan>upd.plan
            h = <HeaderInfo>upd.hdr
            pks = <list><object>PyList_GET_ITEM(pk_objs, row.upd)
            raw = plan.raw
            v = &self.vals[row.val_start]
            for s in range(plan.n_slots):
                if v[s].len >= 0:
                    obj = PyBytes_FromStringAndSize(b + v[s].off, v[s].len)
                elif v[s].len == V_NONE:
                    obj = None
                else:
                    obj = <object>PyList_GET_ITEM(pks, v[s].off)
                (<list><object>PyList_GET_ITEM(raw, s)).append(obj)
            if row.op == 0:
                plan.op.append(OP_INSERT)
            elif row.op == 1:
                plan.op.append(OP_UPDATE)
            else:
                plan.op.append(OP_DELETE)
            plan.writetime.append(PyLong_FromLongLong(row.wt) if row.has_wt else None)
            if row.has_ttl:
                plan.ttl.append(PyLong_FromLong(row.ttl))
                plan.expires.append(None if row.exp == NO_DELETION_TIME else PyLong_FromLong(row.exp))
            else:
                plan.ttl.append(None)
                plan.expires.append(None)
            plan.segment.append(segment_id)
            plan.position.append(offset)
            if row.pres_kind == PRES_ALL:
                lst = h.all_list
            elif row.pres_kind == PRES_MASK:
                lst = h.present_for_mask(row.mask)
            else:
                lst = [h.names[self.pres[row.pres_start + j]] for j in range(row.pres_n)
                       if h.slot[self.pres[row.pres_start + j]] >= 0]
            plan.present.append(lst)
        self._touched = []
        for u in range(self.n_upds):
            upd = &self.upds[u]
            plan = <TablePlan>upd.plan
            builder = plan.builder
            if upd.nbytes:
                builder.nbytes = builder.nbytes + upd.nbytes
            self._touched.append(plan)
            if PyList_GET_SIZE(plan.op) >= self.max_rows or builder.nbytes >= self.max_bytes:
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
