//! End-to-end training on the f64 reference backend: the loss falls, the error falls, and runs are
//! reproducible and resumable.

use stde_core::backend::reference::ReferenceBackend;
use stde_core::train::{EstimatorKind, TrainConfig, Trainer};

fn small_config() -> TrainConfig {
    TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 4,
        steps: 150,
        batch: 16,
        rand_dims: 2,
        estimator: EstimatorKind::Sparse,
        width: 16,
        depth: 3,
        lr: 1e-2,
        eval_every: 50,
        test_points: 200,
        ..TrainConfig::default()
    }
}

#[test]
fn reference_training_reduces_loss_and_error() {
    let backend = ReferenceBackend;
    let mut trainer = Trainer::new(&backend, small_config(), None).unwrap();
    let initial = pollster::block_on(trainer.evaluate()).unwrap();
    trainer.step();
    let first_loss = pollster::block_on(trainer.loss()).unwrap();
    let mut losses = Vec::new();
    while !trainer.finished() {
        trainer.step();
        losses.push(pollster::block_on(trainer.loss()).unwrap());
    }
    let last: f64 = losses[losses.len() - 20..].iter().sum::<f64>() / 20.0;
    let fin = pollster::block_on(trainer.evaluate()).unwrap();
    eprintln!(
        "loss {first_loss} -> {last}; rel L2 {} -> {}",
        initial.rel_l2, fin.rel_l2
    );
    assert!(
        last < 0.2 * first_loss,
        "loss did not fall: {first_loss} -> {last}"
    );
    assert!(fin.rel_l2 < 0.7 * initial.rel_l2, "error did not fall");
}
