/* s4tf_py's C runtime: what compiled kernels call.
 *
 * A plain C ABI (no C++ names, no Python objects), so JIT code from the LLVM backend can call
 * these functions by address. The Python loader (s4tf_py/runtime.py) exposes the addresses.
 *
 *   - a 64-byte aligned allocator (cache line and AVX-512 vector width);
 *   - a persistent thread pool: s4tf_parallel_for splits [0, n) into contiguous ranges, one
 *     per participating thread (the caller runs the first range itself);
 *   - the thread count: S4TF_NUM_THREADS at start-up, else the CPUs this process may use.
 */
#ifndef S4TF_RUNTIME_H
#define S4TF_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S4TF_RUNTIME_ABI_VERSION 1
#define S4TF_ALIGNMENT 64

/* A range body: handle the indices [begin, end). ctx is passed through unchanged. */
typedef void (*s4tf_range_fn)(void *ctx, int64_t begin, int64_t end);

int s4tf_runtime_abi_version(void);

/* Aligned memory. s4tf_aligned_alloc never returns a pointer for 0 bytes that equals another
 * live allocation; it returns NULL only when memory is exhausted. */
void *s4tf_aligned_alloc(size_t nbytes);
void *s4tf_aligned_calloc(size_t nbytes);
void s4tf_aligned_free(void *p);
size_t s4tf_alignment(void);
int64_t s4tf_live_bytes(void);        /* bytes currently held by s4tf_aligned_alloc */

/* Threads. */
int s4tf_num_threads(void);
void s4tf_set_num_threads(int n);     /* n <= 0: back to the default */
int s4tf_default_num_threads(void);
int s4tf_thread_index(void);          /* 0 on the calling thread, 1.. on pool workers */

/* Run fn over [0, n) on up to s4tf_num_threads() threads and return when all ranges are done.
 * Ranges are contiguous and cover [0, n) exactly once. A call made from inside a parallel
 * region (or while another thread's region is running) runs serially on the calling thread. */
void s4tf_parallel_for(int64_t n, s4tf_range_fn fn, void *ctx);
/* As s4tf_parallel_for, but no range is shorter than grain (except the last): small loops
 * stay on fewer threads. */
void s4tf_parallel_for_grain(int64_t n, int64_t grain, s4tf_range_fn fn, void *ctx);

/* One step of a compiled program: fn over [0, n), on the pool when parallel is non-zero. */
typedef struct {
    s4tf_range_fn fn;
    void *ctx;
    int64_t n;
    int64_t parallel;
} s4tf_step;

/* Run steps[0..count) in order (each as s4tf_parallel_for or a plain call): a run of kernels
 * between two host steps is one call from Python instead of one call per kernel. */
void s4tf_run_steps(const s4tf_step *steps, int64_t count);

/* A scatter along one axis (the LLVM backend's KV-cache writes and embedding gradients): x
 * viewed as [outer, n, inner], updates as [outer, count, inner] (inner in bytes), indices
 * flattened to count int32 or int64 values. Row o of out becomes row o of x with slice idx[j]
 * replaced by (combine 0) or added with (combine 1: float32, combine 2: float64) updates'
 * slice j, in order of j (later sets win; indices outside [0, n) are dropped, as XLA does).
 * The four pointers come first, in the order of a kernel's buffer table (inputs, then the
 * output); out is NULL when the scatter writes into x itself. s4tf_scatter is its range body
 * over rows of outer, with ctx pointing at this struct. */
typedef struct {
    const void *x;
    const void *indices;
    const void *updates;
    void *out;
    int64_t outer;
    int64_t n;
    int64_t count;
    int64_t inner_bytes;
    int64_t index_bytes;    /* 4 or 8 */
    int64_t combine;        /* 0 set, 1 add float32, 2 add float64 */
} s4tf_scatter_args;

void s4tf_scatter(void *ctx, int64_t begin, int64_t end);

/* Copies of regions (the LLVM backend's concatenate, slice and pad): ctx points at an
 * s4tf_copy_args whose ptrs table holds the n_src sources, then (when fill) a pointer to one
 * fill element, then the destination. params: n_src, ndim, elem_bytes, fill, dst_bytes, then
 * per source its shape[ndim], source strides[ndim] and destination strides[ndim] (bytes), its
 * source offset and destination offset (bytes). With fill, the destination is first filled
 * with the element; then each source's region is copied to its place (contiguous innermost
 * runs as one memcpy). Runs on the calling thread; begin/end are ignored. */
typedef struct {
    void **ptrs;
    const int64_t *params;
} s4tf_copy_args;

void s4tf_copy_regions(void *ctx, int64_t begin, int64_t end);

/* BLAS thread counts: JIT gemm kernels call a "set this thread's BLAS threads to 1" function
 * before each gemm (MKL's MKL_Set_Num_Threads_Local, which leaves the process-wide setting
 * alone); this stands in for libraries without one. Returns n. */
int s4tf_blas_threads_local_noop(int n);

/* Diagnostics: out[i] = i and thread_of[i] = the s4tf_thread_index() that wrote it, in
 * parallel with s4tf_parallel_for (either pointer may be NULL). */
void s4tf_parallel_iota(int64_t n, int64_t *out, int32_t *thread_of);

#ifdef __cplusplus
}
#endif
#endif
