//! SIMD kernels over raw pointers into one shared WebAssembly memory.
//!
//! Every kernel has a portable scalar path (what `cargo test` checks natively) and, on wasm32 with
//! simd128, a vector path whose tail falls back to the scalar code, so any length is handled.
#![cfg_attr(not(test), no_std)]

pub mod blas;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
