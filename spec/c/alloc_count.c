/*
 * spec/c/alloc_count.c — counts every heap allocation of the spec process.
 *
 * The spec program defines malloc & co. itself; by ELF symbol interposition
 * every allocation of the process goes through here — the engine's, libgomp's
 * and OpenBLAS's alike — and on to glibc's own implementation. Specs switch
 * counting on around the code that must not allocate.
 */
#include <stddef.h>

#include "alloc_count.h"

static volatile long counting, counted;

static void note(void) {
    if (counting) __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
}

void alloc_count_start(void) { counted = 0; counting = 1; }
long alloc_count_stop(void) { counting = 0; return counted; }

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer (make test-asan) the sanitizer owns malloc: defining
 * it here would bypass it, so count through its allocation hook instead. */
int __sanitizer_install_malloc_and_free_hooks(void (*on_malloc)(const volatile void *, size_t),
                                              void (*on_free)(const volatile void *));

static void on_malloc(const volatile void *p, size_t n) { (void)p, (void)n; note(); }

__attribute__((constructor)) static void install(void) {
    __sanitizer_install_malloc_and_free_hooks(on_malloc, NULL);
}
#else
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void __libc_free(void *p);

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t n, size_t size) { note(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
void *memalign(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    note();
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12 /* ENOMEM */;
}
void free(void *p) { __libc_free(p); }
#endif
