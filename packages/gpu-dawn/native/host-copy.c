// Parallel memcpy for the staging rings (src/transfer/native-copy.ts). A mapped staging range is an
// ArrayBuffer that Dawn owns: it cannot be transferred or shared with worker threads, so in JavaScript
// only the main thread can copy it, one memcpy at a time (~6-10 GB/s on the H200 host). Here the copy is
// split over a small pool of native threads, either synchronously (`copy`) or off the main thread
// (`copyAsync`, a Promise; the caller keeps both ranges alive and unmapped until it settles).
//
// Node-API is a stable C ABI: the few declarations this file needs are written out below instead of
// depending on a Node header package. Build: native/build.mjs (cc -O2 -shared -fPIC -pthread).
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ---- Node-API declarations (js_native_api.h, node_api.h) ----------------------------------------------
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_ref__ *napi_ref;
typedef struct napi_callback_info__ *napi_callback_info;
typedef struct napi_deferred__ *napi_deferred;
typedef struct napi_async_work__ *napi_async_work;
typedef int napi_status; // an enum in the header; 0 is napi_ok
#define NAPI_OK 0
#define NAPI_UINT8_ARRAY 1 // napi_typedarray_type's napi_uint8_array
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
typedef void (*napi_async_execute_callback)(napi_env env, void *data);
typedef void (*napi_async_complete_callback)(napi_env env, napi_status status, void *data);

napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
napi_status napi_is_typedarray(napi_env, napi_value, bool *);
napi_status napi_get_typedarray_info(napi_env, napi_value, int *, size_t *, void **, napi_value *, size_t *);
napi_status napi_get_value_uint32(napi_env, napi_value, uint32_t *);
napi_status napi_throw_type_error(napi_env, const char *, const char *);
napi_status napi_throw_range_error(napi_env, const char *, const char *);
napi_status napi_get_undefined(napi_env, napi_value *);
napi_status napi_create_promise(napi_env, napi_deferred *, napi_value *);
napi_status napi_resolve_deferred(napi_env, napi_deferred, napi_value);
napi_status napi_reject_deferred(napi_env, napi_deferred, napi_value);
napi_status napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
napi_status napi_create_error(napi_env, napi_value, napi_value, napi_value *);
napi_status napi_create_reference(napi_env, napi_value, uint32_t, napi_ref *);
napi_status napi_delete_reference(napi_env, napi_ref);
napi_status napi_create_async_work(napi_env, napi_value, napi_value, napi_async_execute_callback,
                                   napi_async_complete_callback, void *, napi_async_work *);
napi_status napi_queue_async_work(napi_env, napi_async_work);
napi_status napi_delete_async_work(napi_env, napi_async_work);
napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
napi_status napi_create_uint32(napi_env, uint32_t, napi_value *);

// ---- the copy pool --------------------------------------------------------------------------------------
// Parts below this size are not worth a thread hand-off (~10 us of wake-up against ~25 us of copying).
#define MIN_PART_BYTES (256u << 10)
#define MAX_THREADS 64u

typedef struct job {
  pthread_mutex_t mu;
  pthread_cond_t done;
  unsigned remaining;
} job_t;

typedef struct part {
  struct part *next;
  uint8_t *dst;
  const uint8_t *src;
  size_t bytes;
  job_t *job;
} part_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static part_t *queue_head, *queue_tail;
static unsigned pool_threads;

static void run_part(part_t *p) {
  memcpy(p->dst, p->src, p->bytes);
  job_t *j = p->job;
  pthread_mutex_lock(&j->mu);
  if (--j->remaining == 0) pthread_cond_signal(&j->done);
  pthread_mutex_unlock(&j->mu);
}

/** Pops a queued part (any job's); call with pool_mu held. */
static part_t *pop_part(void) {
  part_t *p = queue_head;
  if (p) {
    queue_head = p->next;
    if (!queue_head) queue_tail = NULL;
  }
  return p;
}

static void *pool_main(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&pool_mu);
    part_t *p;
    while (!(p = pop_part())) pthread_cond_wait(&pool_wake, &pool_mu);
    pthread_mutex_unlock(&pool_mu);
    run_part(p);
  }
  return NULL;
}

/** Grow the pool to `want` threads (never shrinks; threads live as long as the process). */
static void ensure_pool(unsigned want) {
  pthread_mutex_lock(&pool_mu);
  while (pool_threads < want) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64u << 10);
    int failed = pthread_create(&t, &attr, pool_main, NULL);
    pthread_attr_destroy(&attr);
    if (failed) break; // fewer helpers: the caller copies the rest itself
    pool_threads++;
  }
  pthread_mutex_unlock(&pool_mu);
}

/**
 * memcpy split into up to `threads` parts: the calling thread copies the first part, pool threads the
 * others; the caller then takes any part still queued, so it finishes even without helpers.
 */
static void parallel_copy(uint8_t *dst, const uint8_t *src, size_t bytes, unsigned threads) {
  size_t parts = bytes / MIN_PART_BYTES;
  if (parts > threads) parts = threads;
  if (parts <= 1) {
    memcpy(dst, src, bytes);
    return;
  }
  ensure_pool((unsigned)parts - 1);
  // equal parts, each a multiple of 4 KiB except the last (page-aligned starts when the ranges are)
  size_t each = ((bytes / parts) + 4095) & ~(size_t)4095;
  part_t list[MAX_THREADS];
  job_t job = {.remaining = (unsigned)parts};
  pthread_mutex_init(&job.mu, NULL);
  pthread_cond_init(&job.done, NULL);
  size_t at = 0, n = 0;
  for (; n < parts && at < bytes; n++) {
    size_t len = bytes - at < each ? bytes - at : each;
    list[n] = (part_t){.next = NULL, .dst = dst + at, .src = src + at, .bytes = len, .job = &job};
    at += len;
  }
  job.remaining = (unsigned)n;
  pthread_mutex_lock(&pool_mu);
  for (size_t i = 1; i < n; i++) {
    if (queue_tail) queue_tail->next = &list[i];
    else queue_head = &list[i];
    queue_tail = &list[i];
  }
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_mu);
  run_part(&list[0]);
  for (;;) {
    pthread_mutex_lock(&pool_mu);
    part_t *p = pop_part();
    pthread_mutex_unlock(&pool_mu);
    if (!p) break;
    run_part(p);
  }
  pthread_mutex_lock(&job.mu);
  while (job.remaining > 0) pthread_cond_wait(&job.done, &job.mu);
  pthread_mutex_unlock(&job.mu);
  pthread_cond_destroy(&job.done);
  pthread_mutex_destroy(&job.mu);
}

// ---- JavaScript bindings --------------------------------------------------------------------------------
typedef struct {
  uint8_t *dst;
  const uint8_t *src;
  size_t bytes;
  unsigned threads;
} copy_args_t;

/** Reads (dst: Uint8Array, src: Uint8Array, threads) into `out`; throws and returns false if invalid. */
static bool read_args(napi_env env, napi_callback_info info, napi_value views[2], copy_args_t *out) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != NAPI_OK || argc < 3) {
    napi_throw_type_error(env, NULL, "host-copy: expected (dst: Uint8Array, src: Uint8Array, threads)");
    return false;
  }
  void *data[2];
  size_t length[2];
  for (int i = 0; i < 2; i++) {
    bool is = false;
    int type = -1;
    napi_value ab;
    size_t offset;
    if (napi_is_typedarray(env, argv[i], &is) != NAPI_OK || !is ||
        napi_get_typedarray_info(env, argv[i], &type, &length[i], &data[i], &ab, &offset) != NAPI_OK ||
        type != NAPI_UINT8_ARRAY) {
      napi_throw_type_error(env, NULL, i == 0 ? "host-copy: dst must be a Uint8Array"
                                              : "host-copy: src must be a Uint8Array");
      return false;
    }
    views[i] = argv[i];
  }
  if (length[0] != length[1]) {
    napi_throw_range_error(env, NULL, "host-copy: dst and src differ in length");
    return false;
  }
  uint32_t threads = 0;
  if (napi_get_value_uint32(env, argv[2], &threads) != NAPI_OK || threads < 1 || threads > MAX_THREADS) {
    napi_throw_range_error(env, NULL, "host-copy: threads must be an integer in [1, 64]");
    return false;
  }
  // ranges of zero bytes may come with null data pointers
  *out = (copy_args_t){.dst = data[0], .src = data[1], .bytes = length[0], .threads = threads};
  return true;
}

static napi_value js_copy(napi_env env, napi_callback_info info) {
  napi_value views[2];
  copy_args_t a;
  if (!read_args(env, info, views, &a)) return NULL;
  if (a.bytes) parallel_copy(a.dst, a.src, a.bytes, a.threads);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

typedef struct {
  copy_args_t args;
  napi_ref views[2]; // keep both views (and so their buffers) alive until the copy is done
  napi_deferred deferred;
  napi_async_work work;
} async_copy_t;

static void async_execute(napi_env env, void *data) {
  (void)env;
  async_copy_t *c = data;
  if (c->args.bytes) parallel_copy(c->args.dst, c->args.src, c->args.bytes, c->args.threads);
}

static void async_complete(napi_env env, napi_status status, void *data) {
  async_copy_t *c = data;
  napi_delete_reference(env, c->views[0]);
  napi_delete_reference(env, c->views[1]);
  napi_delete_async_work(env, c->work);
  napi_value result;
  if (status == NAPI_OK) {
    napi_get_undefined(env, &result);
    napi_resolve_deferred(env, c->deferred, result);
  } else {
    napi_value msg;
    napi_create_string_utf8(env, "host-copy: the copy was cancelled", (size_t)-1, &msg);
    napi_create_error(env, NULL, msg, &result);
    napi_reject_deferred(env, c->deferred, result);
  }
  free(c);
}

static napi_value js_copy_async(napi_env env, napi_callback_info info) {
  napi_value views[2];
  copy_args_t a;
  if (!read_args(env, info, views, &a)) return NULL;
  async_copy_t *c = calloc(1, sizeof *c);
  napi_value promise, name;
  if (!c) {
    napi_throw_range_error(env, NULL, "host-copy: out of memory");
    return NULL;
  }
  c->args = a;
  napi_create_string_utf8(env, "lsp-offload host copy", (size_t)-1, &name);
  if (napi_create_promise(env, &c->deferred, &promise) != NAPI_OK ||
      napi_create_reference(env, views[0], 1, &c->views[0]) != NAPI_OK ||
      napi_create_reference(env, views[1], 1, &c->views[1]) != NAPI_OK ||
      napi_create_async_work(env, NULL, name, async_execute, async_complete, c, &c->work) != NAPI_OK ||
      napi_queue_async_work(env, c->work) != NAPI_OK) {
    napi_throw_range_error(env, NULL, "host-copy: could not start the copy");
    return NULL; // (leaks one small struct on a failure that does not happen in practice)
  }
  return promise;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, (size_t)-1, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  export_function(env, exports, "copy", js_copy);
  export_function(env, exports, "copyAsync", js_copy_async);
  napi_value max;
  napi_create_uint32(env, MAX_THREADS, &max);
  napi_set_named_property(env, exports, "maxThreads", max);
  return exports;
}

__attribute__((visibility("default"))) int32_t node_api_module_get_api_version_v1(void) { return 8; }
