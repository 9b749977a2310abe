// LD_PRELOAD shim for ThreadSanitizer runs on Linux: makes the synchronization that Swift's
// Synchronization.Mutex performs outside instrumented code visible to TSan.
//
// Mutex.withLock inlines its fast paths (an atomic compare-and-swap on the lock word), which
// TSan sees. Under contention it calls _MutexHandle._lockSlow / _unlockSlow in
// libswiftSynchronization.so, which is not instrumented: they spin with their own atomics and
// use a PI futex, where the kernel hands the lock word straight to the next waiter
// (swiftlang/swift#88440). TSan then misses the happens-before edge and reports "races"
// between accesses the mutex does serialise — even in a 15-line program that only uses Mutex.
//
// This shim interposes those two functions: __tsan_release(lock word) before the real unlock,
// __tsan_acquire(lock word) after the real lock. Nothing else changes; a genuine race (an
// access outside the lock) is still reported.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));

#define SWIFTCALL __attribute__((swiftcall))
#define SELF __attribute__((swift_context)) // Swift passes `self` in the context register

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"
#define TRYLOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"

typedef SWIFTCALL void (*lock_slow_fn)(uint32_t self_id, void *SELF handle);
typedef SWIFTCALL void (*unlock_slow_fn)(void *SELF handle);
typedef SWIFTCALL _Bool (*trylock_slow_fn)(void *SELF handle);

SWIFTCALL void shim_lock_slow(uint32_t self_id, void *SELF handle) __asm__(LOCK_SLOW);
SWIFTCALL void shim_unlock_slow(void *SELF handle) __asm__(UNLOCK_SLOW);
SWIFTCALL _Bool shim_trylock_slow(void *SELF handle) __asm__(TRYLOCK_SLOW);

static void *resolve(const char *name) {
    void *real = dlsym(RTLD_NEXT, name);
    if (!real) {
        fprintf(stderr, "tsan_mutex_shim: %s not found\n", name);
        abort();
    }
    return real;
}

SWIFTCALL void shim_lock_slow(uint32_t self_id, void *SELF handle) {
    static lock_slow_fn real;
    if (!real) real = (lock_slow_fn)resolve(LOCK_SLOW);
    real(self_id, handle);
    if (__tsan_acquire) __tsan_acquire(handle);
}

SWIFTCALL void shim_unlock_slow(void *SELF handle) {
    static unlock_slow_fn real;
    if (!real) real = (unlock_slow_fn)resolve(UNLOCK_SLOW);
    if (__tsan_release) __tsan_release(handle);
    real(handle);
}

SWIFTCALL _Bool shim_trylock_slow(void *SELF handle) {
    static trylock_slow_fn real;
    if (!real) real = (trylock_slow_fn)resolve(TRYLOCK_SLOW);
    _Bool locked = real(handle);
    if (locked && __tsan_acquire) __tsan_acquire(handle);
    return locked;
}
