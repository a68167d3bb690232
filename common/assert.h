/* Assertions that stay on in every build type (TigerBeetle's rule).
 *
 * BFTKV_ASSERT is for programmer bugs only: never for bytes that came off the wire
 * or from a file: those are validated and dropped. A failed assertion prints the expression and its
 * location and aborts, so a simulator seed or a core dump shows where. */
#ifndef BFTKV_COMMON_ASSERT_H
#define BFTKV_COMMON_ASSERT_H

#ifdef __cplusplus
extern "C" {
#endif

_Noreturn void bftkv_assert_fail(const char *expr, const char *file, int line, const char *func);

#define BFTKV_ASSERT(expr)                                                         \
    ((expr) ? (void)0 : bftkv_assert_fail(#expr, __FILE__, __LINE__, __func__))

#define BFTKV_LIKELY(x) __builtin_expect(!!(x), 1)
#define BFTKV_UNLIKELY(x) __builtin_expect(!!(x), 0)

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_COMMON_ASSERT_H */
