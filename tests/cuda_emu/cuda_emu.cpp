/* cuda_emu.cpp: the runtime of emu_runtime.h. A launch runs its blocks one
 * after another on the calling thread; the THREADS threads of a block are
 * fibers (ucontext), each run until it reaches __syncthreads or returns,
 * then the next. Once every thread of the block waits at the barrier, all
 * go on. Each round runs the threads in the other order (0..255, then
 * 255..0), so a read of a neighbour's shared-memory slot that lacks a
 * barrier sees a stale value in one of the two orders. Blocks run first to
 * last, or last to first with FB_EMU_BLOCKS_REVERSED=1: on a GPU they run
 * in any order and at once, so two blocks that write one element (or one
 * that reads what another writes) give other results in one of the orders,
 * which the suite runs both of. A barrier that some
 * threads reach while others have returned (a __syncthreads in divergent
 * code: undefined on the device) ends the run with a TAP "Bail out!".
 * (This replaced a pool of 256 real threads: switching fibers costs
 * microseconds where waking 256 threads on two cores cost milliseconds.) */
#include "cuda_emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
size_t emu_idx_limit = (size_t)1 << 31;
size_t emu_max_blocks = 65535;
size_t emu_mse_blocks = 1024;
size_t emu_bn_chunk = 4096;
unsigned long emu_launches;
long emu_live_allocs;
int emu_strict;
long emu_violations;

static cudaError_t last_error = cudaSuccess;

namespace {

enum { RUNNING, AT_BARRIER, DONE };
enum { STACK_BYTES = EMU_ASAN ? 256 << 10 : 64 << 10 };

struct fiber {
    ucontext_t ctx;
    char *stack = nullptr;
    int state = DONE;
};

struct scheduler {
    std::vector<fiber> f;
    ucontext_t home; /* the launching thread's context */
    const std::function<void()> *body = nullptr;
    unsigned cur = 0;
#if EMU_ASAN
    void *home_fake = nullptr;
    const void *home_bottom = nullptr;
    size_t home_size = 0;
#endif

    ~scheduler()
    {
        for (auto &x : f) free(x.stack);
    }

    static void entry(void);

    /* From the scheduler into fiber t; back when it waits or returns. */
    void resume(unsigned t)
    {
        cur = t;
        threadIdx = {t, 0, 0};
#if EMU_ASAN
        __sanitizer_start_switch_fiber(&home_fake, f[t].stack, STACK_BYTES);
#endif
        swapcontext(&home, &f[t].ctx);
#if EMU_ASAN
        __sanitizer_finish_switch_fiber(home_fake, NULL, NULL);
#endif
    }

    /* From the running fiber back to the scheduler. */
    void yield(int state)
    {
        fiber &me = f[cur];
        me.state = state;
#if EMU_ASAN
        void *fake = nullptr;
        __sanitizer_start_switch_fiber(state == DONE ? NULL : &fake, home_bottom, home_size);
#endif
        swapcontext(&me.ctx, &home);
#if EMU_ASAN
        __sanitizer_finish_switch_fiber(fake, &home_bottom, &home_size);
#endif
    }

    /* Runs one block of n threads; 0 when a barrier was left unreachable. */
    int run_block(unsigned n)
    {
        if (f.size() < n) f.resize(n);
        for (unsigned t = 0; t < n; t++) {
            fiber &x = f[t];
            if (!x.stack && !(x.stack = (char *)malloc(STACK_BYTES))) {
                printf("Bail out! cannot allocate fiber stacks\n");
                fflush(stdout);
                _exit(2);
            }
            getcontext(&x.ctx);
            x.ctx.uc_stack.ss_sp = x.stack;
            x.ctx.uc_stack.ss_size = STACK_BYTES;
            x.ctx.uc_link = NULL; /* entry() never returns: it yields DONE */
            makecontext(&x.ctx, entry, 0);
            x.state = RUNNING;
        }
        for (unsigned round = 0;; round++) {
            for (unsigned i = 0; i < n; i++) {
                unsigned t = round & 1 ? n - 1 - i : i;
                if (f[t].state == RUNNING) resume(t);
            }
            unsigned done = 0; /* the others wait at the barrier */
            for (unsigned t = 0; t < n; t++) done += f[t].state == DONE;
            if (done == n) return 1;
            if (done) return 0;
            for (unsigned t = 0; t < n; t++) f[t].state = RUNNING;
        }
    }
};

scheduler sched;

void scheduler::entry(void)
{
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched.home_bottom, &sched.home_size);
#endif
    (*sched.body)();
    sched.yield(DONE);
}

} // namespace

static const bool blocks_reversed = [] {
    const char *v = getenv("FB_EMU_BLOCKS_REVERSED");
    return v && v[0] == '1';
}();

static void run_blocks(const char *name, unsigned grid, unsigned threads, const std::function<void()> &body)
{
    emu_launches++;
    blockDim = {threads, 1, 1};
    gridDim = {grid, 1, 1};
    sched.body = &body;
    for (unsigned i = 0; i < grid; i++) {
        unsigned g = blocks_reversed ? grid - 1 - i : i;
        blockIdx = {g, 0, 0};
        if (!sched.run_block(threads)) {
            printf("Bail out! %s (grid %u, block %u): a __syncthreads that some threads of the block never reach\n",
                   name, grid, g);
            fflush(stdout);
            _exit(2);
        }
    }
}

void emu_launch(const char *name, unsigned grid, unsigned threads, std::function<void()> body)
{
    if (grid == 0 || grid > 0x7fffffffu || threads == 0 || threads > 1024) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    cudaError_t e = emu_stream_do(name, [=] { run_blocks(name, grid, threads, body); });
    if (e != cudaSuccess) last_error = e;
}

void __syncthreads(void) { sched.yield(AT_BARRIER); }

/* 1 when v is nonzero in any thread of the block. The first barrier keeps
 * the reset from overtaking a slow reader of the previous call. */
int __syncthreads_or(int v)
{
    static std::atomic<int> flag{0};
    __syncthreads();
    if (threadIdx.x == 0) flag.store(0);
    __syncthreads();
    if (v) flag.store(1);
    __syncthreads();
    return flag.load();
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

/* ---- device memory: host blocks, with a registry of live ranges ---- */

static std::map<uintptr_t, size_t> live; /* base -> bytes (allocation happens on the host thread only) */

/* 1 when [p, p + bytes) lies inside one block of `blocks` (base -> bytes). */
static int inside_one(const std::map<uintptr_t, size_t> &blocks, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    auto it = blocks.upper_bound(a);
    if (it == blocks.begin()) return 0;
    --it;
    return a >= it->first && bytes <= it->second && a - it->first <= it->second - bytes;
}

int emu_is_device(const void *p, size_t bytes) { return inside_one(live, p, bytes); }

int emu_is_host(const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    auto it = live.lower_bound(a);
    if (it != live.end() && it->first < a + bytes) return 0;
    if (it == live.begin()) return 1;
    --it;
    return it->first + it->second <= a;
}

void emu_violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# emu: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    emu_violations++;
}

static int dev_ok(const void *p, size_t bytes, const char *what)
{
    if (!emu_strict || !bytes || emu_is_device(p, bytes)) return 1;
    emu_violation("%s: %zu bytes at %p are not inside one live device allocation", what, bytes, p);
    return 0;
}

static int host_ok(const void *p, size_t bytes, const char *what)
{
    if (!emu_strict || !bytes || emu_is_host(p, bytes)) return 1;
    emu_violation("%s: the host range of %zu bytes at %p overlaps device memory", what, bytes, p);
    return 0;
}

/* A copy's page-locked source and its hash when the copy was asked for: a GPU reads the source later, so
 * a change before then is a race (checked where the copy runs, or at the synchronisation after it). */
struct pending_copy {
    const unsigned char *src;
    size_t bytes;
    uint64_t hash;
};

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static pending_copy pending_from(const void *src, size_t bytes)
{
    return {(const unsigned char *)src, bytes, fnv1a((const unsigned char *)src, bytes)};
}

static bool source_changed(const pending_copy &c) { return fnv1a(c.src, c.bytes) != c.hash; }

/* ---- streams: the registry, side streams' queues, the main stream's device reads ---- */

namespace {
struct side_copy {
    void *dst;
    pending_copy from;               /* page-locked source: read when the copy runs */
    std::vector<unsigned char> held; /* pageable source: read at the call, as CUDA does (from: address, length) */
};
struct stream_rec {
    bool ordinary = false;
    std::vector<side_copy> queue; /* queue[i] is copy number ran + i */
    size_t issued = 0, ran = 0;
    uint64_t saw_main = 0;
};
struct device_read {
    uintptr_t lo, hi;
    uint64_t seq;
};
} // namespace
static std::map<const void *, stream_rec> &streams = *new std::map<const void *, stream_rec>;
static std::vector<device_read> main_reads; /* the latest device-to-device copies' sources */
static uint64_t main_seq;

/* s's record, NULL for a stream never registered (the kernels-only test's) */
static stream_rec *rec_of(cudaStream_t s)
{
    auto it = streams.find(s);
    return it == streams.end() ? nullptr : &it->second;
}

void emu_stream_register(cudaStream_t s) { streams[s] = stream_rec(); }
int emu_stream_live(cudaStream_t s) { return rec_of(s) != nullptr; }
void emu_stream_ordinary(cudaStream_t s)
{
    stream_rec *r = rec_of(s);
    if (r && !r->ordinary) {
        emu_side_run(s, r->issued);
        r->ordinary = true;
    }
}
int emu_stream_is_side(cudaStream_t s)
{
    stream_rec *r = rec_of(s);
    return r && !r->ordinary;
}
size_t emu_side_issued(cudaStream_t s)
{
    stream_rec *r = rec_of(s);
    return r ? r->issued : 0;
}
uint64_t emu_main_seq(void) { return main_seq; }
void emu_side_saw_main(cudaStream_t s, uint64_t seq)
{
    stream_rec *r = rec_of(s);
    if (r && seq > r->saw_main) r->saw_main = seq;
}

void emu_side_run(cudaStream_t s, size_t upto)
{
    stream_rec *r = rec_of(s);
    if (!r) return;
    size_t k = 0;
    for (; r->ran < upto && k < r->queue.size(); k++, r->ran++) {
        side_copy &c = r->queue[k];
        const size_t bytes = c.from.bytes;
        if (!emu_is_device(c.dst, bytes)) {
            emu_violation("a queued host-to-device copy of %zu bytes to %p runs after its destination was freed",
                          bytes, c.dst);
            continue;
        }
        if (c.held.empty() && source_changed(c.from))
            emu_violation("the page-locked source of a queued host-to-device copy (%zu bytes at %p) changed before "
                          "the copy ran (on a GPU it may read either contents)",
                          bytes, (const void *)c.from.src);
        memcpy(c.dst, c.held.empty() ? c.from.src : c.held.data(), bytes);
    }
    r->queue.erase(r->queue.begin(), r->queue.begin() + (long)k);
}

void emu_side_run_all(void)
{
    for (auto &st : streams) emu_side_run((cudaStream_t)st.first, st.second.issued);
}

int emu_stream_unregister(cudaStream_t s)
{
    stream_rec *r = rec_of(s);
    if (!r) return -1;
    emu_side_run(s, r->issued);
    streams.erase(s);
    return 0;
}

/* Queues a copy on side stream s, after the checks of cudaMemcpyAsync. */
static void side_queue(cudaStream_t s, void *dst, const void *src, size_t bytes, bool page_locked)
{
    stream_rec &r = *rec_of(s); /* (a side stream: registered) */
    uintptr_t lo = (uintptr_t)dst, hi = lo + bytes;
    for (const device_read &d : main_reads)
        if (d.seq > r.saw_main && d.lo < hi && lo < d.hi)
            emu_violation("a copy to %p (%zu bytes) on a copy stream overwrites device memory that a device copy "
                          "read after that stream last waited for the main one (on a GPU the write may come first)",
                          dst, bytes);
    side_copy c{dst, {(const unsigned char *)src, bytes, 0}, {}};
    if (page_locked) c.from = pending_from(src, bytes);
    else c.held.assign(c.from.src, c.from.src + bytes);
    r.queue.push_back(std::move(c));
    r.issued++;
}

static void note_device_read(const void *src, size_t bytes)
{
    enum { KEEP = 256 };
    if (main_reads.size() == KEEP) main_reads.erase(main_reads.begin());
    main_reads.push_back({(uintptr_t)src, (uintptr_t)src + bytes, ++main_seq});
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
    emu_stream_ordinary(s);
    if (!dev_ok(p, bytes, "cudaMemsetAsync")) return cudaErrorInvalidValue;
    return emu_stream_do("cudaMemsetAsync", [=] { memset(p, v, bytes); });
}

/* ---- stream capture ---- */

long emu_graphs_live;
unsigned long emu_graph_launches;
static std::map<uintptr_t, unsigned long> serial; /* live allocation -> its number (which allocation it is) */
static unsigned long next_serial;

struct emu_graph {
    std::vector<std::pair<const char *, std::function<void()>>> work;
    std::map<uintptr_t, unsigned long> allocs; /* the live allocations when it was recorded */
};
struct emu_graph_exec {
    emu_graph g;
};
enum { NOT_CAPTURING, CAPTURING, INVALIDATED };
static int capture_state;
static emu_graph *recording;

cudaError_t emu_stream_do(const char *what, std::function<void()> work)
{
    if (capture_state == INVALIDATED) return cudaErrorStreamCaptureInvalidated;
    if (capture_state == CAPTURING) recording->work.emplace_back(what, std::move(work));
    else work();
    return cudaSuccess;
}

cudaError_t emu_capture_forbids(const char *)
{
    if (capture_state == NOT_CAPTURING) return cudaSuccess;
    cudaError_t e = capture_state == CAPTURING ? cudaErrorStreamCaptureUnsupported : cudaErrorStreamCaptureInvalidated;
    capture_state = INVALIDATED;
    return e;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode)
{
    emu_stream_ordinary(s);
    if (capture_state != NOT_CAPTURING) return cudaErrorInvalidValue;
    recording = new emu_graph;
    emu_graphs_live++;
    capture_state = CAPTURING;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g)
{
    if (capture_state == NOT_CAPTURING) return cudaErrorInvalidValue;
    int good = capture_state == CAPTURING;
    capture_state = NOT_CAPTURING;
    *g = NULL;
    if (!good) {
        delete recording;
        emu_graphs_live--;
        recording = NULL;
        return cudaErrorStreamCaptureInvalidated;
    }
    recording->allocs = serial;
    *g = recording;
    recording = NULL;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long)
{
    if (!g) return cudaErrorInvalidValue;
    *e = new emu_graph_exec{*g};
    emu_graphs_live++;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
    emu_stream_ordinary(s);
    if (!e) return cudaErrorInvalidValue;
    if (capture_state != NOT_CAPTURING) return emu_capture_forbids("cudaGraphLaunch"); /* (CUDA would nest it) */
    for (const auto &a : e->g.allocs) {
        auto it = serial.find(a.first);
        if (it == serial.end() || it->second != a.second) {
            emu_violation("cudaGraphLaunch: the device allocation at %p, live when the graph was recorded, has "
                          "been freed since (the graph may use it); not launched", (void *)a.first);
            return cudaErrorInvalidValue;
        }
    }
    emu_graph_launches++;
    for (const auto &w : e->g.work) w.second();
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e)
{
    if (!e) return cudaErrorInvalidValue;
    delete e;
    emu_graphs_live--;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    if (!g) return cudaErrorInvalidValue;
    delete g;
    emu_graphs_live--;
    return cudaSuccess;
}

/* ---- page-locked host memory, and the copies still pending from it ---- */

int emu_host_alloc_fail;
long emu_pinned_live;
static std::map<uintptr_t, size_t> pinned; /* base -> bytes */
static std::vector<pending_copy> pending;

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned)
{
    *p = NULL;
    if (cudaError_t e = emu_capture_forbids("cudaHostAlloc")) return e;
    if (emu_host_alloc_fail > 0) {
        emu_host_alloc_fail--;
        return cudaErrorMemoryAllocation;
    }
    if (!(*p = malloc(bytes ? bytes : 1))) return cudaErrorMemoryAllocation;
    pinned[(uintptr_t)*p] = bytes ? bytes : 1;
    emu_pinned_live++;
    return cudaSuccess;
}

/* As on a GPU, freeing page-locked memory waits for the device first. */
cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    if (cudaError_t e = emu_capture_forbids("cudaFreeHost")) return e;
    auto it = pinned.find((uintptr_t)p);
    if (it == pinned.end()) {
        emu_violation("cudaFreeHost(%p): not a live cudaHostAlloc block", p);
        return cudaErrorInvalidValue;
    }
    emu_side_run_all(); /* the device is synchronised: queued copies from p run first */
    emu_pinned_check("cudaFreeHost");
    pinned.erase(it);
    emu_pinned_live--;
    free(p);
    return cudaSuccess;
}

int emu_pinned_check(const char *at)
{
    int changed = 0;
    for (const pending_copy &c : pending)
        if (source_changed(c)) {
            emu_violation("%s: the page-locked source of a cudaMemcpyAsync (%zu bytes at %p) changed before the "
                          "stream was synchronised (on a GPU the copy may read either contents)",
                          at, c.bytes, (const void *)c.src);
            changed++;
        }
    pending.clear();
    return changed;
}

/* memcpy, not memmove: overlapping copies are undefined on the device too
 * (ASan reports them). */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
    const bool side = kind == cudaMemcpyHostToDevice && emu_stream_is_side(s);
    if (!side) emu_stream_ordinary(s);
    int good = 1;
    switch (kind) {
    case cudaMemcpyHostToDevice: good = host_ok(src, bytes, "cudaMemcpyAsync source") && dev_ok(dst, bytes, "cudaMemcpyAsync destination"); break;
    case cudaMemcpyDeviceToHost: good = dev_ok(src, bytes, "cudaMemcpyAsync source") && host_ok(dst, bytes, "cudaMemcpyAsync destination"); break;
    case cudaMemcpyDeviceToDevice: good = dev_ok(src, bytes, "cudaMemcpyAsync source") && dev_ok(dst, bytes, "cudaMemcpyAsync destination"); break;
    default: good = !emu_strict; break;
    }
    if (!good) return cudaErrorInvalidValue;
    if (kind == cudaMemcpyDeviceToDevice) {
        if (bytes && capture_state == NOT_CAPTURING) note_device_read(src, bytes);
        return emu_stream_do("cudaMemcpyAsync", [=] { memcpy(dst, src, bytes); });
    }
    if (cudaError_t e = emu_capture_forbids("cudaMemcpyAsync to or from the host")) return e;
    if (side) {
        if (bytes) side_queue(s, dst, src, bytes, inside_one(pinned, src, bytes));
        return cudaSuccess;
    }
    memcpy(dst, src, bytes);
    if (kind == cudaMemcpyHostToDevice && bytes && inside_one(pinned, src, bytes))
        pending.push_back(pending_from(src, bytes));
    return cudaSuccess;
}

/* Freed blocks are kept and handed out again, oldest first among those of
 * the same size, as the stream-ordered pool of a GPU reuses addresses: a
 * buffer released and allocated again (a new memory plan) may well get its
 * old address back, which a recorded graph cannot tell from the original.
 * The latest freed block of the size is reused first (as a pool would, hot
 * in cache).
 * Under ASan a kept block is poisoned, so a use after free still shows. */
/* bytes -> block; never destroyed, as emu_trim runs in a destructor at exit */
static std::multimap<size_t, void *> &kept = *new std::multimap<size_t, void *>;
static size_t kept_bytes;
enum { KEEP_MAX = 64 << 20 };

static void *reuse(size_t bytes)
{
    auto range = kept.equal_range(bytes);
    if (range.first == range.second) return nullptr;
    auto it = std::prev(range.second); /* the last of its size: the latest freed */
    void *p = it->second;
    kept.erase(it);
    kept_bytes -= bytes;
#if EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#endif
    return p;
}

static void keep_or_free(void *p, size_t bytes)
{
    if (kept_bytes + bytes > KEEP_MAX) {
        free(p);
        return;
    }
#if EMU_ASAN
    ASAN_POISON_MEMORY_REGION(p, bytes);
#endif
    kept.emplace(bytes, p);
    kept_bytes += bytes;
}

void emu_trim(void)
{
    for (auto &k : kept) {
#if EMU_ASAN
        ASAN_UNPOISON_MEMORY_REGION(k.second, k.first);
#endif
        free(k.second);
    }
    kept.clear();
    kept_bytes = 0;
}

cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s)
{
    emu_stream_ordinary(s);
    if (cudaError_t e = emu_capture_forbids("cudaMallocAsync")) {
        *p = NULL;
        return e;
    }
    if (!bytes) bytes = 1;
    if (!(*p = reuse(bytes)) && !(*p = malloc(bytes))) return cudaErrorMemoryAllocation;
    live[(uintptr_t)*p] = bytes;
    serial[(uintptr_t)*p] = ++next_serial;
    emu_live_allocs++;
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void *p, cudaStream_t s)
{
    emu_stream_ordinary(s);
    if (!p) return cudaSuccess;
    if (cudaError_t e = emu_capture_forbids("cudaFreeAsync")) return e;
    auto it = live.find((uintptr_t)p);
    if (it == live.end()) {
        emu_violation("cudaFreeAsync(%p): not a live allocation (double free, or not from cudaMallocAsync)", p);
        return cudaErrorInvalidValue;
    }
    size_t bytes = it->second;
    live.erase(it);
    serial.erase((uintptr_t)p);
    emu_live_allocs--;
    keep_or_free(p, bytes);
    return cudaSuccess;
}
