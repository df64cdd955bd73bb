//! Shared by the GPU tests: obtaining a backend, or skipping (with one line on stderr) when no
//! adapter exists, unless `STDE_REQUIRE_GPU=1` makes that a failure.

#![allow(dead_code)]

use stde_core::backend::BackendError;
use stde_wgpu::{WgpuBackend, WgpuParams};

/// Whether a missing adapter must fail the test.
pub fn gpu_required() -> bool {
    std::env::var("STDE_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A backend with `params`, `None` (after printing why) when no adapter exists and a GPU is not
/// required.
///
/// # Panics
/// If no adapter exists and `STDE_REQUIRE_GPU=1`, or on any other backend error.
pub fn backend_with(params: WgpuParams) -> Option<WgpuBackend> {
    match pollster::block_on(WgpuBackend::new(params)) {
        Ok(b) => Some(b),
        Err(BackendError::NoDevice { reason, .. }) => {
            if gpu_required() {
                panic!("STDE_REQUIRE_GPU=1 but no wgpu adapter is available: {reason}");
            }
            eprintln!("skipped: no wgpu adapter ({reason})");
            None
        }
        Err(e) => panic!("creating the wgpu backend failed: {e}"),
    }
}

/// The default backend or a skip.
pub fn backend() -> Option<WgpuBackend> {
    backend_with(WgpuParams::default())
}

/// Builds the backend or returns from the calling test (the skip is printed by `backend_with`).
#[macro_export]
macro_rules! backend_or_skip {
    () => {
        backend_or_skip!(stde_wgpu::WgpuParams::default())
    };
    ($params:expr) => {
        match common::backend_with($params) {
            Some(b) => b,
            None => return,
        }
    };
}

/// Both kernel families, for tests that run once per family.
pub const VARIANTS: [stde_wgpu::KernelVariant; 2] = [
    stde_wgpu::KernelVariant::Tiled,
    stde_wgpu::KernelVariant::Simple,
];

/// The function-scope `var` declarations of a WGSL source that have no initializer, as
/// `line N: declaration`.
///
/// WGSL zero-initialises such a variable every time its declaration runs, and naga (so native wgpu)
/// does; Chromium's WebGPU (Tint on SwiftShader, Chromium 156) zeroes one declared inside a loop
/// only once, so it keeps the previous iteration's value there. Every kernel therefore gives every
/// `var` an initializer, which both compilers run where it stands.
pub fn vars_without_initializer(src: &str) -> Vec<String> {
    let code = strip_comments(src);
    let bytes = code.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b'v' if depth > 0
                && code[i..].starts_with("var")
                && (i == 0 || !is_word(bytes[i - 1]))
                && bytes.get(i + 3).is_some_and(|&c| !is_word(c)) =>
            {
                let rest = &code[i + 3..];
                let end = rest.find(';').unwrap_or(rest.len());
                let decl = &rest[..end];
                // `var<function>` is the only address space a function may name.
                let function_scope = match decl.trim_start().strip_prefix('<') {
                    Some(space) => space.trim_start().starts_with("function"),
                    None => true,
                };
                if function_scope && !decl.contains('=') {
                    let line = code[..i].matches('\n').count() + 1;
                    found.push(format!("line {line}: var{decl};"));
                }
                i += 3 + end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// `src` with its comments replaced by spaces (newlines kept, so that lines still count).
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut block = 0usize;
    while let Some(c) = chars.next() {
        if block > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                block -= 1;
            } else if c == '/' && chars.peek() == Some(&'*') {
                chars.next();
                block += 1;
            }
            out.push(if c == '\n' { '\n' } else { ' ' });
            continue;
        }
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                block = 1;
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Panics, naming `what` and the declarations, if [`vars_without_initializer`] finds any.
#[track_caller]
pub fn assert_vars_initialised(what: &str, src: &str) {
    let bad = vars_without_initializer(src);
    assert!(
        bad.is_empty(),
        "{what}: function-scope `var` without an initializer (Chromium's WebGPU does not re-zero \
         one declared in a loop on every iteration; write `var x = T();`):\n{}",
        bad.join("\n")
    );
}
