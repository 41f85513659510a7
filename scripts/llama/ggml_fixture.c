// Test-fixture helper built against llama.cpp's ggml by scripts/llama_fixtures.sh (never
// part of the h2o build or CI). Everything it reports comes from ggml's own code:
//
//   ggml_fixture hash FILE.gguf
//       one line per tensor: NAME TYPE ROWS HASH, HASH the FNV-1a 64 of the float bits
//       (little-endian u32 per value, in order) of the tensor as ggml decodes it
//       (ggml_get_type_traits(type)->to_float, the dequantize_row_* functions).
//   ggml_fixture crop IN.gguf OUT.gguf ROWS NAME...
//       a GGUF (ggml's writer) holding the first ROWS rows of each named tensor, bytes as
//       stored in IN (e.g. as llama-quantize wrote them), no metadata.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

static uint64_t fnv1a(uint64_t h, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    memcpy(&bits, &v[i], 4);
    for (int b = 0; b < 4; ++b) {
      h ^= (bits >> (8 * b)) & 0xFF;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

static int cmd_hash(const char* path) {
  struct ggml_context* ctx = NULL;
  struct gguf_init_params params = {false, &ctx};
  struct gguf_context* g = gguf_init_from_file(path, params);
  if (!g) {
    fprintf(stderr, "cannot read %s\n", path);
    return 1;
  }
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    const char* name = gguf_get_tensor_name(g, i);
    const struct ggml_tensor* t = ggml_get_tensor(ctx, name);
    const int64_t cols = t->ne[0], rows = ggml_nrows(t);
    float* row = malloc((size_t)cols * sizeof(float));
    uint64_t h = 0xcbf29ce484222325ULL;
    const size_t rb = ggml_row_size(t->type, cols);
    for (int64_t r = 0; r < rows; ++r) {
      const char* src = (const char*)t->data + (size_t)r * rb;
      if (t->type == GGML_TYPE_F32) {
        memcpy(row, src, (size_t)cols * sizeof(float));
      } else if (t->type == GGML_TYPE_F16) {
        ggml_fp16_to_fp32_row((const ggml_fp16_t*)src, row, cols);
      } else {
        ggml_get_type_traits(t->type)->to_float(src, row, cols);
      }
      h = fnv1a(h, row, cols);
    }
    free(row);
    printf("%s %s %" PRId64 " %016" PRIx64 "\n", name, ggml_type_name(t->type), rows, h);
  }
  gguf_free(g);
  ggml_free(ctx);
  return 0;
}

static int cmd_crop(const char* in, const char* out, int64_t rows, int n, char** names) {
  struct ggml_context* ctx = NULL;
  struct gguf_init_params params = {false, &ctx};
  struct gguf_context* g = gguf_init_from_file(in, params);
  if (!g) {
    fprintf(stderr, "cannot read %s\n", in);
    return 1;
  }
  struct ggml_init_params ip = {64u << 20, NULL, false};
  struct ggml_context* octx = ggml_init(ip);
  struct gguf_context* og = gguf_init_empty();
  for (int i = 0; i < n; ++i) {
    const struct ggml_tensor* t = ggml_get_tensor(ctx, names[i]);
    if (!t) {
      fprintf(stderr, "no tensor %s in %s\n", names[i], in);
      return 1;
    }
    const int64_t r = rows < ggml_nrows(t) ? rows : ggml_nrows(t);
    struct ggml_tensor* c = ggml_new_tensor_2d(octx, t->type, t->ne[0], r);
    ggml_set_name(c, names[i]);
    memcpy(c->data, t->data, (size_t)r * ggml_row_size(t->type, t->ne[0]));
    gguf_add_tensor(og, c);
  }
  if (!gguf_write_to_file(og, out, false)) {
    fprintf(stderr, "cannot write %s\n", out);
    return 1;
  }
  gguf_free(og);
  ggml_free(octx);
  gguf_free(g);
  ggml_free(ctx);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "hash") == 0) return cmd_hash(argv[2]);
  if (argc >= 6 && strcmp(argv[1], "crop") == 0) return cmd_crop(argv[2], argv[3], atoll(argv[4]), argc - 5, argv + 5);
  fprintf(stderr, "usage: ggml_fixture hash FILE.gguf | crop IN.gguf OUT.gguf ROWS NAME...\n");
  return 2;
}
