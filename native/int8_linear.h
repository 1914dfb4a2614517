// Integer prefill for q8/q4 weights with AVX512-VNNI: out[M,N] (+)= x[M,K]·Wᵀ where x is quantized
// per row to int8 blocks of 32 (llama.cpp's Q8_0 activations: d = amax/127, q = round(x·127/amax),
// exactly as the WASM integer GEMM quantizes) and each 32-block's dot product is exact in int32
// (VPDPBUSD, 64 multiply-adds per instruction against 16 for an f32 FMA), then scaled in f32 in
// the WASM kernel's order, block after block:
//
//   q8 (value = qw·sw):        out = fma(dot, sw·d, out)
//   q4 (value = qw·s + m):     out = fma(dot, s·d, out);  out = fma(m, d·Σqx, out)
//
// VPDPBUSD multiplies unsigned by signed bytes. The activations are the unsigned operand, stored
// offset by 128 (qx + 128 in 1..255), and the weights the signed one (q8 as stored, q4 nibbles
// 0..15); the offset's contribution 128·Σqw per block and column is known when the weights are
// packed, and starting each block's int32 accumulator at −128·Σqw leaves the exact dot. So the
// integer dots equal the WASM kernel's, and the f32 folding is the same sequence of operations.
//
// Weights are repacked per call, one panel of 32 output columns at a time by the thread that then
// uses it (in L2): per 32-block, 8 groups of 4 consecutive k, each group two 64-byte vectors holding
// those 4 bytes for 16 columns, so one broadcast of 4 activation bytes feeds 16 columns at once. The
// repacking is a 16×16 transpose of 32-bit words (a few shuffles per 64 bytes), small next to the
// M·N·K multiply-adds for the M ≥ 32 rows this path is used for. Each output element is computed by
// one panel in a fixed order, so results do not depend on the thread count.

#include <immintrin.h>

#define VNNI_FN __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define I8_PANEL 32               // output columns per packed panel
#define I8_BLOCK_BYTES 1024       // packed bytes per 32-block of a panel (8 groups × 2 × 64)

static int i8_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

// Bytes of one packed panel for K: the groups, then sw[nb][32], mn[nb][32] (q4) and the int32
// accumulator starts −128·Σqw [nb][32].
static size_t i8_panel_bytes(int64_t K) { return (size_t)(K / 32) * (I8_BLOCK_BYTES + 3 * I8_PANEL * 4); }

// In place: r[i] = row i (16 words) -> r[j] = column j (16 words).
VNNI_FN static inline void i8_transpose16(__m512i r[16]) {
  __m512i t[16], s[16];
  for (int i = 0; i < 8; i++) { t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]); t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]); }
  // s[4q + c]: in 128-bit lane L, column 4L + c of rows 4q..4q+3
  for (int q = 0; q < 4; q++) {
    s[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q + 0], t[4 * q + 2]);
    s[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q + 0], t[4 * q + 2]);
    s[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    s[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i v0 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0x44), v1 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0x44), v3 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// −128·(per-column sums of the 4 signed bytes in each word of v), added to acc.
VNNI_FN static inline __m512i i8_bias(__m512i acc, __m512i v) {
  const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), v);
  return _mm512_sub_epi32(acc, _mm512_slli_epi32(s, 7));
}

// Pack columns [n0, n0 + nr) (nr <= 32; the rest zero) of a q8 (kind 3: an f16 scale per block,
// widened exactly through g_f16) or
// q4 weight (kind 4: per row D and M, then u8 scale and i8 min codes; q4_scale / q4_min).
VNNI_FN static void i8_pack(uint8_t *dst, int kind, const void *w, const void *scales, int64_t n0, int nr, int64_t K) {
  const int64_t nb = K / 32;
  float *sw = (float *)(dst + nb * I8_BLOCK_BYTES), *mn = sw + nb * I8_PANEL;
  int32_t *bias = (int32_t *)(mn + nb * I8_PANEL);
  for (int64_t b = 0; b < nb; b++) {
    for (int c = 0; c < I8_PANEL; c++) {
      if (c >= nr) { sw[b * I8_PANEL + c] = 0.0f; mn[b * I8_PANEL + c] = 0.0f; continue; }
      if (kind == 3) { sw[b * I8_PANEL + c] = g_f16[((const uint16_t *)scales)[(n0 + c) * nb + b]]; mn[b * I8_PANEL + c] = 0.0f; continue; }
      const uint8_t *meta = q4_meta(scales, n0 + c, K);
      sw[b * I8_PANEL + c] = q4_scale(meta, b);
      mn[b * I8_PANEL + c] = q4_min(meta, nb, b);
    }
  }
  const __m512i lo4 = _mm512_set1_epi8(0x0f);
  for (int h = 0; h < 2; h++) {
    __m512i r[16];
    if (kind == 3) {
      // 64 k (two blocks) of 16 rows at a time; word j of a row = k 4j..4j+3
      for (int64_t k0 = 0; k0 < K; k0 += 64) {
        const int64_t kn = K - k0 < 64 ? K - k0 : 64;
        const __mmask64 m = kn == 64 ? ~(__mmask64)0 : (((__mmask64)1 << kn) - 1);
        for (int i = 0; i < 16; i++) {
          const int c = h * 16 + i;
          r[i] = c < nr ? _mm512_maskz_loadu_epi8(m, (const int8_t *)w + (n0 + c) * K + k0) : _mm512_setzero_si512();
        }
        i8_transpose16(r);
        for (int64_t bb = 0; bb < kn / 32; bb++) {
          __m512i bs = _mm512_setzero_si512();
          for (int g = 0; g < 8; g++) {
            const __m512i v = r[bb * 8 + g];
            _mm512_storeu_si512(dst + (k0 / 32 + bb) * I8_BLOCK_BYTES + g * 128 + h * 64, v);
            bs = i8_bias(bs, v);
          }
          _mm512_storeu_si512(bias + (k0 / 32 + bb) * I8_PANEL + h * 16, bs);
        }
      }
    } else {
      // four blocks (64 bytes) of 16 rows at a time; in block b, k 4g..4g+3 are the low nibbles of
      // bytes 4g..4g+3 (g < 4) or the high nibbles of bytes 4(g-4).. (g >= 4)
      const uint8_t *q = (const uint8_t *)w;
      for (int64_t b0 = 0; b0 < nb; b0 += 4) {
        const int64_t bn = nb - b0 < 4 ? nb - b0 : 4;
        const __mmask64 m = bn == 4 ? ~(__mmask64)0 : (((__mmask64)1 << (bn * 16)) - 1);
        __m512i hi[16];
        for (int i = 0; i < 16; i++) {
          const int c = h * 16 + i;
          const __m512i v = c < nr ? _mm512_maskz_loadu_epi8(m, q + ((n0 + c) * K) / 2 + b0 * 16) : _mm512_setzero_si512();
          r[i] = _mm512_and_si512(v, lo4);
          hi[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4);
        }
        i8_transpose16(r);
        i8_transpose16(hi);
        // word j: block b0 + j/4, group j%4 (low) or 4 + j%4 (high)
        for (int64_t bb = 0; bb < bn; bb++) {
          uint8_t *blk = dst + (b0 + bb) * I8_BLOCK_BYTES + h * 64;
          __m512i bs = _mm512_setzero_si512();
          for (int g = 0; g < 4; g++) {
            _mm512_storeu_si512(blk + g * 128, r[bb * 4 + g]);
            _mm512_storeu_si512(blk + (4 + g) * 128, hi[bb * 4 + g]);
            bs = i8_bias(i8_bias(bs, r[bb * 4 + g]), hi[bb * 4 + g]);
          }
          _mm512_storeu_si512(bias + (b0 + bb) * I8_PANEL + h * 16, bs);
        }
      }
    }
  }
}

// R rows (1..4) of x against one packed panel: out[r][0..ncols) (+)= ... (xq: qx + 128 as bytes)
VNNI_FN static inline __attribute__((always_inline)) void i8_rows(const int R, const uint8_t *pw, const uint8_t *xq, const float *xd,
    const float *xs, int64_t K, float *out, int64_t ldo, int ncols, int acc, int q4) {
  const int64_t nb = K / 32;
  const float *sw = (const float *)(pw + nb * I8_BLOCK_BYTES), *mn = sw + nb * I8_PANEL;
  const int32_t *bias = (const int32_t *)(mn + nb * I8_PANEL);
  const __mmask16 m0 = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
  const __mmask16 m1 = ncols >= 32 ? 0xffff : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
  __m512 a[4][2];
  for (int r = 0; r < R; r++) {
    a[r][0] = acc ? _mm512_maskz_loadu_ps(m0, out + r * ldo) : _mm512_setzero_ps();
    a[r][1] = acc ? _mm512_maskz_loadu_ps(m1, out + r * ldo + 16) : _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *wb = pw + b * I8_BLOCK_BYTES;
    const __m512i z0 = _mm512_loadu_si512(bias + b * I8_PANEL), z1 = _mm512_loadu_si512(bias + b * I8_PANEL + 16);
    __m512i ia[4][2];
    for (int r = 0; r < R; r++) { ia[r][0] = z0; ia[r][1] = z1; }
    for (int g = 0; g < 8; g++) {
      const __m512i w0 = _mm512_loadu_si512(wb + g * 128), w1 = _mm512_loadu_si512(wb + g * 128 + 64);
      for (int r = 0; r < R; r++) {
        int32_t xv; memcpy(&xv, xq + r * K + b * 32 + 4 * g, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        ia[r][0] = _mm512_dpbusd_epi32(ia[r][0], xb, w0);
        ia[r][1] = _mm512_dpbusd_epi32(ia[r][1], xb, w1);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(sw + b * I8_PANEL), s1 = _mm512_loadu_ps(sw + b * I8_PANEL + 16);
    for (int r = 0; r < R; r++) {
      const __m512 d = _mm512_set1_ps(xd[r * nb + b]);
      const __m512 f0 = _mm512_cvtepi32_ps(ia[r][0]), f1 = _mm512_cvtepi32_ps(ia[r][1]);
      const __m512 sd0 = _mm512_mul_ps(s0, d), sd1 = _mm512_mul_ps(s1, d);
      if (!acc && b == 0) { a[r][0] = _mm512_mul_ps(f0, sd0); a[r][1] = _mm512_mul_ps(f1, sd1); }
      else { a[r][0] = _mm512_fmadd_ps(f0, sd0, a[r][0]); a[r][1] = _mm512_fmadd_ps(f1, sd1, a[r][1]); }
    }
    if (q4) {
      const __m512 c0 = _mm512_loadu_ps(mn + b * I8_PANEL), c1 = _mm512_loadu_ps(mn + b * I8_PANEL + 16);
      for (int r = 0; r < R; r++) {
        const __m512 e = _mm512_set1_ps(xs[r * nb + b]);
        a[r][0] = _mm512_fmadd_ps(c0, e, a[r][0]);
        a[r][1] = _mm512_fmadd_ps(c1, e, a[r][1]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    _mm512_mask_storeu_ps(out + r * ldo, m0, a[r][0]);
    _mm512_mask_storeu_ps(out + r * ldo + 16, m1, a[r][1]);
  }
}

// All M rows against one packed panel (columns [n0, n0 + ncols) of out).
VNNI_FN static void i8_panel(const uint8_t *pw, const uint8_t *xq, const float *xd, const float *xs, int64_t M, int64_t K,
    float *out, int64_t N, int64_t n0, int ncols, int acc, int q4) {
  const int64_t nb = K / 32;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) i8_rows(4, pw, xq + m * K, xd + m * nb, xs + m * nb, K, out + m * N + n0, N, ncols, acc, q4);
  switch (M - m) {
    case 3: i8_rows(3, pw, xq + m * K, xd + m * nb, xs + m * nb, K, out + m * N + n0, N, ncols, acc, q4); break;
    case 2: i8_rows(2, pw, xq + m * K, xd + m * nb, xs + m * nb, K, out + m * N + n0, N, ncols, acc, q4); break;
    case 1: i8_rows(1, pw, xq + m * K, xd + m * nb, xs + m * nb, K, out + m * N + n0, N, ncols, acc, q4); break;
    default: break;
  }
}

// Rows of x quantized per 32-block as WASM's quantizeX does: q + 128 (bytes), d = amax/127 and
// d·Σq per block.
static void i8_quantize_rows(uint8_t *q, float *d, float *s, const float *x, int64_t r0, int64_t r1, int64_t K) {
  const int64_t nb = K / 32;
  for (int64_t r = r0; r < r1; r++) {
    for (int64_t b = 0; b < nb; b++) {
      const float *v = x + r * K + b * 32;
      float amax = 0;
      for (int j = 0; j < 32; j++) { const float a = fabsf(v[j]); amax = a > amax ? a : amax; }
      const float dd = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
      int sum = 0;
      for (int j = 0; j < 32; j++) { const int t = (int)nearbyintf(v[j] * id); q[r * K + b * 32 + j] = (uint8_t)(t + 128); sum += t; }
      d[r * nb + b] = dd; s[r * nb + b] = dd * (float)sum;
    }
  }
}
