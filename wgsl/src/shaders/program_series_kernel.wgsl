// program_series_kernel.wgsl: series mode of a compiled program, per (point, direction): the
// Taylor coefficients 0..=K of every output along the direction's curve, written in
// the jet-batch layout of `stde_core::batch` (width N_OUT; block 0 the primal, written by direction
// 0, block 1 + (k - 1) n_dirs + s coefficient k of direction s).
//
// The point's accumulators and argmax windows come from the reduction pass (program_reduce.wgsl),
// so a sum's series costs only the windows the direction moves: for a one-hot direction those
// reading one of its (at most K) coordinates, O(window) work; a dense direction moves every
// window. Probes: one-hot directions have coordinate slot_index[s K + k - 1] moving by
// slot_coeff[s K + k - 1] tau^k (NONE leaves slot k empty); dense ones move row s of the V x STRIDE
// tangents in slot 1.
//
// Followed by an entry point: program_series_thread.wgsl (one invocation per point and direction)
// or program_series_group.wgsl (a workgroup per point and direction, whose invocations share the
// windows that every direction must visit), then the generated body (pg_series_point).

struct Params {
    rows: u32,
    row0: u32,
    n_points: u32,
    n_dirs: u32,
    one_hot: u32,
    x_base: u32,
    p_base: u32,
    r_base: u32,
    i_base: u32,
    c_base: u32,
    d_base: u32,
    o_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> prm: array<f32>;
@group(0) @binding(3) var<storage, read> red: array<u32>;
@group(0) @binding(4) var<storage, read> slot_index: array<u32>;
@group(0) @binding(5) var<storage, read> slot_coeff: array<f32>;
@group(0) @binding(6) var<storage, read> dense: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

// This invocation's point: its row in x, its reductions in red, its index in the batch.
var<private> xb: u32;
var<private> rb: u32;
var<private> point: u32;
// This invocation's direction: dense (its tangent row at db) or one-hot (coordinate dir_idx[k]
// moves by dir_coef[k] tau^k, k = 1..=K).
var<private> dir: u32;
var<private> dir_dense: bool;
var<private> db: u32;
var<private> dir_idx: array<u32, KP1>;
var<private> dir_coef: array<f32, KP1>;
// The distinct coordinates a one-hot direction moves.
var<private> touched: array<u32, KP1>;
var<private> n_touched: u32;
// Whether this invocation writes the outputs (in a workgroup per point and direction, one does).
var<private> writer: bool;
// This invocation's index in its workgroup and the workgroup's size, as window strides (0 and 1
// with one invocation per point and direction).
var<private> lane: u32;
var<private> lanes: u32;

// Sets up the invocation for point r of the dispatch and direction s.
fn start_invocation(r: u32, s: u32) {
    dir = s;
    point = p.row0 + r;
    xb = p.x_base + r * STRIDE;
    rb = p.r_base + r * 2u * N_ACC;
    dir_dense = p.one_hot == 0u;
    db = p.d_base + dir * STRIDE;
    n_touched = 0u;
    if !dir_dense {
        for (var k = 1u; k <= K; k++) {
            let j = slot_index[p.i_base + dir * K + k - 1u];
            dir_idx[k] = j;
            dir_coef[k] = slot_coeff[p.c_base + dir * K + k - 1u];
            var seen = j == NONE;
            for (var a = 0u; a < n_touched; a++) {
                seen = seen || touched[a] == j;
            }
            if !seen {
                touched[n_touched] = j;
                n_touched += 1u;
            }
        }
    }
}

// Whether coordinate j (DIM: the time) moves along this direction.
fn moves(j: u32) -> bool {
    if dir_dense {
        return true;
    }
    for (var a = 0u; a < n_touched; a++) {
        if touched[a] == j {
            return true;
        }
    }
    return false;
}

// The series of coordinate j (DIM: the time) along this direction.
fn s_coord(j: u32) -> Series {
    var o = Series();
    o[0] = x[xb + j];
    if dir_dense {
        o[1] = dense[db + j];
    } else {
        for (var k = 1u; k <= K; k++) {
            if dir_idx[k] == j {
                o[k] = dir_coef[k];
            }
        }
    }
    return o;
}

// Accumulator a of this point, and its argmax window.
fn red_total(a: u32) -> f32 {
    return bitcast<f32>(red[rb + a]);
}

fn red_argmax(a: u32) -> u32 {
    return red[rb + N_ACC + a];
}

// Output o's series along this direction into the jet batch.
fn write_series(o: u32, v: Series) {
    if !writer {
        return;
    }
    if dir == 0u {
        out[p.o_base + point * N_OUT + o] = v[0];
    }
    for (var k = 1u; k <= K; k++) {
        let block = 1u + (k - 1u) * p.n_dirs + dir;
        out[p.o_base + (block * p.n_points + point) * N_OUT + o] = v[k];
    }
}
