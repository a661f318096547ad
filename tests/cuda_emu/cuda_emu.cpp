/* cuda_emu.cpp: the runtime of cuda_emu.h. One pool of THREADS threads for
 * the whole run (starting 256 threads per launch would cost more than the
 * kernels): a launch hands every thread the kernel body and the grid, each
 * thread runs its part of block 0, 1, ... with a barrier after each block,
 * and the launching thread waits for all of them. A launch that does not
 * finish within EMU_WATCHDOG_S (a __syncthreads not reached by every thread
 * of a block deadlocks the barrier) ends the run with a TAP "Bail out!". */
#include "cuda_emu.h"

#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
size_t emu_idx_limit = (size_t)1 << 31;
size_t emu_max_blocks = 65535;
size_t emu_mse_blocks = 1024;
unsigned long emu_launches;
int emu_malloc_fail;
long emu_live_allocs;

enum { EMU_WATCHDOG_S = 60 };

static cudaError_t last_error = cudaSuccess;

namespace {

struct pool {
    unsigned n = 0;
    std::vector<std::thread> threads;
    std::barrier<> *bar = nullptr; /* the block's barrier: __syncthreads and block ends */
    std::atomic<unsigned long> gen{0}; /* bumped to start a launch (or to quit) */
    std::atomic<unsigned> running{0};
    const std::function<void()> *body = nullptr;
    unsigned grid = 0;
    bool quit = false;
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;

    void work(unsigned t)
    {
        threadIdx = {t, 0, 0};
        unsigned long seen = 0;
        for (;;) {
            gen.wait(seen, std::memory_order_acquire);
            seen = gen.load(std::memory_order_acquire);
            if (quit) return;
            for (unsigned g = 0; g < grid; g++) {
                blockIdx = {g, 0, 0};
                (*body)();
                bar->arrive_and_wait(); /* the block's shared memory is free for the next one */
            }
            if (running.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lk(mu);
                done = true;
                done_cv.notify_one();
            }
        }
    }

    void start(unsigned threads)
    {
        n = threads;
        bar = new std::barrier<>(threads);
        for (unsigned t = 0; t < threads; t++) this->threads.emplace_back(&pool::work, this, t);
    }

    /* Runs one launch; 0 when the watchdog fired. */
    int run(unsigned g, const std::function<void()> &f)
    {
        body = &f;
        grid = g;
        done = false;
        running.store(n, std::memory_order_relaxed);
        gen.fetch_add(1, std::memory_order_release);
        gen.notify_all();
        std::unique_lock<std::mutex> lk(mu);
        return done_cv.wait_for(lk, std::chrono::seconds(EMU_WATCHDOG_S), [this] { return done; });
    }

    ~pool()
    {
        if (!n) return;
        quit = true;
        gen.fetch_add(1, std::memory_order_release);
        gen.notify_all();
        for (auto &t : threads) t.join();
        delete bar;
    }
};

pool the_pool;

} // namespace

void emu_launch(const char *name, unsigned grid, unsigned threads, std::function<void()> body)
{
    if (grid == 0 || grid > 0x7fffffffu || threads == 0 || threads > 1024) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (the_pool.n == 0) the_pool.start(threads);
    if (threads != the_pool.n) { /* kernels.cu launches THREADS everywhere */
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    emu_launches++;
    blockDim = {threads, 1, 1};
    gridDim = {grid, 1, 1};
    if (!the_pool.run(grid, body)) {
        printf("Bail out! %s (grid %u) did not finish in %d s: a __syncthreads not reached by every thread?\n",
               name, grid, (int)EMU_WATCHDOG_S);
        fflush(stdout);
        _exit(2); /* the pool's threads are stuck: no clean exit */
    }
}

void __syncthreads(void) { the_pool.bar->arrive_and_wait(); }

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

int cu_check(backend *b, cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 0;
    cuda_ctx *cx = CX(b);
    if (!cx->failed) {
        cx->failed = 1;
        snprintf(cx->err, sizeof cx->err, "%s: emulated CUDA error %d", what, (int)e);
    }
    return 1;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t)
{
    memset(p, v, bytes);
    return cudaSuccess;
}

/* memcpy, not memmove: overlapping copies are undefined on the device too
 * (ASan reports them). */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind, cudaStream_t)
{
    memcpy(dst, src, bytes);
    return cudaSuccess;
}

/* emu_malloc_fail: the next allocation fails (the test of k_mse's error path). */
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t)
{
    if (emu_malloc_fail) {
        emu_malloc_fail = 0;
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    if (!(*p = malloc(bytes ? bytes : 1))) return cudaErrorMemoryAllocation;
    emu_live_allocs++;
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void *p, cudaStream_t)
{
    if (p) emu_live_allocs--;
    free(p);
    return cudaSuccess;
}
