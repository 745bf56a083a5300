/* s4tf_py's C runtime: aligned allocator and thread pool. See s4tf_runtime.h. */
#define _GNU_SOURCE
#include "s4tf_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define S4TF_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define S4TF_PAUSE() __asm__ __volatile__("yield")
#else
#define S4TF_PAUSE() ((void)0)
#endif

#define S4TF_MAX_THREADS 1024
/* pause iterations the caller spins waiting for the workers before it sleeps */
#define S4TF_SPIN 4000
/* How long an idle worker spins (yielding the core to any other runnable thread) before it
 * sleeps on a condition variable. A training step's parallel kernels come tens to hundreds of
 * microseconds apart (BLAS calls, numpy host steps in between), and waking a sleeping thread
 * costs ~50 us in a VM: a worker that slept after 60 us (the old fixed spin) made the next
 * kernel pay that wake-up. OpenMP runtimes and OpenBLAS spin for milliseconds too.
 * S4TF_SPIN_US overrides it (0: sleep at once). */
#define S4TF_DEFAULT_SPIN_US 2000

#include <time.h>

static int64_t g_spin_ns = -1;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t spin_ns(void) {
    if (g_spin_ns < 0) {
        const char *env = getenv("S4TF_SPIN_US");
        long us = env && *env ? atol(env) : S4TF_DEFAULT_SPIN_US;
        g_spin_ns = us < 0 ? 0 : (int64_t)us * 1000;
    }
    return g_spin_ns;
}

int s4tf_runtime_abi_version(void) { return S4TF_RUNTIME_ABI_VERSION; }

/* ---- aligned allocator ------------------------------------------------------------------- */
/* Each block starts with a 64-byte header holding its size, so frees can keep the count of
 * live bytes; the caller's pointer is the byte after the header, hence 64-byte aligned. */

static _Atomic int64_t g_live_bytes = 0;

void *s4tf_aligned_alloc(size_t nbytes) {
    void *raw = NULL;
    if (nbytes > SIZE_MAX - 2 * S4TF_ALIGNMENT) return NULL;
    if (posix_memalign(&raw, S4TF_ALIGNMENT, nbytes + S4TF_ALIGNMENT) != 0) return NULL;
    *(size_t *)raw = nbytes;
    atomic_fetch_add_explicit(&g_live_bytes, (int64_t)nbytes, memory_order_relaxed);
    return (char *)raw + S4TF_ALIGNMENT;
}

void *s4tf_aligned_calloc(size_t nbytes) {
    void *p = s4tf_aligned_alloc(nbytes);
    if (p != NULL) memset(p, 0, nbytes);
    return p;
}

void s4tf_aligned_free(void *p) {
    if (p == NULL) return;
    char *raw = (char *)p - S4TF_ALIGNMENT;
    atomic_fetch_sub_explicit(&g_live_bytes, (int64_t)*(size_t *)raw, memory_order_relaxed);
    free(raw);
}

size_t s4tf_alignment(void) { return S4TF_ALIGNMENT; }

int64_t s4tf_live_bytes(void) { return atomic_load_explicit(&g_live_bytes, memory_order_relaxed); }

/* ---- thread count ------------------------------------------------------------------------ */

static int g_requested = 0;            /* 0: the default */

int s4tf_default_num_threads(void) {
    const char *env = getenv("S4TF_NUM_THREADS");
    if (env != NULL && *env != '\0') {
        int v = atoi(env);
        if (v > 0) return v > S4TF_MAX_THREADS ? S4TF_MAX_THREADS : v;
    }
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c > S4TF_MAX_THREADS ? S4TF_MAX_THREADS : c;
    }
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) c = 1;
    return c > S4TF_MAX_THREADS ? S4TF_MAX_THREADS : (int)c;
}

static int effective_threads(void) {
    int r = __atomic_load_n(&g_requested, __ATOMIC_RELAXED);
    return r > 0 ? r : s4tf_default_num_threads();
}

int s4tf_num_threads(void) { return effective_threads(); }

/* ---- thread pool ------------------------------------------------------------------------- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;       /* pool state and the job */
static pthread_cond_t g_work_cv = PTHREAD_COND_INITIALIZER;    /* a new job or shutdown */
static pthread_cond_t g_done_cv = PTHREAD_COND_INITIALIZER;    /* the last worker finished */
static pthread_mutex_t g_region = PTHREAD_MUTEX_INITIALIZER;   /* held while a job runs */
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static pthread_t g_threads[S4TF_MAX_THREADS];
static int g_nworkers = 0;                 /* started workers (threads besides the caller) */
static _Atomic uint64_t g_generation = 0;  /* bumped for every job */
static int g_shutdown = 0;
static uint64_t g_start_generation[S4TF_MAX_THREADS];

/* the current job (written under g_mu before g_generation is bumped) */
static s4tf_range_fn g_fn;
static void *g_ctx;
static int64_t g_n;
static int g_parts;
static _Atomic int g_pending = 0;          /* parts (besides the caller's) not finished */
/* g_claim[p]: the newest job generation whose part p somebody has taken. A part is run by
 * whoever claims it first, its worker or (once its own part is done) the caller: when a worker
 * is slow to wake (another process has its core), the caller does that part itself instead of
 * waiting a whole scheduler time slice. Claims only move forward, so a worker waking late for
 * a finished job can never take a part of a newer one. */
static _Atomic uint64_t g_claim[S4TF_MAX_THREADS];

static int claim_part(int p, uint64_t generation) {
    uint64_t old = atomic_load_explicit(&g_claim[p], memory_order_acquire);
    while (old < generation) {
        if (atomic_compare_exchange_weak_explicit(&g_claim[p], &old, generation,
                                                  memory_order_acq_rel, memory_order_acquire))
            return 1;
    }
    return 0;
}

static __thread int t_index = 0;
static __thread int t_in_region = 0;

int s4tf_thread_index(void) { return t_index; }

int s4tf_blas_threads_local_noop(int n) { return n; }

static void part_range(int64_t n, int parts, int p, int64_t *begin, int64_t *end) {
    int64_t q = n / parts, r = n % parts;
    *begin = (int64_t)p * q + (p < r ? p : r);
    *end = *begin + q + (p < r ? 1 : 0);
}

/* The CPU the caller of the current job runs on. A worker that finds itself on that CPU
 * (the scheduler often puts a freshly woken thread there) moves to the others: two halves of a
 * parallel loop on one core run no faster than one (measured: 256^3 gemm 0.35 ms split vs
 * 0.25 ms serial). Pinning workers to fixed CPUs instead left the caller sharing a worker's
 * CPU just as often. S4TF_PIN_THREADS=0 turns the move off. */
static int g_caller_cpu = -1;
static int g_move_off = -1;

static void avoid_caller_cpu(int caller) {
    if (g_move_off < 0) {
        const char *env = getenv("S4TF_PIN_THREADS");
        g_move_off = !(env && *env == '0');
    }
    if (!g_move_off || caller < 0 || sched_getcpu() != caller) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    if (CPU_COUNT(&allowed) < 2 || !CPU_ISSET(caller, &allowed)) {
        /* an earlier move excluded another CPU: start again from the process's CPUs */
        if (sched_getaffinity(getpid(), sizeof(allowed), &allowed) != 0) return;
        if (CPU_COUNT(&allowed) < 2) return;
    }
    CPU_CLR(caller, &allowed);
    sched_setaffinity(0, sizeof(allowed), &allowed);
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    t_index = index;
    t_in_region = 1;                        /* nested parallel_for inside a body: serial */
    /* the generation when this worker was created: a job published after that is ours, even
     * one published before this thread got to run */
    uint64_t seen = g_start_generation[index];
    for (;;) {
        /* spin a while (jobs come back to back within a step), yielding the core to any
         * other runnable thread, then sleep */
        int64_t deadline = now_ns() + spin_ns();
        for (int i = 0; atomic_load_explicit(&g_generation, memory_order_acquire) == seen; i++) {
            S4TF_PAUSE();
            if ((i & 63) == 63) {
                if (now_ns() >= deadline) break;
                sched_yield();
            }
        }
        pthread_mutex_lock(&g_mu);
        while (!g_shutdown && atomic_load(&g_generation) == seen)
            pthread_cond_wait(&g_work_cv, &g_mu);
        if (g_shutdown) {
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        seen = atomic_load(&g_generation);
        s4tf_range_fn fn = g_fn;
        void *ctx = g_ctx;
        int64_t n = g_n;
        int parts = g_parts;
        int caller = g_caller_cpu;
        pthread_mutex_unlock(&g_mu);
        if (index < parts && claim_part(index, seen)) {
            avoid_caller_cpu(caller);
            int64_t b, e;
            part_range(n, parts, index, &b, &e);
            if (e > b) fn(ctx, b, e);
            if (atomic_fetch_sub_explicit(&g_pending, 1, memory_order_acq_rel) == 1) {
                pthread_mutex_lock(&g_mu);
                pthread_cond_signal(&g_done_cv);
                pthread_mutex_unlock(&g_mu);
            }
        }
    }
}

/* After fork() only the forking thread exists: forget the workers (they are gone) and reset
 * the locks, which another thread may have held at the moment of the fork. */
static void atfork_child(void) {
    pthread_mutex_init(&g_mu, NULL);
    pthread_mutex_init(&g_region, NULL);
    pthread_cond_init(&g_work_cv, NULL);
    pthread_cond_init(&g_done_cv, NULL);
    g_nworkers = 0;
    g_shutdown = 0;
    atomic_store(&g_pending, 0);
    t_in_region = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, atfork_child); }

/* Stop every worker (caller holds g_region, so no job is running). */
static void stop_pool(void) {
    pthread_mutex_lock(&g_mu);
    int n = g_nworkers;
    g_shutdown = 1;
    pthread_cond_broadcast(&g_work_cv);
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < n; i++) pthread_join(g_threads[i], NULL);
    pthread_mutex_lock(&g_mu);
    g_nworkers = 0;
    g_shutdown = 0;
    pthread_mutex_unlock(&g_mu);
}

/* Make sure `want` workers run (caller holds g_region). Returns how many do. */
static int ensure_workers(int want) {
    pthread_once(&g_atfork_once, register_atfork);
    if (want > S4TF_MAX_THREADS - 1) want = S4TF_MAX_THREADS - 1;
    if (g_nworkers > want) stop_pool();
    while (g_nworkers < want) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)8 << 20);
        g_start_generation[g_nworkers + 1] = atomic_load(&g_generation);
        int rc = pthread_create(&g_threads[g_nworkers], &attr, worker_main,
                                (void *)(intptr_t)(g_nworkers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;                 /* run with the workers we have */
        pthread_mutex_lock(&g_mu);
        g_nworkers++;
        pthread_mutex_unlock(&g_mu);
    }
    return g_nworkers;
}

void s4tf_set_num_threads(int n) {
    if (n > S4TF_MAX_THREADS) n = S4TF_MAX_THREADS;
    if (n < 0) n = 0;
    if (t_in_region) {                      /* cannot resize the pool from inside a job */
        __atomic_store_n(&g_requested, n, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&g_region);
    __atomic_store_n(&g_requested, n, __ATOMIC_RELAXED);
    if (g_nworkers > effective_threads() - 1) stop_pool();   /* restarted lazily */
    pthread_mutex_unlock(&g_region);
}

void s4tf_parallel_for_grain(int64_t n, int64_t grain, s4tf_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = effective_threads();
    int64_t max_parts = n / grain;
    int parts = max_parts < threads ? (int)max_parts : threads;
    if (parts <= 1 || t_in_region || pthread_mutex_trylock(&g_region) != 0) {
        fn(ctx, 0, n);                      /* small, nested, or the pool is busy: serial */
        return;
    }
    t_in_region = 1;
    int workers = ensure_workers(threads - 1);
    if (parts > workers + 1) parts = workers + 1;
    uint64_t generation = 0;
    if (parts > 1) {
        pthread_mutex_lock(&g_mu);
        g_fn = fn;
        g_ctx = ctx;
        g_n = n;
        g_parts = parts;
        g_caller_cpu = sched_getcpu();
        atomic_store(&g_pending, parts - 1);
        generation = atomic_fetch_add_explicit(&g_generation, 1, memory_order_release) + 1;
        pthread_cond_broadcast(&g_work_cv);
        pthread_mutex_unlock(&g_mu);
    }
    int64_t b, e;
    part_range(n, parts, 0, &b, &e);
    fn(ctx, b, e);
    if (parts > 1) {
        /* parts whose worker has not started yet: run them here */
        for (int p = 1; p < parts; p++) {
            if (claim_part(p, generation)) {
                part_range(n, parts, p, &b, &e);
                if (e > b) fn(ctx, b, e);
                atomic_fetch_sub_explicit(&g_pending, 1, memory_order_acq_rel);
            }
        }
        for (int i = 0; i < S4TF_SPIN && atomic_load_explicit(&g_pending, memory_order_acquire) > 0; i++)
            S4TF_PAUSE();
        pthread_mutex_lock(&g_mu);
        while (atomic_load(&g_pending) > 0) pthread_cond_wait(&g_done_cv, &g_mu);
        pthread_mutex_unlock(&g_mu);
    }
    t_in_region = 0;
    pthread_mutex_unlock(&g_region);
}

void s4tf_parallel_for(int64_t n, s4tf_range_fn fn, void *ctx) {
    s4tf_parallel_for_grain(n, 1, fn, ctx);
}

void s4tf_run_steps(const s4tf_step *steps, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const s4tf_step *s = &steps[i];
        if (s->parallel) s4tf_parallel_for(s->n, s->fn, s->ctx);
        else s->fn(s->ctx, 0, s->n);
    }
}

void s4tf_scatter(void *ctx, int64_t begin, int64_t end) {
    const s4tf_scatter_args *a = (const s4tf_scatter_args *)ctx;
    const int64_t inner = a->inner_bytes;
    char *out = a->out ? (char *)a->out : (char *)a->x;
    for (int64_t o = begin; o < end; o++) {
        char *row = out + o * a->n * inner;
        if (a->out) memcpy(row, (const char *)a->x + o * a->n * inner, (size_t)(a->n * inner));
        const char *upd = (const char *)a->updates + o * a->count * inner;
        for (int64_t j = 0; j < a->count; j++) {
            int64_t i = a->index_bytes == 8 ? ((const int64_t *)a->indices)[j]
                                            : (int64_t)((const int32_t *)a->indices)[j];
            if (i < 0 || i >= a->n) continue;
            char *dst = row + i * inner;
            const char *src = upd + j * inner;
            if (a->combine == 0) {
                memcpy(dst, src, (size_t)inner);
            } else if (a->combine == 1) {
                float *d = (float *)dst;
                const float *s = (const float *)src;
                for (int64_t k = 0; k < inner / 4; k++) d[k] += s[k];
            } else {
                double *d = (double *)dst;
                const double *s = (const double *)src;
                for (int64_t k = 0; k < inner / 8; k++) d[k] += s[k];
            }
        }
    }
}

void s4tf_copy_regions(void *ctx, int64_t begin, int64_t end) {
    (void)begin;
    (void)end;
    const s4tf_copy_args *a = (const s4tf_copy_args *)ctx;
    const int64_t *p = a->params;
    const int64_t n_src = p[0], ndim = p[1], elem = p[2], fill = p[3], dst_bytes = p[4];
    char *dst = (char *)a->ptrs[n_src + (fill ? 1 : 0)];
    if (fill && dst_bytes > 0) {
        const char *value = (const char *)a->ptrs[n_src];
        int64_t done = elem < dst_bytes ? elem : dst_bytes;
        memcpy(dst, value, (size_t)done);
        while (done < dst_bytes) {         /* doubling copies of the filled prefix */
            int64_t n = done < dst_bytes - done ? done : dst_bytes - done;
            memcpy(dst + done, dst, (size_t)n);
            done += n;
        }
    }
    const int64_t *q = p + 5;
    for (int64_t s = 0; s < n_src; s++, q += 3 * ndim + 2) {
        const int64_t *shape = q, *ss = q + ndim, *ds = q + 2 * ndim;
        const char *src = (const char *)a->ptrs[s] + q[3 * ndim];
        char *out = dst + q[3 * ndim + 1];
        int64_t count = 1;
        for (int64_t d = 0; d < ndim; d++) count *= shape[d];
        if (count == 0) continue;
        if (ndim == 0) {
            memcpy(out, src, (size_t)elem);
            continue;
        }
        const int64_t inner = shape[ndim - 1];
        const int run = ss[ndim - 1] == elem && ds[ndim - 1] == elem;
        int64_t idx[16] = {0};
        for (int64_t r = 0; r < count / inner; r++) {
            int64_t so = 0, dof = 0;
            for (int64_t d = 0; d < ndim - 1; d++) {
                so += idx[d] * ss[d];
                dof += idx[d] * ds[d];
            }
            if (run) {
                memcpy(out + dof, src + so, (size_t)(inner * elem));
            } else {
                for (int64_t i = 0; i < inner; i++)
                    memcpy(out + dof + i * ds[ndim - 1], src + so + i * ss[ndim - 1], (size_t)elem);
            }
            for (int64_t d = ndim - 2; d >= 0; d--) {   /* next row: odometer over outer dims */
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }
}

/* ---- diagnostics ------------------------------------------------------------------------- */

struct iota_ctx { int64_t *out; int32_t *thread_of; };

static void iota_body(void *ctx, int64_t begin, int64_t end) {
    struct iota_ctx *c = (struct iota_ctx *)ctx;
    int who = s4tf_thread_index();
    for (int64_t i = begin; i < end; i++) {
        if (c->out) c->out[i] = i;
        if (c->thread_of) c->thread_of[i] = who;
    }
}

void s4tf_parallel_iota(int64_t n, int64_t *out, int32_t *thread_of) {
    struct iota_ctx c = {out, thread_of};
    s4tf_parallel_for(n, iota_body, &c);
}
