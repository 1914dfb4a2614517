// Optional native GEMM for Node on Linux: a thin N-API bridge to a BLAS-like sgemm found at run
// time (oneDNN's dnnl_sgemm, else OpenBLAS's cblas_sgemm, both from the distribution's packages).
// The library is dlopen'ed, not linked, so this addon builds without any BLAS headers and a
// machine without the library just reports "not available". Operands are Float32Arrays (views of
// the wasm memory or ordinary arrays); nothing is copied except weights stored as bf16/f16/q8/q4,
// which are widened to f32 a block at a time (exact: every such value is an f32), on CPUs with
// AVX2 straight into the layout of this file's own kernel (see "widened weights" below).
//
// Mixed precision (gemmBf16): both operands are rounded to bf16 (nearest even, the formula of
// src/core/dtype.ts, so every path rounds alike) and multiplied with f32 accumulation by the
// library's bf16 GEMM (oneDNN's dnnl_gemm_bf16bf16f32, AVX512-BF16; OpenBLAS's cblas_sbgemm). A
// library without one gets the same rounded operands through its sgemm: the same products (a bf16
// product is exact in f32), no speed-up. Where oneDNN 2.x runs its matmul primitive on AMX tiles
// (the BLAS-like call does not use them), each block goes through that primitive instead (see
// "AMX" below; opt-in with OPENELM_AMX=on): up to twice the throughput of a single product, the
// same rounded operands and f32 sums.
//
// Threads: a product is cut into column (or row) blocks whose size depends only on its shape, and
// this file's own threads claim blocks one at a time, each running the library's single-threaded
// sgemm. The library's own OpenMP parallelism splits statically and waits at a barrier for every
// thread, so one descheduled thread on a busy machine stalled each call (prefill fell below the
// WASM kernels under load); with claimed blocks the caller finishes whatever is left and never
// waits for a thread that has not started, and the sums do not depend on the thread count.

#define NAPI_VERSION 8
#include <node_api.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <math.h>
#include <immintrin.h>

typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                             const float *, int64_t, float, float *, int64_t);
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                               float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*dnnl_bf16_fn)(char, char, int64_t, int64_t, int64_t, float, const uint16_t *, int64_t,
                            const uint16_t *, int64_t, float, float *, int64_t);
typedef void (*cblas_sbgemm_fn)(int, int, int, int, int, int, float, const uint16_t *, int, const uint16_t *, int,
                                float, float *, int);

static dnnl_sgemm_fn g_dnnl = NULL;
static cblas_sgemm_fn g_cblas = NULL;
static set_threads_fn g_blas_threads = NULL;
static dnnl_bf16_fn g_dnnl_bf16 = NULL;
static cblas_sbgemm_fn g_cblas_bf16 = NULL;
static int g_i8 = -1;                          // AVX512-VNNI present for the int8 prefill (-1: not checked yet)
static char g_lib[512] = "";
static int g_threads = 1;
static float g_f16[65536];

// ---------------------------------------------------------------------------------- thread pool

#define MAX_THREADS 64
typedef void (*chunk_fn)(const void *job, int64_t chunk, int tid);
static struct {
  _Atomic uint32_t gen;        // bumped per job; workers wait on it (futex)
  _Atomic uint64_t claim;      // (gen << 32) | next chunk
  _Atomic int64_t done;        // chunks finished in the current job
  _Atomic int sleepers;
  _Atomic int quit;
  chunk_fn fn; const void *job; int64_t nchunks;
  pthread_t tids[MAX_THREADS];
  int nworkers;
  uint32_t start_gen;          // gen when the workers were created (see worker())
} P;

static float *g_panels[MAX_THREADS];
static size_t g_panel_cap[MAX_THREADS];

static void futex_wait(_Atomic uint32_t *a, uint32_t v) { syscall(SYS_futex, (uint32_t *)a, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0); }
static void futex_wake(_Atomic uint32_t *a) { syscall(SYS_futex, (uint32_t *)a, FUTEX_WAKE_PRIVATE, MAX_THREADS, NULL, NULL, 0); }
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }

// profile(true) counts where the products' threads spend their CPU time (bench/train.bench.ts
// --profile): rounding operands to bf16 or widening stored weights to f32 ("round"), the library's
// products or the widened kernel's tiles ("gemm"), adding AMX column blocks to C ("copy").
enum { PROF_ROUND, PROF_GEMM, PROF_COPY, PROF_N };
static int g_prof;
static _Atomic int64_t g_prof_ns[PROF_N];
static inline int64_t prof_now(void) {
  if (!g_prof) return 0;
  struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}
static inline void prof_add(int what, int64_t t0) {
  if (g_prof) atomic_fetch_add_explicit(&g_prof_ns[what], prof_now() - t0, memory_order_relaxed);
}

// Claim and run chunks of job `gen` until none are left.
static void drain(uint32_t gen, int tid) {
  for (;;) {
    uint64_t c = atomic_load_explicit(&P.claim, memory_order_acquire);
    if ((uint32_t)(c >> 32) != gen || (int64_t)(uint32_t)c >= P.nchunks) return;
    if (!atomic_compare_exchange_weak_explicit(&P.claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) continue;
    P.fn(P.job, (int64_t)(uint32_t)c, tid);
    atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
  }
}

static void *worker(void *arg) {
  const int tid = (int)(intptr_t)arg;
  omp_set_num_threads(1);   // the library's sgemm runs single-threaded inside a chunk
  // The generation at creation, not at whenever this thread first runs: a stop (or a job) that
  // bumps gen before the thread is scheduled must still be seen as new, or the join never returns.
  uint32_t seen = P.start_gen;
  for (;;) {
    // poll ~50 µs (the gap between the products of one step), then sleep
    double t0 = now_us();
    uint32_t g;
    while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
      if (now_us() - t0 > 50) {
        atomic_fetch_add(&P.sleepers, 1);
        if (atomic_load(&P.gen) == seen) futex_wait(&P.gen, seen);
        atomic_fetch_sub(&P.sleepers, 1);
        t0 = now_us();
      }
    }
    if (atomic_load(&P.quit)) return NULL;
    seen = g;
    drain(g, tid);
  }
}

static void pool_stop(void) {
  if (!P.nworkers) return;
  atomic_store(&P.quit, 1);
  atomic_fetch_add(&P.gen, 1);
  futex_wake(&P.gen);
  for (int i = 0; i < P.nworkers; i++) pthread_join(P.tids[i], NULL);
  P.nworkers = 0;
  atomic_store(&P.quit, 0);
}

static int pool_start(int threads) {
  pool_stop();
  P.start_gen = atomic_load(&P.gen);
  for (int i = 1; i < threads; i++) {
    if (pthread_create(&P.tids[P.nworkers], NULL, worker, (void *)(intptr_t)i) != 0) return 0;
    P.nworkers++;
  }
  return 1;
}

// Run fn over n chunks on this thread and the workers; returns when every chunk is done.
static void pool_run(chunk_fn fn, const void *job, int64_t n) {
  if (n <= 0) return;
  if (!P.nworkers || n == 1) { for (int64_t c = 0; c < n; c++) fn(job, c, 0); return; }
  P.fn = fn; P.job = job; P.nchunks = n;
  atomic_store_explicit(&P.done, 0, memory_order_relaxed);
  uint32_t gen = atomic_load(&P.gen) + 1;
  atomic_store_explicit(&P.claim, (uint64_t)gen << 32, memory_order_release);
  atomic_store_explicit(&P.gen, gen, memory_order_release);
  if (atomic_load(&P.sleepers) > 0) futex_wake(&P.gen);
  drain(gen, 0);
  // only chunks a worker claimed are still running; wait for those alone
  while (atomic_load_explicit(&P.done, memory_order_acquire) < n) sched_yield();
}

// q4's coded scales (src/backends/weight-format.ts): per row, D and M (f32), nb u8 scale codes, nb
// i8 min codes, padded to 4 bytes; a block's scale is D·sc and its min M·mc, each rounded to f32.
// Block weights as GGUF (and MLX, q4_1_f32) files store them, with the codes of kernels/blocks.as
// and the layouts of docs/formats.md: Q8_0 (8) 34-byte blocks [f16 d][32 int8], value d·q; Q4_0 (9)
// 18-byte blocks [f16 d][16 bytes: elements 0..15 the low nibbles, 16..31 the high ones], value
// d·(q − 8); Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, q4_1_f32 (10..16) decoded by decode_blocks, and
// Q4_K as the wasm backend holds it once loaded (17, src/backends/q4k-repack.ts: 152-byte
// super-blocks [f32 d][f32 dmin][8 scale bytes][8 min bytes][Q4_K's 128 nibble bytes]), and Q4_0
// as it holds it (19, src/backends/gguf-repack.ts: per row of nb blocks, their nb f16 d's, then
// their 16-byte nibble groups; 18 bytes a block). Rows are whole blocks (32 values, 256 for the K types).
#define KIND_Q8_0 8
#define KIND_Q4_0 9
#define KIND_Q4_1 10
#define KIND_Q5_0 11
#define KIND_Q5_1 12
#define KIND_Q4_K 13
#define KIND_Q5_K 14
#define KIND_Q6_K 15
#define KIND_Q4_1F 16
#define KIND_Q4_KR 17
// Q6_K as the wasm backend holds it once loaded (20, src/backends/q6k-repack.ts: 212-byte
// super-blocks, per group of 64 values three 16-byte vectors whose low 6 bits are levels L0..L2 and
// whose top 2 bits make L3, byte 4m + r of L_j being value 16m + 4j + r; then the 16 int8 scales
// and f32 d).
#define KIND_Q6_KR 20
#define KIND_Q4_0R 19
static inline int is_block_kind(int kind) { return (kind >= KIND_Q8_0 && kind <= KIND_Q4_KR) || kind == KIND_Q6_KR || kind == KIND_Q4_0R; }
static inline int64_t block_elems(int kind) { return (kind >= KIND_Q4_K && kind <= KIND_Q6_K) || kind == KIND_Q4_KR || kind == KIND_Q6_KR ? 256 : 32; }
static inline int64_t block_bytes(int kind) {
  if (kind == KIND_Q4_0R) return 18;
  static const int64_t b[] = { 34, 18, 20, 22, 24, 144, 176, 210, 24, 152 };
  return kind == KIND_Q6_KR ? 212 : b[kind - KIND_Q8_0];
}
// Bytes of stored weight data for elements [0, k) of a row (k a multiple of the block for block kinds), and for a whole row.
static inline int64_t kind_bytes(int kind, int64_t k) {
  return is_block_kind(kind) ? k / block_elems(kind) * block_bytes(kind) : kind == 0 ? 4 * k : kind <= 2 ? 2 * k : kind == 3 ? k : k / 2;
}

static int64_t q4_meta_bytes(int64_t K) { return 8 + ((K / 16 + 3) & ~(int64_t)3); }
static inline const uint8_t *q4_meta(const void *scales, int64_t row, int64_t K) { return (const uint8_t *)scales + row * q4_meta_bytes(K); }
static inline float q4_scale(const uint8_t *meta, int64_t b) { float d; memcpy(&d, meta, 4); return d * (float)meta[8 + b]; }
static inline float q4_min(const uint8_t *meta, int64_t nb, int64_t b) { float m; memcpy(&m, meta + 4, 4); return m * (float)(int8_t)meta[8 + nb + b]; }

#include "int8_linear.h"

static void amx_resolve(void *h);

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "openelm_native: N-API call failed"); return NULL; } } while (0)

static napi_value fail(napi_env env, const char *msg) { napi_throw_error(env, NULL, msg); return NULL; }

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 1023, bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else { // subnormal: renormalise
      int e = -1;
      do { e++; man <<= 1; } while (!(man & 1024));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
  else bits = sign | ((exp + 112) << 23) | (man << 13);
  float f; memcpy(&f, &bits, 4); return f;
}

// load(candidates: string[]) -> library path that was loaded; throws when none loads
static napi_value Load(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; uint32_t n = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_array_length(env, argv[0], &n) != napi_ok) return fail(env, "load() needs an array of library paths");
  char tried[2048] = "";
  for (uint32_t i = 0; i < n && !g_dnnl && !g_cblas; i++) {
    napi_value v; char path[512]; size_t len = 0;
    CHECK(napi_get_element(env, argv[0], i, &v));
    if (napi_get_value_string_utf8(env, v, path, sizeof path, &len) != napi_ok) continue;
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) { strncat(tried, " ", sizeof tried - strlen(tried) - 1); strncat(tried, path, sizeof tried - strlen(tried) - 1); continue; }
    g_dnnl = (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm");
    if (g_dnnl) {
      g_dnnl_bf16 = (dnnl_bf16_fn)dlsym(h, "dnnl_gemm_bf16bf16f32");
      // oneDNN exports the bf16 GEMM everywhere but implements it only from AVX-512 on: elsewhere
      // (an AVX2 CPU) it returns dnnl_unimplemented and leaves C as it was, so it is tried once on
      // 1·2 here, and a library that does not compute it gets the emulation (sgemm on rounded operands)
      if (g_dnnl_bf16) {
        const uint16_t one = 0x3f80, two = 0x4000; float c = -1.0f;
        omp_set_num_threads(1);
        if (g_dnnl_bf16('N', 'N', 1, 1, 1, 1.0f, &one, 1, &two, 1, 0.0f, &c, 1) != 0 || c != 2.0f) g_dnnl_bf16 = NULL;
      }
      if (g_dnnl_bf16) amx_resolve(h);
    }
    else {
      g_cblas = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
      g_blas_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
      if (g_cblas) g_cblas_bf16 = (cblas_sbgemm_fn)dlsym(h, "cblas_sbgemm");
    }
    if (g_dnnl || g_cblas) snprintf(g_lib, sizeof g_lib, "%s", path);
    else dlclose(h);
  }
  if (!g_dnnl && !g_cblas) {
    char msg[2300]; snprintf(msg, sizeof msg, "no sgemm library could be loaded (tried:%s)", tried);
    return fail(env, msg);
  }
  for (uint32_t i = 0; i < 65536; i++) g_f16[i] = half_to_float((uint16_t)i);
  // the library runs single-threaded inside each block (the workers set the same for themselves)
  omp_set_num_threads(1);
  if (g_blas_threads) g_blas_threads(1);
  napi_value out; CHECK(napi_create_string_utf8(env, g_lib, NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t t = 1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &t) != napi_ok || t < 1) return fail(env, "setThreads() needs a count >= 1");
  if (t > MAX_THREADS) t = MAX_THREADS;
  if (t == g_threads && P.nworkers == t - 1) return NULL;
  if (!pool_start(t)) { pool_stop(); g_threads = 1; return fail(env, "setThreads(): cannot start native threads"); }
  g_threads = t;
  return NULL;
}

// A typed array's data pointer and element count, checking its element type.
static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is = false; napi_typedarray_type t; napi_value ab; size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return 0;
  return t == want;
}

static void gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (g_dnnl) g_dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else g_cblas(101 /* row major */, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void gemm_bf16(int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                      const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (g_dnnl_bf16) g_dnnl_bf16(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else g_cblas_bf16(101, ta ? 112 : 111, tb ? 112 : 111, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

// Blocks of a product: sizes from the shape alone (about 16 blocks, at least 64 wide, a multiple
// of 16), so the split and hence every sum is the same whatever the thread count.
static int64_t block_of(int64_t n) { int64_t b = (n + 15) / 16; b = (b + 15) / 16 * 16; return b < 64 ? 64 : b; }
// bf16 products: about 8 blocks, at least 128 wide. Every block packs the operand the blocks share
// again inside the library, which costs more beside bf16 arithmetic (twice as fast as f32) than
// beside f32: with 16 blocks of 80 columns a 1024x1280x1280 product ran at ~450 GFLOP per
// CPU-second on two threads here, with 8 of 160 at ~550, and the 270M products took 17% less CPU
// time in all (docs/training.md). Still from the shape alone, so the sums do not depend on threads.
static int64_t block_bf16(int64_t n) { int64_t b = (n + 7) / 8; b = (b + 15) / 16 * 16; return b < 128 ? 128 : b; }

// An operand is f32 (kind 0) or bf16 bits (kind 1, C stays f32).
typedef struct { int ta, tb, bf16; int64_t M, N, K, lda, ldb, ldc, blk; int by_rows; const void *A, *B; float beta; float *C; } gemm_job;

static void gemm_chunk(const void *p, int64_t c, int tid) {
  (void)tid;
  const gemm_job *j = (const gemm_job *)p;
  const int64_t s = c * j->blk, es = j->bf16 ? 2 : 4;
  const char *A = (const char *)j->A, *B = (const char *)j->B;
  int64_t m = j->M, n = j->N, ao = 0, bo = 0, co;
  if (j->by_rows) {
    m = j->M - s < j->blk ? j->M - s : j->blk;
    ao = j->ta ? s : s * j->lda; co = s * j->ldc;
  } else {
    n = j->N - s < j->blk ? j->N - s : j->blk;
    bo = j->tb ? s * j->ldb : s; co = s;
  }
  const int64_t t0 = prof_now();
  if (j->bf16) gemm_bf16(j->ta, j->tb, m, n, j->K, (const uint16_t *)(A + ao * es), j->lda, (const uint16_t *)(B + bo * es), j->ldb, j->beta, j->C + co, j->ldc);
  else gemm(j->ta, j->tb, m, n, j->K, (const float *)(A + ao * es), j->lda, (const float *)(B + bo * es), j->ldb, j->beta, j->C + co, j->ldc);
  prof_add(PROF_GEMM, t0);
}

static void gemm_par_t(int bf16, int ta, int tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                       const void *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  gemm_job j = { ta, tb, bf16, M, N, K, lda, ldb, ldc, 0, M > 2 * N, A, B, beta, C };
  j.blk = block_of(j.by_rows ? M : N);
  pool_run(gemm_chunk, &j, ((j.by_rows ? M : N) + j.blk - 1) / j.blk);
}

static void gemm_par(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  gemm_par_t(0, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

// ------------------------------------------------------------------------------ bf16 rounding

// f32 bits -> bf16 bits, nearest even; a NaN stays a (quiet) NaN. The formula of f32ToBf16 in
// src/core/dtype.ts, so the WASM emulation, the reference and this path round every value alike.
static inline uint32_t bf16_bits(uint32_t u) {
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u) : r;
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
static void round_row_bf16(uint16_t *d, const uint32_t *s, int64_t n) { for (int64_t k = 0; k < n; k++) d[k] = (uint16_t)bf16_bits(s[k]); }

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
static void round_row_f32(uint32_t *d, const uint32_t *s, int64_t n) { for (int64_t k = 0; k < n; k++) d[k] = bf16_bits(s[k]) << 16; }

// A stored operand [rows, cols] (leading dimension ld) rounded to bf16 into a tight copy: bf16 bits
// for a library with a bf16 GEMM, else the rounded values as f32 for its sgemm.
typedef struct { const uint32_t *src; void *dst; int64_t rows, cols, ld, per; int bits; } round_job;

static void round_chunk(const void *p, int64_t c, int tid) {
  (void)tid;
  const round_job *j = (const round_job *)p;
  const int64_t r1 = (c + 1) * j->per < j->rows ? (c + 1) * j->per : j->rows, t0 = prof_now();
  for (int64_t r = c * j->per; r < r1; r++) {
    if (j->bits) round_row_bf16((uint16_t *)j->dst + r * j->cols, j->src + r * j->ld, j->cols);
    else round_row_f32((uint32_t *)j->dst + r * j->cols, j->src + r * j->ld, j->cols);
  }
  prof_add(PROF_ROUND, t0);
}

static void *g_round[2];
static size_t g_round_cap[2];

// The rounded copy of operand `which` (0: A, 1: B), or NULL when memory runs out; into `dst`
// (tight, bf16 bits) when the caller gives one.
static void *round_operand(int which, const float *src, int64_t rows, int64_t cols, int64_t ld, int bits, void *dst) {
  if (dst) {
    round_job j = { (const uint32_t *)src, dst, rows, cols, ld, 0, 1 };
    j.per = (1 << 16) / cols; if (j.per < 1) j.per = 1;
    pool_run(round_chunk, &j, (rows + j.per - 1) / j.per);
    return dst;
  }
  const size_t bytes = (size_t)(rows * cols) * (bits ? 2 : 4);
  if (bytes > g_round_cap[which]) {
    free(g_round[which]);
    g_round[which] = aligned_alloc(64, (bytes + 63) / 64 * 64);
    g_round_cap[which] = g_round[which] ? bytes : 0;
    if (!g_round[which]) return NULL;
  }
  round_job j = { (const uint32_t *)src, g_round[which], rows, cols, ld, 0, bits };
  j.per = (1 << 16) / cols; if (j.per < 1) j.per = 1;
  pool_run(round_chunk, &j, (rows + j.per - 1) / j.per);
  return g_round[which];
}

static int64_t need(int trans, int64_t rows, int64_t cols, int64_t ld) {
  // elements a row-major operand op(X)[rows, cols] with leading dimension ld spans
  return trans ? (cols - 1) * ld + rows : (rows - 1) * ld + cols;
}

typedef struct { bool ta, tb; int64_t M, N, K, lda, ldb, ldc; double beta; float *A, *B, *C; } gemm_args;

// Parses (ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc); returns 0 after throwing, 1 to compute, 2 when done already.
static int gemm_parse(napi_env env, napi_callback_info info, const char *name, gemm_args *g) {
  size_t argc = 12; napi_value a[12]; size_t la, lb, lc; char msg[128];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) { napi_throw_error(env, NULL, "openelm_native: N-API call failed"); return 0; }
  if (argc < 12) { snprintf(msg, sizeof msg, "%s() needs 12 arguments", name); napi_throw_error(env, NULL, msg); return 0; }
  if (!g_dnnl && !g_cblas) { snprintf(msg, sizeof msg, "%s(): no library loaded", name); napi_throw_error(env, NULL, msg); return 0; }
  if (napi_get_value_bool(env, a[0], &g->ta) != napi_ok || napi_get_value_bool(env, a[1], &g->tb) != napi_ok) { snprintf(msg, sizeof msg, "%s(): ta/tb must be booleans", name); napi_throw_error(env, NULL, msg); return 0; }
  if (napi_get_value_int64(env, a[2], &g->M) != napi_ok || napi_get_value_int64(env, a[3], &g->N) != napi_ok ||
      napi_get_value_int64(env, a[4], &g->K) != napi_ok || napi_get_value_int64(env, a[6], &g->lda) != napi_ok ||
      napi_get_value_int64(env, a[8], &g->ldb) != napi_ok || napi_get_value_int64(env, a[11], &g->ldc) != napi_ok ||
      napi_get_value_double(env, a[9], &g->beta) != napi_ok) { snprintf(msg, sizeof msg, "%s(): dimensions must be numbers", name); napi_throw_error(env, NULL, msg); return 0; }
  if (!typed(env, a[5], napi_float32_array, (void **)&g->A, &la) || !typed(env, a[7], napi_float32_array, (void **)&g->B, &lb) ||
      !typed(env, a[10], napi_float32_array, (void **)&g->C, &lc)) { snprintf(msg, sizeof msg, "%s(): A, B and C must be Float32Arrays", name); napi_throw_error(env, NULL, msg); return 0; }
  const int64_t M = g->M, N = g->N, K = g->K, ldc = g->ldc;
  if (M <= 0 || N <= 0) return 2;
  if (K <= 0) { // C = beta·C
    for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) g->C[i * ldc + j] = g->beta == 0 ? 0.0f : g->C[i * ldc + j] * (float)g->beta;
    return 2;
  }
  if ((int64_t)la < need(g->ta, M, K, g->lda) || (int64_t)lb < need(g->tb, K, N, g->ldb) || (int64_t)lc < need(0, M, N, ldc) ||
      g->lda < (g->ta ? M : K) || g->ldb < (g->tb ? K : N) || ldc < N) { snprintf(msg, sizeof msg, "%s(): an operand is smaller than its dimensions", name); napi_throw_error(env, NULL, msg); return 0; }
  return 1;
}

// sgemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc): C[M,N] = op(A)[M,K]·op(B)[K,N] + beta·C
static napi_value Sgemm(napi_env env, napi_callback_info info) {
  gemm_args g;
  if (gemm_parse(env, info, "sgemm", &g) != 1) return NULL;
  gemm_par(g.ta, g.tb, g.M, g.N, g.K, g.A, g.lda, g.B, g.ldb, (float)g.beta, g.C, g.ldc);
  return NULL;
}

// ------------------------------------------------------------------ AMX (oneDNN matmul primitive)
//
// oneDNN's BLAS-like dnnl_gemm_bf16bf16f32 runs on AVX512-BF16 only; its matmul primitive picks
// AMX tile kernels (brgemm) where the CPU has them and the kernel lets the process use them
// (oneDNN asks for the tile state itself). The primitive is reached through oneDNN 2.x's C API by
// dlsym, with no headers: the few types it needs are declared here, its memory and matmul
// descriptors as opaque buffers larger than the library's structs. A primitive is made once per
// block shape (on the calling thread, where the library runs single-threaded, so each block's sums
// depend on its shape alone, as before) and kept; a shape is only used when oneDNN's own report
// of the implementation it chose names AMX, so a CPU without AMX, a kernel that refuses the tile
// state, or another library version keeps the BLAS-like path.

typedef struct { _Alignas(64) unsigned char b[4096]; } dnnl_md;     // dnnl_memory_desc_t (v2: ~1.3 KiB)
typedef struct { _Alignas(64) unsigned char b[16384]; } dnnl_mmd;   // dnnl_matmul_desc_t (v2: four memory descs)
typedef struct { int arg; void *mem; } dnnl_arg;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } dnnl_ver;
enum { DNNL_BF16 = 2, DNNL_F32 = 3, DNNL_CPU = 1, DNNL_STREAM_IN_ORDER = 1, DNNL_QUERY_IMPL_INFO_STR = 8,
       DNNL_QUERY_SCRATCHPAD_MD = 136, DNNL_SCRATCHPAD_USER = 1,
       DNNL_ARG_SRC = 1, DNNL_ARG_DST = 17, DNNL_ARG_WEIGHTS = 33, DNNL_ARG_SCRATCHPAD = 80 };

static struct {
  const dnnl_ver *(*version)(void);
  int (*engine_create)(void **, int, size_t);
  int (*stream_create)(void **, void *, unsigned);
  int (*md_init_by_strides)(dnnl_md *, int, const int64_t *, int, const int64_t *);
  int (*matmul_desc_init)(dnnl_mmd *, const dnnl_md *, const dnnl_md *, const dnnl_md *, const dnnl_md *);
  int (*attr_create)(void **);
  int (*attr_destroy)(void *);
  int (*post_ops_create)(void **);
  int (*post_ops_destroy)(void *);
  int (*post_ops_append_sum)(void *, float);
  int (*attr_set_post_ops)(void *, const void *);
  int (*attr_set_scratchpad_mode)(void *, int);
  const dnnl_md *(*pd_query_md)(const void *, int, int);
  size_t (*md_get_size)(const dnnl_md *);
  int (*pd_create)(void **, const void *, const void *, void *, const void *);
  int (*pd_query)(const void *, int, int, void *);
  int (*pd_destroy)(void *);
  int (*prim_create)(void **, const void *);
  int (*prim_destroy)(void *);
  int (*memory_create)(void **, const dnnl_md *, void *, void *);
  int (*memory_destroy)(void *);
  int (*execute)(const void *, void *, int, const dnnl_arg *);
  int (*stream_wait)(void *);
} D;
static void *g_engine;
static void *g_streams[MAX_THREADS];
static int g_amx_api;          // the matmul API resolved and an engine made
static int g_amx_on = 0;       // OPENELM_AMX=on or useAmx(true): the AMX path may be used (off by default, see below)
static _Atomic int64_t g_amx_blocks;   // blocks run on AMX so far (features().amxBlocks, for the tests)

// One primitive per block shape; `prim` NULL: oneDNN did not choose AMX for it (use the BLAS path).
// Which path a shape takes must not depend on the history of the process (a resumed run has to
// give the bits of an uninterrupted one), so a full cache evicts its least recently used entry
// rather than refusing new shapes.
typedef struct { int ta, tb; int64_t m, n, K, lda, ldb, ldc; float beta; uint64_t used; void *prim, *pd; dnnl_md a, b, c; const dnnl_md *pad; size_t pad_bytes; } amx_prim;
// Each thread's scratch memory for the primitives (oneDNN's own shared scratchpad is not safe
// for one primitive running on several threads at once: the blocks came back corrupted).
static void *g_pad[MAX_THREADS];
static size_t g_pad_cap[MAX_THREADS];
#define AMX_CACHE 256
static amx_prim *g_prims[AMX_CACHE];
static int g_nprims;
static uint64_t g_prim_clock;

static void amx_resolve(void *h) {
#define R(field, name) *(void **)&D.field = dlsym(h, name); if (!D.field) return;
  R(version, "dnnl_version") R(engine_create, "dnnl_engine_create") R(stream_create, "dnnl_stream_create")
  R(md_init_by_strides, "dnnl_memory_desc_init_by_strides") R(matmul_desc_init, "dnnl_matmul_desc_init")
  R(attr_create, "dnnl_primitive_attr_create") R(attr_destroy, "dnnl_primitive_attr_destroy")
  R(post_ops_create, "dnnl_post_ops_create") R(post_ops_destroy, "dnnl_post_ops_destroy")
  R(post_ops_append_sum, "dnnl_post_ops_append_sum") R(attr_set_post_ops, "dnnl_primitive_attr_set_post_ops")
  R(attr_set_scratchpad_mode, "dnnl_primitive_attr_set_scratchpad_mode") R(pd_query_md, "dnnl_primitive_desc_query_md")
  R(md_get_size, "dnnl_memory_desc_get_size")
  R(pd_create, "dnnl_primitive_desc_create") R(pd_query, "dnnl_primitive_desc_query") R(pd_destroy, "dnnl_primitive_desc_destroy")
  R(prim_create, "dnnl_primitive_create") R(prim_destroy, "dnnl_primitive_destroy")
  R(memory_create, "dnnl_memory_create") R(memory_destroy, "dnnl_memory_destroy")
  R(execute, "dnnl_primitive_execute") R(stream_wait, "dnnl_stream_wait")
#undef R
  // the declarations above are oneDNN 2.x's; 3.x changed the descriptors (and has no matmul_desc_init)
  if (D.version()->major != 2) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512bw")) return;   // every AMX CPU has it; the transposing rounding needs it
  if (D.engine_create(&g_engine, DNNL_CPU, 0) != 0) return;
  g_amx_api = 1;
  // Opt-in: single products run up to twice as fast on AMX, but whole 270M training steps on two
  // threads were not faster (the blocks' rounding and copies bound by memory; docs/training.md).
  const char *env = getenv("OPENELM_AMX");
  g_amx_on = env && strcmp(env, "on") == 0;
}

// Strides of a row-major operand op(X)[rows, cols] stored with leading dimension ld, transposed or not.
static int amx_md(dnnl_md *md, int trans, int64_t rows, int64_t cols, int64_t ld, int dt) {
  const int64_t dims[2] = { rows, cols }, strides[2] = { trans ? 1 : ld, trans ? ld : 1 };
  memset(md, 0, sizeof *md);
  return D.md_init_by_strides(md, 2, dims, dt, strides);
}

// The AMX primitive for one block shape, made on first use; NULL when AMX is not chosen for it.
// Only the calling (main) thread makes and looks up primitives, before the blocks run.
static amx_prim *amx_get(int ta, int tb, int64_t m, int64_t n, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, float beta) {
  for (int i = 0; i < g_nprims; i++) {
    amx_prim *p = g_prims[i];
    if (p->ta == ta && p->tb == tb && p->m == m && p->n == n && p->K == K && p->lda == lda && p->ldb == ldb && p->ldc == ldc && p->beta == beta) {
      p->used = ++g_prim_clock;
      return p->prim ? p : NULL;
    }
  }
  int slot = g_nprims;
  if (slot == AMX_CACHE) {
    slot = 0;
    for (int i = 1; i < AMX_CACHE; i++) if (g_prims[i]->used < g_prims[slot]->used) slot = i;
    if (g_prims[slot]->prim) { D.prim_destroy(g_prims[slot]->prim); D.pd_destroy(g_prims[slot]->pd); }
    free(g_prims[slot]);
    g_prims[slot] = NULL;
  }
  amx_prim *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  p->ta = ta; p->tb = tb; p->m = m; p->n = n; p->K = K; p->lda = lda; p->ldb = ldb; p->ldc = ldc; p->beta = beta;
  p->used = ++g_prim_clock;
  static dnnl_mmd desc;
  void *attr = NULL, *po = NULL, *pd = NULL;
  int ok = amx_md(&p->a, ta, m, K, lda, DNNL_BF16) == 0 && amx_md(&p->b, tb, K, n, ldb, DNNL_BF16) == 0 &&
           amx_md(&p->c, 0, m, n, ldc, DNNL_F32) == 0 && D.matmul_desc_init(&desc, &p->a, &p->b, NULL, &p->c) == 0 &&
           D.attr_create(&attr) == 0 && D.attr_set_scratchpad_mode(attr, DNNL_SCRATCHPAD_USER) == 0;
  if (ok && beta != 0.0f) // C = A·B + beta·C: oneDNN's "sum" post-op
    ok = D.post_ops_create(&po) == 0 && D.post_ops_append_sum(po, beta) == 0 && D.attr_set_post_ops(attr, po) == 0;
  if (ok) ok = D.pd_create(&pd, &desc, attr, g_engine, NULL) == 0;
  const char *impl = NULL;
  if (ok) ok = D.pd_query(pd, DNNL_QUERY_IMPL_INFO_STR, 0, (void *)&impl) == 0 && impl && strstr(impl, "amx");
  if (ok) {
    p->pad = D.pd_query_md(pd, DNNL_QUERY_SCRATCHPAD_MD, 0);   // lives as long as the pd, kept below
    ok = p->pad != NULL;
    if (ok) p->pad_bytes = D.md_get_size(p->pad);
  }
  if (ok && D.prim_create(&p->prim, pd) != 0) p->prim = NULL;
  if (p->prim) p->pd = pd;
  else if (pd) D.pd_destroy(pd);
  if (po) D.post_ops_destroy(po);
  if (attr) D.attr_destroy(attr);
  g_prims[slot] = p;
  if (slot == g_nprims) g_nprims++;
  return p->prim ? p : NULL;
}

// Runs one block through its primitive on thread `tid`'s stream; 0 when oneDNN fails (caller falls back).
static int amx_run(const amx_prim *p, int tid, const void *A, const void *B, float *C) {
  void *ma = NULL, *mb = NULL, *mc = NULL, *ms = NULL;
  int ok = D.memory_create(&ma, &p->a, g_engine, (void *)A) == 0 && D.memory_create(&mb, &p->b, g_engine, (void *)B) == 0 &&
           D.memory_create(&mc, &p->c, g_engine, C) == 0 && D.memory_create(&ms, p->pad, g_engine, g_pad[tid]) == 0;
  if (ok) {
    const dnnl_arg args[4] = { { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb }, { DNNL_ARG_DST, mc }, { DNNL_ARG_SCRATCHPAD, ms } };
    ok = D.execute(p->prim, g_streams[tid], 4, args) == 0 && D.stream_wait(g_streams[tid]) == 0;
  }
  if (ok) atomic_fetch_add_explicit(&g_amx_blocks, 1, memory_order_relaxed);
  if (ma) D.memory_destroy(ma);
  if (mb) D.memory_destroy(mb);
  if (mc) D.memory_destroy(mc);
  if (ms) D.memory_destroy(ms);
  return ok;
}

// gemmBf16's blocks: the operand the blocks share is rounded once up front; each block rounds its
// own slice of the other into its thread's buffer just before use (that slice then stays in L2
// for the library's packing, instead of a whole rounded copy going out to memory and back).
//
// Held operands: the caller may give, for A and for B, a buffer for the operand's bf16 bits in its
// stored layout, tight ([rows, cols] as stored, transposed or not), and say whether it holds them
// already. A filled buffer is used as is, with no rounding; an empty one is filled by the rounding
// this product does anyway (the shared operand up front, the split one block by block in place),
// so an operand several products read (a weight in the forward and in dX) is rounded once.
typedef struct {
  int ta, tb, bits, by_rows; int64_t M, N, K, ldc, blk; float beta; float *C;
  const void *shared; int64_t ld_shared;   // the rounded shared operand
  const float *split; int64_t ld_split;    // the caller's f32 operand that is cut into blocks
  uint16_t *split_held; int split_fill;    // its held bits (stored layout, tight) or NULL; fill them first?
  int64_t ld_held;                         // the stored row length of the held split operand
  const amx_prim *amx_full, *amx_last;     // AMX primitives for a whole block and the last one (or NULL)
  int a_flip;                              // AMX with ta: A is rounded transposed, the primitive sees [M,K]
} bf16_job;

static void *g_slice[MAX_THREADS];
static size_t g_slice_cap[MAX_THREADS];
static float *g_ctile[MAX_THREADS];    // a column block of C for the AMX path
static size_t g_ctile_cap[MAX_THREADS];

// Rounds rows x cols of src (stride ld) into dst (stride ldd); element size 2 (bits) or 4.
static void round_block(void *dst, int64_t ldd, const float *src, int64_t rows, int64_t cols, int64_t ld, int bits) {
  const int64_t t0 = prof_now();
  for (int64_t r = 0; r < rows; r++) {
    if (bits) round_row_bf16((uint16_t *)dst + r * ldd, (const uint32_t *)(src + r * ld), cols);
    else round_row_f32((uint32_t *)dst + r * ldd, (const uint32_t *)(src + r * ld), cols);
  }
  prof_add(PROF_ROUND, t0);
}

// Rounds columns [c0, c1) of src [rows, ...] (stride ld) to bf16 bits written transposed: dst
// [c1 - c0, rows], tight. Only the AMX path uses it, so AVX-512 is there: 32 rows x 16 columns
// at a time are rounded, paired along the rows (two bf16 per 32-bit lane) and transposed as a
// 16 x 16 block of 32-bit lanes; the edges go one value at a time.
__attribute__((target("avx512f,avx512bw")))
static inline __m512i round16(const uint32_t *s) {
  const __m512i u = _mm512_loadu_si512(s), hi = _mm512_srli_epi32(u, 16);
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(hi, _mm512_set1_epi32(1))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

__attribute__((target("avx512f,avx512bw")))
static inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; i++) { t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]); t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]); }
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; i++) for (int k = 0; k < 4; k++) {
    t[8 * i + k] = _mm512_shuffle_i32x4(r[8 * i + k], r[8 * i + 4 + k], 0x88);
    t[8 * i + 4 + k] = _mm512_shuffle_i32x4(r[8 * i + k], r[8 * i + 4 + k], 0xdd);
  }
  for (int k = 0; k < 8; k++) {
    r[k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0xdd);
  }
}

__attribute__((target("avx512f,avx512bw")))
static void round_block_t(uint16_t *dst, const float *src, int64_t rows, int64_t ld, int64_t c0, int64_t c1) {
  const uint32_t *u = (const uint32_t *)src;
  const int64_t R = rows / 32 * 32, C = c0 + (c1 - c0) / 16 * 16;
  for (int64_t r0 = 0; r0 < R; r0 += 32)
    for (int64_t c = c0; c < C; c += 16) {
      __m512i w[16];
      for (int p = 0; p < 16; p++)
        w[p] = _mm512_or_si512(round16(u + (r0 + 2 * p) * ld + c), _mm512_slli_epi32(round16(u + (r0 + 2 * p + 1) * ld + c), 16));
      transpose16(w);
      for (int k = 0; k < 16; k++) _mm512_storeu_si512(dst + (c + k - c0) * rows + r0, w[k]);
    }
  for (int64_t c = C; c < c1; c++) for (int64_t r = 0; r < R; r++) dst[(c - c0) * rows + r] = (uint16_t)bf16_bits(u[r * ld + c]);
  for (int64_t c = c0; c < c1; c++) for (int64_t r = R; r < rows; r++) dst[(c - c0) * rows + r] = (uint16_t)bf16_bits(u[r * ld + c]);
}

typedef struct { const float *src; uint16_t *dst; int64_t rows, cols, ld, per; } round_t_job;

static void round_t_chunk(const void *p, int64_t c, int tid) {
  (void)tid;
  const round_t_job *j = (const round_t_job *)p;
  const int64_t c0 = c * j->per, c1 = c0 + j->per < j->cols ? c0 + j->per : j->cols, t0 = prof_now();
  round_block_t(j->dst + c0 * j->rows, j->src, j->rows, j->ld, c0, c1);
  prof_add(PROF_ROUND, t0);
}

// The transposed rounded copy of operand `which` (stored [rows, cols] -> [cols, rows]), or NULL.
static void *round_operand_t(int which, const float *src, int64_t rows, int64_t cols, int64_t ld) {
  const size_t bytes = (size_t)(rows * cols) * 2;
  if (bytes > g_round_cap[which]) {
    free(g_round[which]);
    g_round[which] = aligned_alloc(64, (bytes + 63) / 64 * 64);
    g_round_cap[which] = g_round[which] ? bytes : 0;
    if (!g_round[which]) return NULL;
  }
  round_t_job j = { src, (uint16_t *)g_round[which], rows, cols, ld, 64 };
  pool_run(round_t_chunk, &j, (cols + j.per - 1) / j.per);
  return g_round[which];
}

static void bf16_chunk(const void *p, int64_t c, int tid) {
  const bf16_job *j = (const bf16_job *)p;
  const int64_t s = c * j->blk;
  void *buf = g_slice[tid];
  const uint16_t *held = j->split_held;
  const int ta = j->ta && !j->a_flip;   // a flipped A is rounded into [rows of op(A), K] order
  int64_t t0;
  if (j->by_rows) { // A cut into rows [s, s+m) of op(A); B shared
    const int64_t m = j->M - s < j->blk ? j->M - s : j->blk;
    const void *a; int64_t lda;
    if (j->a_flip) { t0 = prof_now(); round_block_t(buf, j->split, j->K, j->ld_split, s, s + m); prof_add(PROF_ROUND, t0); a = buf; lda = j->K; }  // -> [m, K]
    else if (j->ta) {   // A stored [K, M]: columns [s, s+m)
      if (held) { a = held + s; lda = j->ld_held; if (j->split_fill) round_block((void *)a, lda, j->split + s, j->K, m, j->ld_split, 1); }
      else { round_block(buf, m, j->split + s, j->K, m, j->ld_split, j->bits); a = buf; lda = m; }
    } else {            // A stored [M, K]: rows [s, s+m)
      if (held) { a = held + s * j->ld_held; lda = j->ld_held; if (j->split_fill) round_block((void *)a, lda, j->split + s * j->ld_split, m, j->K, j->ld_split, 1); }
      else { round_block(buf, j->K, j->split + s * j->ld_split, m, j->K, j->ld_split, j->bits); a = buf; lda = j->K; }
    }
    const amx_prim *ap = s + j->blk >= j->M ? j->amx_last : j->amx_full;
    t0 = prof_now();
    if (ap && amx_run(ap, tid, a, j->shared, j->C + s * j->ldc)) { prof_add(PROF_GEMM, t0); return; }
    if (j->bits) gemm_bf16(ta, j->tb, m, j->N, j->K, (const uint16_t *)a, lda, (const uint16_t *)j->shared, j->ld_shared, j->beta, j->C + s * j->ldc, j->ldc);
    else gemm(j->ta, j->tb, m, j->N, j->K, (const float *)a, lda, (const float *)j->shared, j->ld_shared, j->beta, j->C + s * j->ldc, j->ldc);
    prof_add(PROF_GEMM, t0);
  } else {          // B cut into columns [s, s+n) of op(B); A shared
    const int64_t n = j->N - s < j->blk ? j->N - s : j->blk;
    const void *b; int64_t ldb;
    if (j->tb) {        // B stored [N, K]: rows [s, s+n)
      if (held) { b = held + s * j->ld_held; ldb = j->ld_held; if (j->split_fill) round_block((void *)b, ldb, j->split + s * j->ld_split, n, j->K, j->ld_split, 1); }
      else { round_block(buf, j->K, j->split + s * j->ld_split, n, j->K, j->ld_split, j->bits); b = buf; ldb = j->K; }
    } else {            // B stored [K, N]: columns [s, s+n)
      if (held) { b = held + s; ldb = j->ld_held; if (j->split_fill) round_block((void *)b, ldb, j->split + s, j->K, n, j->ld_split, 1); }
      else { round_block(buf, n, j->split + s, j->K, n, j->ld_split, j->bits); b = buf; ldb = n; }
    }
    const amx_prim *ap = s + j->blk >= j->N ? j->amx_last : j->amx_full;
    t0 = prof_now();
    if (ap && amx_run(ap, tid, j->shared, b, g_ctile[tid])) {
      prof_add(PROF_GEMM, t0);
      t0 = prof_now();
      // oneDNN's AMX matmul wants a dense C: the block's columns come back through a tight copy
      const float *t = g_ctile[tid];
      for (int64_t i = 0; i < j->M; i++) {
        float *c = j->C + i * j->ldc + s;
        if (j->beta == 0.0f) memcpy(c, t + i * n, (size_t)n * 4);
        else for (int64_t k = 0; k < n; k++) c[k] = t[i * n + k] + j->beta * c[k];
      }
      prof_add(PROF_COPY, t0);
      return;
    }
    if (j->bits) gemm_bf16(ta, j->tb, j->M, n, j->K, (const uint16_t *)j->shared, j->ld_shared, (const uint16_t *)b, ldb, j->beta, j->C + s, j->ldc);
    else gemm(j->ta, j->tb, j->M, n, j->K, (const float *)j->shared, j->ld_shared, (const float *)b, ldb, j->beta, j->C + s, j->ldc);
    prof_add(PROF_GEMM, t0);
  }
}

// A held operand argument of gemmBf16: null/undefined, or a Uint16Array of at least `need` values.
static int held_arg(napi_env env, napi_value v, size_t need, uint16_t **bits) {
  napi_valuetype t; size_t len;
  *bits = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_null || t == napi_undefined) return 1;
  if (!typed(env, v, napi_uint16_array, (void **)bits, &len) || len < need) { *bits = NULL; return 0; }
  return 1;
}

// gemmBf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc[, heldA, aFilled, heldB, bFilled]):
// C[M,N] = bf16(op(A))·bf16(op(B)) + beta·C with f32 accumulation. heldA/heldB: null, or a
// Uint16Array for the operand's bf16 bits in its stored layout, tight, with whether it holds them
// already (see bf16_job). Returns which held buffers hold their operand's bits afterwards (1: A,
// 2: B): an unfilled buffer that this product could not fill (a path that rounds that operand
// another way) is left for a later product.
static napi_value GemmBf16(napi_env env, napi_callback_info info) {
  gemm_args g;
  const int parsed = gemm_parse(env, info, "gemmBf16", &g);
  if (parsed == 0) return NULL;
  napi_value out;
  if (parsed == 2) { CHECK(napi_create_int32(env, 0, &out)); return out; }   // nothing to multiply, nothing rounded
  const int bits = g_dnnl_bf16 || g_cblas_bf16;
  uint16_t *hold[2] = { NULL, NULL }; bool filled[2] = { false, false };
  {
    size_t argc = 16; napi_value a[16];
    CHECK(napi_get_cb_info(env, info, &argc, a, NULL, NULL));
    const int64_t ar = g.ta ? g.K : g.M, ac = g.ta ? g.M : g.K, br = g.tb ? g.N : g.K, bc = g.tb ? g.K : g.N;
    if (argc >= 16) {
      if (!held_arg(env, a[12], (size_t)(ar * ac), &hold[0]) || napi_get_value_bool(env, a[13], &filled[0]) != napi_ok ||
          !held_arg(env, a[14], (size_t)(br * bc), &hold[1]) || napi_get_value_bool(env, a[15], &filled[1]) != napi_ok)
        return fail(env, "gemmBf16(): a held operand must be null or a Uint16Array of the operand's size, with a boolean");
    }
    // held bits are tight: only for operands stored tight (and only where the library takes bf16)
    if (!bits || g.lda != ac) { hold[0] = NULL; filled[0] = false; }
    if (!bits || g.ldb != bc) { hold[1] = NULL; filled[1] = false; }
  }
  bf16_job j = { g.ta, g.tb, bits, g.M > 2 * g.N, g.M, g.N, g.K, g.ldc, 0, (float)g.beta, g.C, NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL, 0 };
  j.blk = block_bf16(j.by_rows ? g.M : g.N);
  const int64_t total = j.by_rows ? g.M : g.N, nblk = (total + j.blk - 1) / j.blk;
  // A row split with a narrow B (N < 1024: in the 35.5M model dX, dW and the head's backward) ran no
  // faster or slower on AMX than on the BLAS-like GEMM here (see docs/training.md), so it stays there.
  if (bits && g_dnnl_bf16 && g_amx_api && g_amx_on && !(j.by_rows && g.N < 1024)) {
    // The primitives see the rounded operands as the blocks hand them over. A transposed A is
    // rounded into [M,K] order instead (AMX reads A's rows as tiles; oneDNN's copy of a
    // transposed A halved its speed), so a held transposed A is not used on this path.
    const int64_t last = total - (nblk - 1) * j.blk;
    for (int b = 0; b < 2; b++) {
      const int64_t w = b ? last : (nblk > 1 ? j.blk : last);
      const int64_t m = j.by_rows ? w : g.M, n = j.by_rows ? g.N : w;
      const int64_t ldb = g.tb ? g.K : (hold[1] ? g.N : n);
      // a column block is computed into a tight buffer (ldc n) and added to C afterwards
      const amx_prim *ap = j.by_rows ? amx_get(0, g.tb, m, n, g.K, g.K, ldb, g.ldc, (float)g.beta)
                                     : amx_get(0, g.tb, m, n, g.K, g.K, ldb, n, 0.0f);
      if (b) j.amx_last = ap; else j.amx_full = ap;
    }
    // all blocks on AMX or none, so that A is rounded one way
    if (!j.amx_full || !j.amx_last) j.amx_full = j.amx_last = NULL;
    const size_t ct = j.by_rows ? 0 : (size_t)(g.M * j.blk) * 4;
    const size_t pad = j.amx_full ? (j.amx_full->pad_bytes > j.amx_last->pad_bytes ? j.amx_full->pad_bytes : j.amx_last->pad_bytes) : 0;
    for (int t = 0; t < g_threads && j.amx_full; t++) {
      if (pad > g_pad_cap[t]) {
        free(g_pad[t]); g_pad[t] = aligned_alloc(4096, (pad + 4095) / 4096 * 4096);
        g_pad_cap[t] = g_pad[t] ? pad : 0;
        if (!g_pad[t]) return fail(env, "gemmBf16(): out of memory for oneDNN's scratch space");
      }
      if (!g_streams[t] && D.stream_create(&g_streams[t], g_engine, DNNL_STREAM_IN_ORDER) != 0) { j.amx_full = j.amx_last = NULL; break; }
      if (ct > g_ctile_cap[t]) {
        free(g_ctile[t]); g_ctile[t] = aligned_alloc(64, (ct + 63) / 64 * 64);
        g_ctile_cap[t] = g_ctile[t] ? ct : 0;
        if (!g_ctile[t]) return fail(env, "gemmBf16(): out of memory for a block of the product");
      }
    }
    j.a_flip = j.amx_full && g.ta;
    if (j.a_flip) hold[0] = NULL;
  }
  // the shared operand as stored: op(A) is A [M,K] or, transposed, A [K,M]; likewise B
  if (j.by_rows) {
    const int64_t br = g.tb ? g.N : g.K, bc = g.tb ? g.K : g.N;
    j.shared = hold[1] && filled[1] ? hold[1] : round_operand(1, g.B, br, bc, g.ldb, bits, hold[1]); j.ld_shared = bc;
    j.split = g.A; j.ld_split = g.lda;
    if (hold[0]) { j.split_held = hold[0]; j.split_fill = !filled[0]; j.ld_held = g.ta ? g.M : g.K; }
  } else if (j.a_flip) {
    j.shared = round_operand_t(0, g.A, g.K, g.M, g.lda); j.ld_shared = g.K;
    j.split = g.B; j.ld_split = g.ldb;
  } else {
    const int64_t ar = g.ta ? g.K : g.M, ac = g.ta ? g.M : g.K;
    j.shared = hold[0] && filled[0] ? hold[0] : round_operand(0, g.A, ar, ac, g.lda, bits, hold[0]); j.ld_shared = ac;
    j.split = g.B; j.ld_split = g.ldb;
  }
  if (!j.by_rows && hold[1]) { j.split_held = hold[1]; j.split_fill = !filled[1]; j.ld_held = g.tb ? g.K : g.N; }
  if (!j.shared) return fail(env, "gemmBf16(): out of memory for the rounded operands");
  const size_t want = (size_t)(j.blk * g.K) * (bits ? 2 : 4);
  for (int t = 0; t < g_threads; t++) {
    if (want > g_slice_cap[t]) {
      free(g_slice[t]); g_slice[t] = aligned_alloc(64, (want + 63) / 64 * 64);
      g_slice_cap[t] = g_slice[t] ? want : 0;
      if (!g_slice[t]) return fail(env, "gemmBf16(): out of memory for the rounded operands");
    }
  }
  pool_run(bf16_chunk, &j, nblk);
  CHECK(napi_create_int32(env, (hold[0] ? 1 : 0) | (hold[1] ? 2 : 0), &out));
  return out;
}

// Whether gemmBf16 runs on AMX now: the path is on and oneDNN picks AMX for a plain product.
static int amx_active(void) {
  return g_dnnl_bf16 && g_amx_api && g_amx_on && amx_get(0, 1, 64, 64, 64, 64, 64, 64, 0.0f) != NULL;
}

// features() -> { bf16: 'dnnl' | 'openblas' | 'emulated', amx: boolean, amxBlocks: number, int8: boolean, q4Codes: true }
static napi_value Features(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, g_dnnl_bf16 ? "dnnl" : g_cblas_bf16 ? "openblas" : "emulated", NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "bf16", v));
  CHECK(napi_get_boolean(env, amx_active(), &v));
  CHECK(napi_set_named_property(env, out, "amx", v));
  CHECK(napi_create_int64(env, atomic_load(&g_amx_blocks), &v));
  CHECK(napi_set_named_property(env, out, "amxBlocks", v));
  if (g_i8 < 0) g_i8 = i8_supported();
  CHECK(napi_get_boolean(env, g_i8 == 1, &v));
  CHECK(napi_set_named_property(env, out, "int8", v));
  CHECK(napi_get_boolean(env, true, &v));   // q4 scales and mins as weight-format.ts codes them
  CHECK(napi_set_named_property(env, out, "q4Codes", v));
  CHECK(napi_get_boolean(env, true, &v));   // q8 scales as f16 bits (a Uint16Array), weight-format.ts
  CHECK(napi_set_named_property(env, out, "q8Half", v));
  // block weights as files store them that linear() takes (their kernels/blocks.as codes)
  static const int block_kinds[] = { KIND_Q8_0, KIND_Q4_0, KIND_Q4_1, KIND_Q5_0, KIND_Q5_1, KIND_Q4_K, KIND_Q5_K, KIND_Q6_K, KIND_Q4_1F, KIND_Q4_KR, KIND_Q6_KR, KIND_Q4_0R };
  CHECK(napi_create_array_with_length(env, sizeof block_kinds / sizeof *block_kinds, &v));
  for (size_t i = 0; i < sizeof block_kinds / sizeof *block_kinds; i++) {
    napi_value k;
    CHECK(napi_create_int32(env, block_kinds[i], &k));
    CHECK(napi_set_element(env, v, (uint32_t)i, k));
  }
  CHECK(napi_set_named_property(env, out, "blockKinds", v));
  return out;
}

// ------------------------------------------------------------------------ int8 prefill (q8/q4)

static uint8_t *g_i8_panel[MAX_THREADS];
static size_t g_i8_panel_cap[MAX_THREADS];
static uint8_t *g_xq; static float *g_xds; static size_t g_xq_cap, g_xds_cap;

typedef struct { int kind; int64_t M, N, K; const void *w; const void *scales; const float *x; float *out; int acc; } i8_job;

static void i8_quant_chunk(const void *p, int64_t c, int tid) {
  (void)tid;
  const i8_job *j = (const i8_job *)p;
  const int64_t r0 = c * 8, r1 = r0 + 8 < j->M ? r0 + 8 : j->M, nb = j->K / 32;
  i8_quantize_rows(g_xq, g_xds, g_xds + j->M * nb, j->x, r0, r1, j->K);
}

static void i8_chunk(const void *p, int64_t c, int tid) {
  const i8_job *j = (const i8_job *)p;
  const int64_t n0 = c * I8_PANEL, nb = j->K / 32;
  const int ncols = j->N - n0 < I8_PANEL ? (int)(j->N - n0) : I8_PANEL;
  i8_pack(g_i8_panel[tid], j->kind, j->w, j->scales, n0, ncols, j->K);
  i8_panel(g_i8_panel[tid], g_xq, g_xds, g_xds + j->M * nb, j->M, j->K, j->out, j->N, n0, ncols, j->acc, j->kind == 4);
}

// The int8 product; 0 when it cannot run here (no VNNI, no memory), so the caller widens instead.
static int linear_int8(int kind, int64_t M, int64_t N, int64_t K, const void *w, const void *scales,
                       const float *x, float *out, int acc) {
  if (g_i8 < 0) g_i8 = i8_supported();
  if (!g_i8) return 0;
  const int64_t nb = K / 32;
  if ((size_t)(M * K) > g_xq_cap) { free(g_xq); g_xq = (uint8_t *)aligned_alloc(64, (M * K + 63) / 64 * 64); g_xq_cap = g_xq ? (size_t)(M * K) : 0; if (!g_xq) return 0; }
  if ((size_t)(2 * M * nb) > g_xds_cap) { free(g_xds); g_xds = (float *)aligned_alloc(64, (2 * M * nb * 4 + 63) / 64 * 64); g_xds_cap = g_xds ? (size_t)(2 * M * nb) : 0; if (!g_xds) return 0; }
  const size_t want = i8_panel_bytes(K);
  for (int t = 0; t < g_threads; t++) {
    if (want > g_i8_panel_cap[t]) {
      free(g_i8_panel[t]); g_i8_panel[t] = (uint8_t *)aligned_alloc(64, (want + 63) / 64 * 64);
      g_i8_panel_cap[t] = g_i8_panel[t] ? want : 0;
      if (!g_i8_panel[t]) return 0;
    }
  }
  i8_job j = { kind, M, N, K, w, scales, x, out, acc };
  pool_run(i8_quant_chunk, &j, (M + 7) / 8);
  pool_run(i8_chunk, &j, (N + I8_PANEL - 1) / I8_PANEL);
  return 1;
}

static inline float half_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return g_f16[h]; }
static inline uint32_t u32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// Blocks [b0, b0 + nblk) of a Q4_0 regrouped row of nb blocks at row (KIND_Q4_0R), widened into d:
// d·(q − 8), the products Q4_0's stored blocks give.
static void widen_q4_0r(float *d, const uint8_t *row, int64_t nb, int64_t b0, int64_t nblk) {
  for (int64_t i = 0; i < nblk; i++) {
    const uint8_t *q = row + 2 * nb + 16 * (b0 + i);
    const float sc = half_at(row + 2 * (b0 + i));
    for (int j = 0; j < 16; j++) { d[32 * i + j] = (float)((q[j] & 15) - 8) * sc; d[32 * i + j + 16] = (float)((q[j] >> 4) - 8) * sc; }
  }
}
// Q4_K / Q5_K: the 6-bit scale (m = 0) or min (m = 1) of sub-block j from the 12 bytes at s.
static inline int k_scale(const uint8_t *s, int j, int m) {
  if (j < 4) return s[j + 4 * m] & 63;
  return m ? (s[j + 4] >> 4) | ((s[j] >> 6) << 4) : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
}

// nblk blocks of kinds 10..17 and 20 at src decoded into d: every value the one src/core/ggml-quants.ts
// gives (gguf-py's dequantizer), the same float products and sums, each rounded on its own. This
// target has no FMA, so the compiler cannot fuse a product with the add after it; it may vectorize.
__attribute__((target("avx2,f16c"), noinline))
static void decode_blocks(float *d, int kind, const uint8_t *src, int64_t nblk) {
  const int64_t bb = block_bytes(kind);
  for (int64_t b = 0; b < nblk; b++, src += bb) {
    if (kind == KIND_Q4_1 || kind == KIND_Q4_1F) {
      float sc, mn;
      if (kind == KIND_Q4_1) { sc = half_at(src); mn = half_at(src + 2); } else { memcpy(&sc, src, 4); memcpy(&mn, src + 4, 4); }
      const uint8_t *q = src + (kind == KIND_Q4_1 ? 4 : 8);
      for (int j = 0; j < 16; j++) { d[j] = sc * (float)(q[j] & 15) + mn; d[j + 16] = sc * (float)(q[j] >> 4) + mn; }
      d += 32;
    } else if (kind == KIND_Q5_0 || kind == KIND_Q5_1) {
      const int one = kind == KIND_Q5_1;
      const float sc = half_at(src), mn = one ? half_at(src + 2) : 0.0f;
      const uint32_t qh = u32_at(src + (one ? 4 : 2));
      const uint8_t *q = src + (one ? 8 : 6);
      for (int j = 0; j < 16; j++) {
        const int lo = (q[j] & 15) | (int)(((qh >> j) & 1) << 4), hi = (q[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        if (one) { d[j] = sc * (float)lo + mn; d[j + 16] = sc * (float)hi + mn; }
        else { d[j] = sc * (float)(lo - 16); d[j + 16] = sc * (float)(hi - 16); }
      }
      d += 32;
    } else if (kind == KIND_Q4_K || kind == KIND_Q5_K || kind == KIND_Q4_KR) {
      // repacked Q4_K: d and dmin already widened (exactly), scales and mins a byte each; the same values
      const int rp = kind == KIND_Q4_KR;
      float dd, dmin;
      if (rp) { memcpy(&dd, src, 4); memcpy(&dmin, src + 4, 4); } else { dd = half_at(src); dmin = half_at(src + 2); }
      const uint8_t *qh = src + 16, *qs = src + (kind == KIND_Q5_K ? 48 : rp ? 24 : 16);
      for (int c = 0; c < 4; c++) {
        const int s0 = rp ? src[8 + 2 * c] : k_scale(src + 4, 2 * c, 0), n0 = rp ? src[16 + 2 * c] : k_scale(src + 4, 2 * c, 1);
        const int s1 = rp ? src[9 + 2 * c] : k_scale(src + 4, 2 * c + 1, 0), n1 = rp ? src[17 + 2 * c] : k_scale(src + 4, 2 * c + 1, 1);
        const float d0 = dd * (float)s0, m0 = dmin * (float)n0, d1 = dd * (float)s1, m1 = dmin * (float)n1;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++) {
          int lo = q[l] & 15, hi = q[l] >> 4;
          if (kind == KIND_Q5_K) { lo |= ((qh[l] >> (2 * c)) & 1) << 4; hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4; }
          d[64 * c + l] = d0 * (float)lo - m0;
          d[64 * c + 32 + l] = d1 * (float)hi - m1;
        }
      }
      d += 256;
    } else if (kind == KIND_Q6_KR) {   // Q6_K repacked: the same values as the stored block
      float dd;
      memcpy(&dd, src + 208, 4);
      for (int i = 0; i < 256; i++) {
        const uint8_t *g = src + 48 * (i >> 6) + 4 * ((i >> 4) & 3) + (i & 3);
        const int j = (i >> 2) & 3;
        const int q = (j < 3 ? g[16 * j] & 63 : (g[0] >> 6) | ((g[16] >> 6) << 2) | ((g[32] >> 6) << 4)) - 32;
        d[i] = (dd * (float)(int8_t)src[192 + (i >> 4)]) * (float)q;
      }
      d += 256;
    } else {   // Q6_K: ql[128], qh[64], int8 scales[16], f16 d
      const float dd = half_at(src + 208);
      for (int h = 0; h < 2; h++) {
        for (int k = 0; k < 4; k++) {
          const uint8_t *lo = src + 64 * h + 32 * (k & 1), *hb = src + 128 + 32 * h;
          const int shift = k < 2 ? 0 : 4;
          const float s0 = dd * (float)(int8_t)src[192 + 8 * h + 2 * k], s1 = dd * (float)(int8_t)src[192 + 8 * h + 2 * k + 1];
          for (int l = 0; l < 32; l++) {
            const int q = (((lo[l] >> shift) & 15) | (((hb[l] >> (2 * k)) & 3) << 4)) - 32;
            d[128 * h + 32 * k + l] = (l < 16 ? s0 : s1) * (float)q;
          }
        }
      }
      d += 256;
    }
  }
}

// Rows [r0, r0+rows) of a stored weight widened to f32 (kinds: 1 bf16, 2 f16, 3 q8, 4 q4, block kinds).
static void widen(float *dst, int kind, const void *w, const void *scales, int64_t r0, int64_t rows, int64_t K) {
  for (int64_t r = 0; r < rows; r++) {
    float *d = dst + r * K;
    const int64_t off = (r0 + r) * K;
    if (kind == 1) {
      const uint16_t *s = (const uint16_t *)w + off;
      for (int64_t k = 0; k < K; k++) { uint32_t b = (uint32_t)s[k] << 16; memcpy(d + k, &b, 4); }
    } else if (kind == 2) {
      const uint16_t *s = (const uint16_t *)w + off;
      for (int64_t k = 0; k < K; k++) d[k] = g_f16[s[k]];
    } else if (kind == 3) {
      const int8_t *s = (const int8_t *)w + off;
      for (int64_t b = 0; b < K; b += 32) {
        const float sc = g_f16[((const uint16_t *)scales)[(off + b) / 32]];
        for (int j = 0; j < 32; j++) d[b + j] = (float)s[b + j] * sc;
      }
    } else if (kind == KIND_Q4_0R) {
      widen_q4_0r(d, (const uint8_t *)w + (r0 + r) * kind_bytes(kind, K), K / 32, 0, K / 32);
    } else if (kind >= KIND_Q4_1) {
      decode_blocks(d, kind, (const uint8_t *)w + (r0 + r) * kind_bytes(kind, K), K / block_elems(kind));
    } else if (is_block_kind(kind)) {
      // (products of an f16 and an integer below 2^8: exact in f32, the file's values)
      const uint8_t *blk = (const uint8_t *)w + (r0 + r) * kind_bytes(kind, K);
      for (int64_t b = 0; b < K; b += 32, blk += block_bytes(kind)) {
        uint16_t h; memcpy(&h, blk, 2);
        const float sc = g_f16[h];
        if (kind == KIND_Q8_0) for (int j = 0; j < 32; j++) d[b + j] = (float)(int8_t)blk[2 + j] * sc;
        else for (int j = 0; j < 16; j++) { d[b + j] = (float)((blk[2 + j] & 15) - 8) * sc; d[b + j + 16] = (float)((blk[2 + j] >> 4) - 8) * sc; }
      }
    } else {
      const uint8_t *s = (const uint8_t *)w, *meta = q4_meta(scales, r0 + r, K);
      for (int64_t b = 0; b < K; b += 32) {
        const int64_t blk = (off + b) / 32;
        const float sc = q4_scale(meta, b / 32), mn = q4_min(meta, K / 32, b / 32);
        const uint8_t *q = s + blk * 16;
        for (int j = 0; j < 16; j++) { d[b + j] = (float)(q[j] & 15) * sc + mn; d[b + j + 16] = (float)(q[j] >> 4) * sc + mn; }
      }
    }
  }
}

// ------------------------------------------------------- widened weights, own AVX2 kernel (f16 …)
//
// Where the CPU has AVX2, FMA and F16C (every x86-64 CPU since 2013-2015 that has AVX2) the
// widened product does not go through the library: widening W to f32, the library packing that
// copy again, and the library packing x again for every panel cost more than the arithmetic on a
// CPU whose L2 holds neither x nor a panel (a 128-token prefill of 270M: x is 640 KiB, a panel
// 1 MiB, Zen 3's L2 512 KiB). Instead, as in BLIS / GotoBLAS:
//   - x is packed once per call, [K blocks of LK][row blocks of 6 (or 4)][k][6 (or 4)];
//   - a thread's chunk is LN output columns (W rows) and a range of row blocks; for each K block
//     it widens its W rows straight into the kernel's layout, [16-column panel][k][16] (the
//     widening is the packing: eight rows, eight k at a time, widened in registers and transposed;
//     q8/q4 through a small row-major buffer), while prefetching the next K block's stored bytes;
//   - a 6x16 register tile (12 ymm accumulators) runs over the K block: two loads of W, six
//     broadcasts of x and twelve FMAs per k. W's panel (16 KiB) stays in L1, x's K block in L2.
// Each output starts from 0 (or its old value when accumulating), and takes the K blocks in order,
// k ascending within each, one FMA per product: the order depends on the shape alone, so the sums
// do not depend on the thread count. They are not the library's order (agreement to float rounding).
#define LK 256                    // k per K block
#define LN 64                     // output columns per chunk (4 panels of 16)
#define LMC 192                   // most x rows per chunk

// k in [k0, k0 + kc) of weight row `row` widened to f32 into d (f16 through F16C's VCVTPH2PS,
// exact for every half, subnormals included whatever MXCSR says, a NaN stays a NaN). Every value
// is the scalar widen()'s: "fma" is not in this target and it is never inlined into the FMA code
// below, so q4's multiply and add are never contracted into one rounding. For q8/q4, k0 and kc
// are multiples of 32.
__attribute__((target("avx2,f16c"), noinline))
static void widen_row_avx2(float *d, int kind, const void *w, const void *scales, int64_t row, int64_t k0, int64_t kc, int64_t K) {
  const int64_t off = row * K + k0;
  int64_t k = 0;
  if (kind == 1) {
    const uint16_t *s = (const uint16_t *)w + off;
    for (; k + 8 <= kc; k += 8) {
      const __m256i b = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + k))), 16);
      _mm256_storeu_ps(d + k, _mm256_castsi256_ps(b));
    }
    for (; k < kc; k++) { uint32_t b = (uint32_t)s[k] << 16; memcpy(d + k, &b, 4); }
  } else if (kind == 2) {
    const uint16_t *s = (const uint16_t *)w + off;
    for (; k + 8 <= kc; k += 8) _mm256_storeu_ps(d + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + k))));
    for (; k < kc; k++) d[k] = g_f16[s[k]];
  } else if (kind == 3) {
    const int8_t *s = (const int8_t *)w + off;
    for (int64_t b = 0; b < kc; b += 32) {
      const __m256 sc = _mm256_set1_ps(g_f16[((const uint16_t *)scales)[(off + b) / 32]]);
      for (int j = 0; j < 32; j += 8) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(s + b + j))));
        _mm256_storeu_ps(d + b + j, _mm256_mul_ps(v, sc));
      }
    }
  } else if (kind == KIND_Q4_0R) {
    widen_q4_0r(d, (const uint8_t *)w + row * kind_bytes(kind, K), K / 32, k0 / 32, kc / 32);
  } else if (kind >= KIND_Q4_1) {
    decode_blocks(d, kind, (const uint8_t *)w + row * kind_bytes(kind, K) + kind_bytes(kind, k0), kc / block_elems(kind));
  } else if (is_block_kind(kind)) {
    const int64_t bb = block_bytes(kind);
    const uint8_t *blk = (const uint8_t *)w + row * kind_bytes(kind, K) + k0 / 32 * bb;
    const __m128i lo4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
    for (int64_t b = 0; b < kc; b += 32, blk += bb) {
      uint16_t h; memcpy(&h, blk, 2);
      const __m256 sc = _mm256_set1_ps(g_f16[h]);
      if (kind == KIND_Q8_0) {
        for (int j = 0; j < 32; j += 8) {
          const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + j))));
          _mm256_storeu_ps(d + b + j, _mm256_mul_ps(v, sc));
        }
      } else {
        const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, lo4), eight), hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), eight);
        const __m128i part[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
        for (int p = 0; p < 4; p++) {
          const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[p]));
          _mm256_storeu_ps(d + b + 8 * p, _mm256_mul_ps(v, sc));
        }
      }
    }
  } else {
    const uint8_t *s = (const uint8_t *)w, *meta = q4_meta(scales, row, K);
    const __m128i lo4 = _mm_set1_epi8(15);
    for (int64_t b = 0; b < kc; b += 32) {
      const int64_t blk = (off + b) / 32, bi = (k0 + b) / 32;
      const __m256 sc = _mm256_set1_ps(q4_scale(meta, bi)), mn = _mm256_set1_ps(q4_min(meta, K / 32, bi));
      const __m128i q = _mm_loadu_si128((const __m128i *)(s + blk * 16));
      const __m128i lo = _mm_and_si128(q, lo4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), lo4);
      const __m128i part[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
      for (int h = 0; h < 4; h++) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part[h]));
        _mm256_storeu_ps(d + b + 8 * h, _mm256_add_ps(_mm256_mul_ps(v, sc), mn));
      }
    }
  }
}

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

// Eight rows of 8 floats (r[i]) transposed: column k goes to dst + k·16.
AVX2_FN static inline void tr8x8_regs(float *dst, const __m256 *r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]), t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]), t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE), s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_store_ps(dst + 0 * 16, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_store_ps(dst + 1 * 16, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_store_ps(dst + 2 * 16, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_store_ps(dst + 3 * 16, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_store_ps(dst + 4 * 16, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_store_ps(dst + 5 * 16, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_store_ps(dst + 6 * 16, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_store_ps(dst + 7 * 16, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// Rows r[0..8) (row-major, stride ld) transposed: column k goes to dst + k·16 (8 floats).
AVX2_FN static inline void tr8x8(float *dst, const float *src, int64_t ld) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld);
  tr8x8_regs(dst, r);
}

// Eight f16 (kind 2) or bf16 (kind 1) rows s + i·K, k in [0, 8), widened (exactly, as
// widen_row_avx2 does) and transposed: column k goes to dst + k·16.
AVX2_FN static inline void tr8x8_half(float *dst, const uint16_t *s, int64_t K, int kind) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) {
    const __m128i h = _mm_loadu_si128((const __m128i *)(s + i * K));
    r[i] = kind == 2 ? _mm256_cvtph_ps(h) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  tr8x8_regs(dst, r);
}

// W rows [n0, n0 + nc) (nc <= LN), k in [k0, k0 + kc), into wp = [panel][k][16] (columns past nc
// zero); tmp holds eight widened rows.
AVX2_FN static void pack_w(float *wp, float *tmp, int kind, const void *w, const void *scales, int64_t n0, int nc, int64_t k0, int64_t kc, int64_t K) {
  const int groups = (nc + 15) / 16 * 2;
  for (int g = 0; g < groups; g++) {
    if (kind <= 2 && 8 * g + 8 <= nc) {
      // f16 / bf16, eight whole rows: straight from the stored bits into the layout
      float *d = wp + (g / 2) * kc * 16 + (g % 2) * 8;
      const uint16_t *s = (const uint16_t *)w + (n0 + 8 * g) * K + k0;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) tr8x8_half(d + k * 16, s + k, K, kind);
      for (; k < kc; k++) for (int i = 0; i < 8; i++) {
        const uint16_t h = s[i * K + k];
        if (kind == 2) d[k * 16 + i] = g_f16[h]; else { uint32_t b = (uint32_t)h << 16; memcpy(d + k * 16 + i, &b, 4); }
      }
      continue;
    }
    for (int i = 0; i < 8; i++) {
      if (8 * g + i < nc) widen_row_avx2(tmp + i * LK, kind, w, scales, n0 + 8 * g + i, k0, kc, K);
      else memset(tmp + i * LK, 0, (size_t)kc * 4);
    }
    float *d = wp + (g / 2) * kc * 16 + (g % 2) * 8;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) tr8x8(d + k * 16, tmp + k, LK);
    for (; k < kc; k++) for (int i = 0; i < 8; i++) d[k * 16 + i] = tmp[i * LK + k];
  }
}

// C[R,16] (row stride ldc) = (load ? C : 0) + a·b over kc, R = 6 or 4: a = [kc][R] (x rows),
// b = [kc][16] (W columns). 2R ymm accumulators; R = 4 fills the rows 6 does not divide.
AVX2_FN static inline __attribute__((always_inline)) void kern_rx16(const int R, int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) {
  __m256 c0[6], c1[6];
  for (int i = 0; i < R; i++) {
    c0[i] = load ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
    c1[i] = load ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++, a += R, b += 16) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    for (int i = 0; i < R; i++) {
      const __m256 x = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(x, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(x, b1, c1[i]);
    }
  }
  for (int i = 0; i < R; i++) { _mm256_storeu_ps(c + i * ldc, c0[i]); _mm256_storeu_ps(c + i * ldc + 8, c1[i]); }
}
AVX2_FN static void kern6x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) { kern_rx16(6, kc, a, b, c, ldc, load); }
AVX2_FN static void kern4x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int load) { kern_rx16(4, kc, a, b, c, ldc, load); }

static float *g_xp; static size_t g_xp_cap;                  // packed x
static float *g_wp[MAX_THREADS], *g_wtmp[MAX_THREADS];       // each thread's packed W block and widening rows

// x's rows go in blocks: n6 of 6 rows, then n4 of 4 (M = 128 is 20·6 + 2·4), the last padded with
// zero rows where M needs it; Mp rows in all. A chunk takes blocks [mc·(c % nm), +mc).
typedef struct { int kind; int64_t M, N, K, n6, n4, Mp, mc, nm; const void *w; const void *scales; const float *x; float *out; int acc; } wl_job;
static inline int64_t wl_m0(const wl_job *j, int64_t b) { return b < j->n6 ? 6 * b : 6 * j->n6 + 4 * (b - j->n6); }

// Block b of x's rows into every K block of the packed x ([K block][rows][k][height], so a K
// block's rows are contiguous and a block's k-th column is `height` consecutive floats).
AVX2_FN static void wl_pack_x(const void *p, int64_t b, int tid) {
  (void)tid;
  const wl_job *j = (const wl_job *)p;
  const int64_t m0 = wl_m0(j, b), K = j->K;
  const int h = b < j->n6 ? 6 : 4;
  for (int64_t k0 = 0; k0 < K; k0 += LK) {
    const int64_t kc = K - k0 < LK ? K - k0 : LK;
    float *d = g_xp + k0 * j->Mp + m0 * kc;
    for (int i = 0; i < h; i++) {
      if (m0 + i >= j->M) { for (int64_t k = 0; k < kc; k++) d[k * h + i] = 0.0f; continue; }
      const float *s = j->x + (m0 + i) * K + k0;
      for (int64_t k = 0; k < kc; k++) d[k * h + i] = s[k];
    }
  }
}

// The stored bytes of W's rows [n0, n0 + nc), k in [k0, k0 + kc), fetched into L2 a few cache
// lines at a time while the kernel works on the previous K block: rows are read 2·LK bytes
// (f16) at a time, a pattern the hardware prefetchers do not follow ahead, and streaming W from
// memory inside pack_w was a tenth of the product's time.
typedef struct { const char *base; int64_t stride, lines, total, next; } wl_pf;
static void wl_pf_start(wl_pf *f, const wl_job *j, int64_t n0, int nc, int64_t k0) {
  f->next = f->total = 0;
  if (n0 >= j->N || k0 >= j->K) return;
  const int64_t kc = j->K - k0 < LK ? j->K - k0 : LK;
  f->stride = kind_bytes(j->kind, j->K);
  f->base = (const char *)j->w + n0 * f->stride + kind_bytes(j->kind, k0);
  f->lines = (kind_bytes(j->kind, kc) + 63) / 64 + 1;   // + 1: the range need not start on a line
  f->total = f->lines * (j->N - n0 < nc ? j->N - n0 : nc);
}
static inline void wl_pf_some(wl_pf *f, int n) {
  for (; n > 0 && f->next < f->total; n--, f->next++)
    _mm_prefetch(f->base + (f->next / f->lines) * f->stride + (f->next % f->lines) * 64, _MM_HINT_T1);
}

// Chunk c: output columns [LN·(c / nm), +LN), row blocks [mc·(c % nm), +mc).
AVX2_FN static void wl_chunk(const void *p, int64_t c, int tid) {
  const wl_job *j = (const wl_job *)p;
  const int64_t n0 = (c / j->nm) * LN, ba = (c % j->nm) * j->mc, nblk = j->n6 + j->n4, bb = ba + j->mc < nblk ? ba + j->mc : nblk;
  const int nc = j->N - n0 < LN ? (int)(j->N - n0) : LN, np = (nc + 15) / 16;
  float *wp = g_wp[tid], *tmp = g_wtmp[tid];
  _Alignas(32) float edge[6 * 16];
  for (int64_t k0 = 0; k0 < j->K; k0 += LK) {
    const int64_t kc = j->K - k0 < LK ? j->K - k0 : LK;
    int64_t t0 = prof_now();
    pack_w(wp, tmp, j->kind, j->w, j->scales, n0, nc, k0, kc, j->K);
    prof_add(PROF_ROUND, t0);
    t0 = prof_now();
    // the next K block of these rows, or after the last the first of the next chunk's rows
    wl_pf pf;
    if (k0 + LK < j->K) wl_pf_start(&pf, j, n0, nc, k0 + LK); else wl_pf_start(&pf, j, n0 + LN, LN, 0);
    const int64_t calls = np * (bb - ba), per = (pf.total + calls - 1) / (calls ? calls : 1);
    const int load = k0 > 0 || j->acc;
    for (int s = 0; s < np; s++) {
      const float *b = wp + s * kc * 16;
      const int cols = nc - 16 * s < 16 ? nc - 16 * s : 16;
      for (int64_t bi = ba; bi < bb; bi++) {
        const int64_t m0 = wl_m0(j, bi);
        const int h = bi < j->n6 ? 6 : 4, rows = j->M - m0 < h ? (int)(j->M - m0) : h;
        const float *a = g_xp + k0 * j->Mp + m0 * kc;
        float *cp = j->out + m0 * j->N + n0 + 16 * s;
        wl_pf_some(&pf, (int)per);
        if (rows == h && cols == 16) {
          if (h == 6) kern6x16(kc, a, b, cp, j->N, load); else kern4x16(kc, a, b, cp, j->N, load);
          continue;
        }
        // an edge tile: through a whole tile's copy, of which only the real rows and columns go back
        if (load) for (int r = 0; r < rows; r++) memcpy(edge + r * 16, cp + r * j->N, (size_t)cols * 4);
        if (h == 6) kern6x16(kc, a, b, edge, 16, load); else kern4x16(kc, a, b, edge, 16, load);
        for (int r = 0; r < rows; r++) memcpy(cp + r * j->N, edge + r * 16, (size_t)cols * 4);
      }
    }
    prof_add(PROF_GEMM, t0);
  }
}

static int g_wl = -1;     // AVX2 + FMA + F16C present (the kernel above), -1: not checked yet
static int g_wl_on = 1;   // useWideKernel(false): the scalar widening and the library's sgemm instead

static int wl_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

// The widened product on the kernel above; 0 when it cannot run here (no AVX2/FMA/F16C, switched
// off, no memory), so the caller takes the library path.
static int linear_wide(int kind, int64_t M, int64_t N, int64_t K, const void *w, const void *scales, const float *x, float *out, int acc) {
  if (g_wl < 0) g_wl = wl_supported();
  if (!g_wl || !g_wl_on) return 0;
  // row blocks (see wl_job): 6 rows each, but for a remainder of 1 or 2 rows two blocks of 4
  // replace one of 6 and for 3 or 4 rows one block of 4 follows (less padding, less work)
  int64_t n6 = M / 6, n4 = 0;
  switch (M % 6) {
    case 1: case 2: if (n6) { n6--; n4 = 2; } else n4 = 1; break;
    case 3: case 4: n4 = 1; break;
    case 5: n6++; break;
  }
  const int64_t nblk = n6 + n4, Mp = 6 * n6 + 4 * n4;
  // blocks per chunk: all of them up to LMC rows, else ranges of about equal size
  const int64_t nm = (Mp + LMC - 1) / LMC, mc = (nblk + nm - 1) / nm;
  if ((size_t)(Mp * K) > g_xp_cap) {
    free(g_xp); g_xp = (float *)aligned_alloc(64, ((size_t)(Mp * K) * 4 + 63) / 64 * 64);
    g_xp_cap = g_xp ? (size_t)(Mp * K) : 0;
    if (!g_xp) return 0;
  }
  for (int t = 0; t < g_threads; t++) {
    if (!g_wp[t]) g_wp[t] = (float *)aligned_alloc(64, LN * LK * 4);
    if (!g_wtmp[t]) g_wtmp[t] = (float *)aligned_alloc(64, 8 * LK * 4);
    if (!g_wp[t] || !g_wtmp[t]) return 0;
  }
  wl_job j = { kind, M, N, K, n6, n4, Mp, mc, (nblk + mc - 1) / mc, w, scales, x, out, acc };
  pool_run(wl_pack_x, &j, nblk);
  pool_run(wl_chunk, &j, (N + LN - 1) / LN * j.nm);
  return 1;
}

typedef struct { int kind; int64_t M, N, K, nb; const void *w; const void *scales; const float *x; float *out; float beta; } lin_job;

static void linear_chunk(const void *p, int64_t c, int tid) {
  const lin_job *j = (const lin_job *)p;
  const int64_t r0 = c * j->nb, rows = j->N - r0 < j->nb ? j->N - r0 : j->nb;
  float *panel = g_panels[tid];
  int64_t t0 = prof_now();
  widen(panel, j->kind, j->w, j->scales, r0, rows, j->K);
  prof_add(PROF_ROUND, t0);
  t0 = prof_now();
  gemm(0, 1, j->M, rows, j->K, j->x, j->K, panel, j->K, j->beta, j->out + r0, j->N);
  prof_add(PROF_GEMM, t0);
}

// linear(out, x, w, kind, scales, unused, M, N, K, accumulate, int8?): out[M,N] (+)= x[M,K]·Wᵀ, W
// stored [N,K]; with int8 (default false) q8/q4 weights multiply int8-quantized rows of x
// (int8_linear.h). Kinds 8..16 are block weights as stored (a Uint8Array, no scales;
// features().blockKinds), always widened: exact products on the file's values. Slot 5 held q4's f32 mins before q4 coded them into `scales` (features().q4Codes):
// the slots stay where they were, so an addon of either kind reads the other's calls.
static napi_value Linear(napi_env env, napi_callback_info info) {
  size_t argc = 11; napi_value a[11];
  CHECK(napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 10) return fail(env, "linear() needs 10 arguments");
  bool int8 = false;
  if (argc > 10 && napi_get_value_bool(env, a[10], &int8) != napi_ok) return fail(env, "linear(): int8 must be a boolean");
  if (!g_dnnl && !g_cblas) return fail(env, "linear(): no library loaded");
  int32_t kind; int64_t M, N, K; bool acc; float *out, *x; void *scales = NULL; void *w; size_t lo, lx, lw, ls = 0;
  if (napi_get_value_int32(env, a[3], &kind) != napi_ok || napi_get_value_int64(env, a[6], &M) != napi_ok ||
      napi_get_value_int64(env, a[7], &N) != napi_ok || napi_get_value_int64(env, a[8], &K) != napi_ok ||
      napi_get_value_bool(env, a[9], &acc) != napi_ok) return fail(env, "linear(): bad dimensions");
  if (!typed(env, a[0], napi_float32_array, (void **)&out, &lo) || !typed(env, a[1], napi_float32_array, (void **)&x, &lx)) return fail(env, "linear(): out and x must be Float32Arrays");
  static const napi_typedarray_type wt[5] = { napi_float32_array, napi_uint16_array, napi_uint16_array, napi_int8_array, napi_uint8_array };
  const int block = is_block_kind(kind);
  if (!block && (kind < 0 || kind > 4)) return fail(env, "linear(): unknown weight kind");
  if (!typed(env, a[2], block ? napi_uint8_array : wt[kind], &w, &lw)) return fail(env, "linear(): weight data has the wrong array type for its kind");
  if (M <= 0 || N <= 0 || K <= 0) return NULL;
  if (block && K % block_elems(kind) != 0) return fail(env, "linear(): block weights need whole blocks per row");
  if ((int64_t)lo < M * N || (int64_t)lx < M * K || (int64_t)lw < (block ? N * kind_bytes(kind, K) : kind == 4 ? N * K / 2 : N * K)) return fail(env, "linear(): an operand is smaller than its dimensions");
  if (kind == 3 && (K % 32 != 0 || !typed(env, a[4], napi_uint16_array, &scales, &ls) || (int64_t)ls < N * K / 32)) return fail(env, "linear(): q8 weight needs its f16 scales (a Uint16Array)");
  if (kind == 4 && (K % 32 != 0 || !typed(env, a[4], napi_uint8_array, &scales, &ls) || (int64_t)ls < N * q4_meta_bytes(K))) return fail(env, "linear(): q4 weight needs its scale codes");
  if (kind == 0) { gemm_par(0, 1, M, N, K, x, K, (const float *)w, K, acc ? 1.0f : 0.0f, out, N); return NULL; }
  // (block kinds have no int8 kernel here: they are widened, exact products on the file's values)
  if (int8 && (kind == 3 || kind == 4) && linear_int8(kind, M, N, K, w, scales, x, out, acc)) return NULL;
  if (linear_wide(kind, M, N, K, w, scales, x, out, acc)) return NULL;
  // Without that kernel: panels of W rows widened by the thread that multiplies them, into its
  // own buffer of about 1 MiB, and multiplied by the library's sgemm.
  lin_job j = { kind, M, N, K, 0, w, scales, x, out, acc ? 1.0f : 0.0f };
  int64_t nb = (1 << 18) / K; if (nb < 16) nb = 16; nb = (nb + 15) / 16 * 16; if (nb > N) nb = N;
  j.nb = nb;
  for (int t = 0; t < g_threads; t++) {
    size_t want = (size_t)(nb * K);
    if (want > g_panel_cap[t]) {
      free(g_panels[t]); g_panels[t] = (float *)aligned_alloc(64, (want * 4 + 63) / 64 * 64);
      if (!g_panels[t]) { g_panel_cap[t] = 0; return fail(env, "linear(): out of memory for a weight panel"); }
      g_panel_cap[t] = want;
    }
  }
  pool_run(linear_chunk, &j, (N + nb - 1) / nb);
  return NULL;
}

// ------------------------------------------------------------------------------------------ AdamW
//
// The WASM kernel (kernels/train_ops.as) computes AdamW in f64 per element, two lanes at a time;
// its square root and two divisions per value bound it by arithmetic, not memory (about a seventh
// of a 270M bf16 step). Here the same formula runs eight lanes wide. Every operation is the same
// IEEE one on the same values (f32 -> f64 is exact; +, ×, ÷, √ are correctly rounded; f64 -> f32
// rounds to nearest even), and multiply-adds are never fused, so the bits are the kernel's:
//   m' = b1·m + c1·g;  v' = b2·v + (c2·g)·g;  p' = p·keep − (ss·m') / (√v' / bc2 + eps)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#pragma STDC FP_CONTRACT OFF

typedef struct { float *p; const float *g; float *m, *v; int64_t n, per; double b1, c1, b2, c2, ss, bc2, eps, keep; } adamw_job;

static void adamw_tail(const adamw_job *j, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i++) {
    const double gi = (double)j->g[i];
    const double mi = j->b1 * (double)j->m[i] + j->c1 * gi;
    const double vi = j->b2 * (double)j->v[i] + j->c2 * gi * gi;
    j->m[i] = (float)mi;
    j->v[i] = (float)vi;
    j->p[i] = (float)((double)j->p[i] * j->keep - j->ss * mi / (sqrt(vi) / j->bc2 + j->eps));
  }
}

__attribute__((target("avx512f")))
static void adamw_avx512(const adamw_job *j, int64_t i0, int64_t i1) {
  const __m512d B1 = _mm512_set1_pd(j->b1), C1 = _mm512_set1_pd(j->c1), B2 = _mm512_set1_pd(j->b2), C2 = _mm512_set1_pd(j->c2);
  const __m512d SS = _mm512_set1_pd(j->ss), BC = _mm512_set1_pd(j->bc2), EP = _mm512_set1_pd(j->eps), KP = _mm512_set1_pd(j->keep);
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m512d gi = _mm512_cvtps_pd(_mm256_loadu_ps(j->g + i));
    const __m512d mi = _mm512_add_pd(_mm512_mul_pd(B1, _mm512_cvtps_pd(_mm256_loadu_ps(j->m + i))), _mm512_mul_pd(C1, gi));
    const __m512d vi = _mm512_add_pd(_mm512_mul_pd(B2, _mm512_cvtps_pd(_mm256_loadu_ps(j->v + i))), _mm512_mul_pd(_mm512_mul_pd(C2, gi), gi));
    _mm256_storeu_ps(j->m + i, _mm512_cvtpd_ps(mi));
    _mm256_storeu_ps(j->v + i, _mm512_cvtpd_ps(vi));
    const __m512d pi = _mm512_cvtps_pd(_mm256_loadu_ps(j->p + i));
    const __m512d den = _mm512_add_pd(_mm512_div_pd(_mm512_sqrt_pd(vi), BC), EP);
    _mm256_storeu_ps(j->p + i, _mm512_cvtpd_ps(_mm512_sub_pd(_mm512_mul_pd(pi, KP), _mm512_div_pd(_mm512_mul_pd(SS, mi), den))));
  }
  adamw_tail(j, i, i1);
}
#pragma GCC pop_options

static int g_avx512f = -1;

static void adamw_chunk(const void *p, int64_t c, int tid) {
  (void)tid;
  const adamw_job *j = (const adamw_job *)p;
  const int64_t i0 = c * j->per, i1 = i0 + j->per < j->n ? i0 + j->per : j->n;
  // IEEE defaults (round to nearest, subnormals kept), whatever a library left in this thread
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(0x1f80);
  if (g_avx512f) adamw_avx512(j, i0, i1); else adamw_tail(j, i0, i1);
  _mm_setcsr(csr);
}

// adamw(p, g, m, v, n, b1, c1, b2, c2, stepSize, bc2Sqrt, eps, keep): one AdamW step over n values
// in place (p, m, v), the formula of the WASM kernel, on this file's threads.
static napi_value AdamW(napi_env env, napi_callback_info info) {
  size_t argc = 13; napi_value a[13]; float *pv[4]; size_t len[4]; int64_t n; double k[8];
  CHECK(napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 13) return fail(env, "adamw() needs 13 arguments");
  for (int i = 0; i < 4; i++) if (!typed(env, a[i], napi_float32_array, (void **)&pv[i], &len[i])) return fail(env, "adamw(): p, g, m and v must be Float32Arrays");
  if (napi_get_value_int64(env, a[4], &n) != napi_ok) return fail(env, "adamw(): n must be a number");
  for (int i = 0; i < 8; i++) if (napi_get_value_double(env, a[5 + i], &k[i]) != napi_ok) return fail(env, "adamw(): the coefficients must be numbers");
  for (int i = 0; i < 4; i++) if ((int64_t)len[i] < n) return fail(env, "adamw(): an array is shorter than n");
  if (n <= 0) return NULL;
  if (g_avx512f < 0) { __builtin_cpu_init(); g_avx512f = __builtin_cpu_supports("avx512f"); }
  adamw_job j = { pv[0], pv[1], pv[2], pv[3], n, 1 << 16, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7] };
  pool_run(adamw_chunk, &j, (n + j.per - 1) / j.per);
  return NULL;
}

// profile(on) -> { round, gemm, copy }: the CPU seconds counted since the previous call, which
// also switches counting on or off (off by default: two clock reads per block otherwise).
static napi_value Profile(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1], out, v; bool on = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return fail(env, "profile() needs a boolean");
  static const char *names[PROF_N] = { "round", "gemm", "copy" };
  CHECK(napi_create_object(env, &out));
  for (int i = 0; i < PROF_N; i++) {
    CHECK(napi_create_double(env, (double)atomic_exchange(&g_prof_ns[i], 0) / 1e9, &v));
    CHECK(napi_set_named_property(env, out, names[i], v));
  }
  g_prof = on;
  return out;
}

// useAmx(on) -> whether gemmBf16 now runs on AMX (where oneDNN offers it); off is the BLAS-like
// bf16 GEMM (the tests compare the two paths in one process; OPENELM_AMX=on sets it for a run).
static napi_value UseAmx(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1], out; bool on = true;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return fail(env, "useAmx() needs a boolean");
  g_amx_on = on;
  CHECK(napi_get_boolean(env, amx_active(), &out));
  return out;
}

// useWideKernel(on) -> whether widened weights (bf16/f16/q8/q4) now go through this file's AVX2
// kernel (where the CPU has AVX2, FMA and F16C); off is the library path (scalar widening, the
// library's sgemm per panel). The tests compare the two in one process.
static napi_value UseWideKernel(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1], out; bool on = true;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return fail(env, "useWideKernel() needs a boolean");
  if (g_wl < 0) g_wl = wl_supported();
  g_wl_on = on;
  CHECK(napi_get_boolean(env, g_wl && g_wl_on, &out));
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor p[] = {
    { "load", NULL, Load, NULL, NULL, NULL, napi_default, NULL },
    { "setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_default, NULL },
    { "sgemm", NULL, Sgemm, NULL, NULL, NULL, napi_default, NULL },
    { "gemmBf16", NULL, GemmBf16, NULL, NULL, NULL, napi_default, NULL },
    { "features", NULL, Features, NULL, NULL, NULL, napi_default, NULL },
    { "useAmx", NULL, UseAmx, NULL, NULL, NULL, napi_default, NULL },
    { "useWideKernel", NULL, UseWideKernel, NULL, NULL, NULL, napi_default, NULL },
    { "profile", NULL, Profile, NULL, NULL, NULL, napi_default, NULL },
    { "adamw", NULL, AdamW, NULL, NULL, NULL, napi_default, NULL },
    { "linear", NULL, Linear, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof p / sizeof p[0], p) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
