// generic_slots.wgsl: where the cotangent of one probe slot lives, shared by the weight adjoints of
// the input layer with probes in any slot (generic_column_scatter.wgsl, generic_scatter.wgsl).
// Slot q = s * order + (k - 1) holds coefficient k of direction s; its block, counted from block 1
// of the jet batch, is (k - 1) * n_dirs + s, except that a collapsed top (k = order) is the one
// summed block (order - 1) * n_dirs that every direction shares. Reads p.order, p.n_dirs and
// p.collapsed of the including kernel's parameters.

fn slot_block(q: u32) -> u32 {
    let s = q / p.order;
    let k1 = q % p.order;
    if p.collapsed != 0u && k1 + 1u == p.order {
        return (p.order - 1u) * p.n_dirs;
    }
    return k1 * p.n_dirs + s;
}
