// A cache hint Swift cannot express: a software prefetch (clang's __builtin_prefetch, one instruction that asks for
// the cache line holding `address` and does not wait for it). It inlines into the Swift kernels that call it.
static inline void lathe_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }
