//! SIMD kernels over raw pointers into one shared WebAssembly memory: AdamW (classic and step-only),
//! sum of squares, non-finite counting, fp16 <-> fp32 conversion, and a stream copy for benchmarks.
//!
//! Every kernel has a portable scalar path (what `cargo test` checks natively) and, on wasm32 with
//! simd128, a vector path whose tail falls back to the scalar code, so any length is handled. The
//! vector path performs exactly the scalar path's IEEE operations in the same order (wasm has no
//! fused multiply-add and no flush-to-zero), so an element's result never depends on whether it fell
//! in a vector body or a scalar tail: results are bit-identical however a tensor is split over threads.
#![cfg_attr(not(test), no_std)]

pub mod adamw;
pub mod blas;
pub mod dtype;
pub mod half;
pub mod reduce;

#[cfg(target_arch = "wasm32")]
mod exports;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
