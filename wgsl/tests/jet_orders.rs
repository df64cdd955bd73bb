//! Jet activations at every order 0..=16, both layouts, with sizes that cross workgroup boundaries
//! (255 and 257 features, 1000 points), against the f64 reference.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::Backend;
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::mlp::Activation;
use stde_core::rng::Philox;

/// Values in [-1, 1) whose coefficient k is scaled by 0.7^k, like the Taylor coefficients of a
/// smooth curve (unscaled order-16 series grow until f32 cannot represent them usefully).
fn jet_data(shape: JetShape, seed: u64) -> Vec<f32> {
    let mut out = vec![0.0f32; shape.len()];
    Philox::new(seed).fill_uniform_f32(7, 0, &mut out);
    let block = shape.n_points * shape.width;
    for (i, v) in out.iter_mut().enumerate() {
        let b = i / block;
        let k = if b == 0 {
            0
        } else if shape.collapsed && b == shape.n_blocks() - 1 {
            shape.order
        } else {
            1 + (b - 1) / shape.n_dirs
        };
        *v = (2.0 * *v - 1.0) * 0.7f32.powi(k as i32);
    }
    out
}

fn check<B: Backend>(b: &B, act: Activation, shape: JetShape) {
    let r = ReferenceBackend;
    let len = shape.len();
    let z = jet_data(shape, 1 + shape.order as u64);
    let h_bar = jet_data(shape, 100 + shape.order as u64);
    let up = |data: &[f32]| {
        let mut buf = b.alloc(len, "test").unwrap();
        b.upload(&mut buf, 0, data);
        buf
    };
    let up_r = |data: &[f32]| {
        let mut buf = r.alloc(len, "test").unwrap();
        r.upload(&mut buf, 0, data);
        buf
    };
    let (zb, hbb, mut hb, mut zbb) = (up(&z), up(&h_bar), up(&vec![0.0; len]), up(&vec![0.0; len]));
    let (zr, hbr, mut hr, mut zbr) = (
        up_r(&z),
        up_r(&h_bar),
        up_r(&vec![0.0; len]),
        up_r(&vec![0.0; len]),
    );
    b.jet_activation_forward(act, shape, &zb, &mut hb);
    r.jet_activation_forward(act, shape, &zr, &mut hr);
    b.jet_activation_backward(act, shape, &zb, &hbb, &mut zbb);
    r.jet_activation_backward(act, shape, &zr, &hbr, &mut zbr);
    let dl = |x: &B::Buf| pollster::block_on(b.download(x, 0, len)).unwrap();
    let dl_r = |x: &Vec<f64>| pollster::block_on(r.download(x, 0, len)).unwrap();
    if let Err(m) = compare(
        &format!("forward {act:?} {shape:?}"),
        &dl(&hb),
        &dl_r(&hr),
        Tolerance::F32,
    ) {
        panic!("{m}");
    }
    if let Err(m) = compare(
        &format!("backward {act:?} {shape:?}"),
        &dl(&zbb),
        &dl_r(&zbr),
        Tolerance::F32,
    ) {
        panic!("{m}");
    }
}

#[test]
fn jet_activations_match_reference_at_orders_0_to_16() {
    let b = backend_or_skip!();
    for act in [Activation::Tanh, Activation::Sin] {
        for order in 0..=16 {
            for collapsed in [false, true] {
                if collapsed && order == 0 {
                    continue;
                }
                for &(n_dirs, n_points, width) in &[(2, 3, 257), (3, 5, 255)] {
                    let shape = JetShape {
                        order,
                        n_dirs,
                        n_points,
                        width,
                        collapsed,
                    };
                    check(&b, act, shape);
                }
            }
        }
    }
}

#[test]
fn jet_activations_match_reference_on_large_batches() {
    let b = backend_or_skip!();
    for act in [Activation::Tanh, Activation::Sin] {
        for &(order, n_dirs, collapsed) in
            &[(2, 4, true), (2, 4, false), (5, 1, false), (16, 1, true)]
        {
            for &width in &[255, 257] {
                let shape = JetShape {
                    order,
                    n_dirs,
                    n_points: 1000,
                    width,
                    collapsed,
                };
                check(&b, act, shape);
            }
        }
    }
}
