//! Prints the CPU backend's compiled tapes of a shipped problem's programs (the ansatz and the
//! residual's loss program), for inspecting what one step's programs cost:
//! `cargo run --release -p stde-core --example program_listing -- sine-gordon-two-body 1000`.

use stde_core::backend::cpu::CpuBackend;
use stde_core::backend::ProgramBackend;
use stde_core::problem;
use stde_core::trainer::loss_program;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("sine-gordon-two-body", String::as_str);
    let dim: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let spec = problem::builtin(name)
        .expect("a shipped problem")
        .expect("reads");
    let inst = spec.instantiate(dim, 0).expect("instantiates");
    let be = CpuBackend::new();
    let ansatz = inst.ansatz_program().expect("lowers");
    let loss = loss_program(&inst.residual, &inst.scope, spec.pde.weight, 100).expect("lowers");
    for (what, program) in [("ansatz", ansatz), ("loss", loss)] {
        let compiled = be.compile_program(&program).expect("compiles");
        println!("== {what} program\n{}", compiled.listing());
    }
}
