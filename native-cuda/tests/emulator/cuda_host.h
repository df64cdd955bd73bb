// cuda_host.h: a minimal CUDA shim that lets a host C++20 compiler build the stde-cuda kernel files
// unchanged, so that tests/emulated.rs can run them on the CPU where no GPU exists.
//
// A launch runs the grid's blocks one after another on the calling thread. Kernels that synchronise
// (__syncthreads, warp shuffles) run each CUDA thread of a block as a fiber (ucontext) under a small
// scheduler: a fiber runs until it waits at the block barrier or its warp's barrier, and a barrier
// opens when every unfinished thread of the block (or warp) waits at it; a wait that can never open is
// reported as a deadlock. The other kernels run their threads in a plain loop (and abort with a message
// if they try to synchronise, which would mean the caller's table of cooperative kernels is wrong).
// __shared__ becomes a function-local static: shared by the threads of the running block, as on a GPU.
// Only what the kernels use is provided.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ucontext.h>
#include <memory>
#include <mutex>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ static

struct dim3 {
    unsigned x = 0, y = 0, z = 0;
};

namespace stde_emu {
inline thread_local dim3 thread_idx;
inline thread_local dim3 block_idx;
inline dim3 block_dim;
inline dim3 grid_dim;
// What a fiber waits for.
enum class Wait { None, Block, Warp };

// One CUDA thread of the running block.
struct Fiber {
    ucontext_t ctx;
    Wait wait = Wait::None;
    bool done = false;
};

// The scheduler's state for the running block; null outside cooperative launches.
struct Block {
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    unsigned current = 0;
    double slots[1024];  // one shuffle slot per thread
};
inline Block* block = nullptr;

// Suspends the running fiber until `w` opens.
inline void wait_at(Wait w) {
    Fiber& f = block->fibers[block->current];
    f.wait = w;
    swapcontext(&f.ctx, &block->scheduler);
}
inline std::mutex atomic_lock;

[[noreturn]] inline void no_cooperation(const char* what) {
    fprintf(stderr, "cuda_host.h: %s in a kernel launched without cooperative threads\n", what);
    abort();
}

inline float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
}  // namespace stde_emu

#define threadIdx (stde_emu::thread_idx)
#define blockIdx (stde_emu::block_idx)
#define blockDim (stde_emu::block_dim)
#define gridDim (stde_emu::grid_dim)

inline void __syncthreads() {
    if (!stde_emu::block) stde_emu::no_cooperation("__syncthreads");
    stde_emu::wait_at(stde_emu::Wait::Block);
}

// Lanes past the end of the warp keep their own value, as CUDA's __shfl_down_sync does.
template <typename T>
T __shfl_down_sync(unsigned, T v, int offset) {
    if (!stde_emu::block) stde_emu::no_cooperation("__shfl_down_sync");
    const unsigned lane = threadIdx.x & 31u;
    double* slots = stde_emu::block->slots + (threadIdx.x & ~31u);
    slots[lane] = (double)v;  // exact for float and double
    stde_emu::wait_at(stde_emu::Wait::Warp);
    const T r = lane + (unsigned)offset < 32u ? (T)slots[lane + offset] : v;
    stde_emu::wait_at(stde_emu::Wait::Warp);
    return r;
}

// Bit casts between floating-point and integer types, as CUDA's intrinsics.
template <typename To, typename From>
inline To stde_emu_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit casts keep the size");
    To r;
    memcpy(&r, &v, sizeof r);
    return r;
}
inline float __int_as_float(int v) { return stde_emu_bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return stde_emu_bit_cast<float>(v); }
inline int __float_as_int(float v) { return stde_emu_bit_cast<int>(v); }
inline unsigned __float_as_uint(float v) { return stde_emu_bit_cast<unsigned>(v); }
inline double __longlong_as_double(long long v) { return stde_emu_bit_cast<double>(v); }
inline int __double2hiint(double v) { return (int)(stde_emu_bit_cast<unsigned long long>(v) >> 32); }
inline int __double2loint(double v) { return (int)(unsigned)stde_emu_bit_cast<unsigned long long>(v); }
inline double __hiloint2double(int hi, int lo) {
    return stde_emu_bit_cast<double>(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo);
}

// A product never contracted into a fused multiply-add (the host compiler does not contract in ISO mode).
inline float __fmul_rn(float a, float b) { return a * b; }

inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}

inline float atomicAdd(float* p, float v) {
    std::lock_guard<std::mutex> guard(stde_emu::atomic_lock);
    const float old = *p;
    *p = old + v;
    return old;
}

namespace stde_emu {
inline void (*fiber_fn)(const uint64_t*) = nullptr;
inline const uint64_t* fiber_args = nullptr;

// The body of every fiber: the kernel for one thread, then back to the scheduler (uc_link).
inline void fiber_main() {
    fiber_fn(fiber_args);
    block->fibers[block->current].done = true;
}

// Runs the fibers of one block to completion, opening barriers as they fill.
inline void run_block(Block& b, unsigned bx, unsigned by, std::vector<std::unique_ptr<char[]>>& stacks,
                      size_t stack_size) {
    const unsigned n = (unsigned)b.fibers.size();
    for (unsigned t = 0; t < n; ++t) {
        Fiber& f = b.fibers[t];
        f = Fiber{};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[t].get();
        f.ctx.uc_stack.ss_size = stack_size;
        f.ctx.uc_link = &b.scheduler;
        makecontext(&f.ctx, fiber_main, 0);
    }
    for (;;) {
        bool ran = false;
        for (unsigned t = 0; t < n; ++t) {
            Fiber& f = b.fibers[t];
            if (f.done || f.wait != Wait::None) continue;
            b.current = t;
            block_idx = dim3{bx, by, 0};
            thread_idx = dim3{t, 0, 0};
            swapcontext(&b.scheduler, &f.ctx);
            ran = true;
        }
        if (ran) continue;
        // Nobody can run: open every barrier whose unfinished threads all wait at it.
        bool all_done = true, opened = false;
        bool block_full = true;
        for (const Fiber& f : b.fibers) {
            all_done = all_done && f.done;
            block_full = block_full && (f.done || f.wait == Wait::Block);
        }
        if (all_done) return;
        if (block_full) {
            for (Fiber& f : b.fibers) f.wait = Wait::None;
            continue;
        }
        for (unsigned w0 = 0; w0 < n; w0 += 32) {
            bool warp_full = true, any = false;
            for (unsigned t = w0; t < w0 + 32 && t < n; ++t) {
                const Fiber& f = b.fibers[t];
                warp_full = warp_full && (f.done || f.wait == Wait::Warp);
                any = any || f.wait == Wait::Warp;
            }
            if (warp_full && any) {
                for (unsigned t = w0; t < w0 + 32 && t < n; ++t) b.fibers[t].wait = Wait::None;
                opened = true;
            }
        }
        if (!opened) {
            fprintf(stderr, "cuda_host.h: deadlock in block (%u, %u): threads wait at barriers that cannot open\n",
                    bx, by);
            abort();
        }
    }
}

// Runs `fn(args)` for every thread of a gx × gy grid of `block`-thread blocks, one block after another.
inline void run_grid(void (*fn)(const uint64_t*), const uint64_t* args, unsigned gx, unsigned gy,
                     unsigned block_size, bool cooperative) {
    grid_dim = dim3{gx, gy, 1};
    block_dim = dim3{block_size, 1, 1};
    if (!cooperative) {
        block = nullptr;
        for (unsigned by = 0; by < gy; ++by) {
            for (unsigned bx = 0; bx < gx; ++bx) {
                for (unsigned t = 0; t < block_size; ++t) {
                    block_idx = dim3{bx, by, 0};
                    thread_idx = dim3{t, 0, 0};
                    fn(args);
                }
            }
        }
        return;
    }
    if (block_size > 1024) {
        fprintf(stderr, "cuda_host.h: blocks of more than 1024 threads\n");
        abort();
    }
    const size_t stack_size = 256 * 1024;
    std::vector<std::unique_ptr<char[]>> stacks;
    for (unsigned t = 0; t < block_size; ++t) stacks.emplace_back(new char[stack_size]);
    auto b = std::make_unique<Block>();
    b->fibers.resize(block_size);
    block = b.get();
    fiber_fn = fn;
    fiber_args = args;
    for (unsigned by = 0; by < gy; ++by) {
        for (unsigned bx = 0; bx < gx; ++bx) {
            run_block(*b, bx, by, stacks, stack_size);
        }
    }
    block = nullptr;
}
}  // namespace stde_emu
