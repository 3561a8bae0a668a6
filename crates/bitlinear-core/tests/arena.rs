//! The weight arena (`colocate`): layers placed in one huge-page arena compute exactly what the
//! originals compute, outlive the originals and each other, and a large arena starts on a
//! 2 MiB boundary.

use bitlinear_core::arena::{HUGE_ARENA_MIN_BYTES, HUGE_PAGE_BYTES};
use bitlinear_core::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random_layer(rng: &mut StdRng, n: usize, k: usize, g: WeightGranularity) -> PackedTernary {
    let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    PackedTernary::quantize(&w, n, k, g, 1e-6).unwrap()
}

#[test]
fn colocated_layers_compute_bit_identical_outputs() {
    let mut rng = StdRng::seed_from_u64(11);
    let shapes = [
        (1, 1, WeightGranularity::PerTensor),
        (33, 17, WeightGranularity::PerChannel),
        (7, 100, WeightGranularity::PerGroup(32)),
        (64, 257, WeightGranularity::PerTensor),
        (130, 1000, WeightGranularity::PerChannel),
    ];
    let layers: Vec<PackedTernary> = shapes
        .iter()
        .map(|&(n, k, g)| random_layer(&mut rng, n, k, g))
        .collect();
    let refs: Vec<&PackedTernary> = layers.iter().collect();
    let placed = colocate(&refs).unwrap();
    assert_eq!(placed.len(), layers.len());
    for (orig, new) in layers.iter().zip(&placed) {
        assert_eq!(orig, new);
        assert_eq!(orig.as_bytes(), new.as_bytes());
        // Each layer starts on a cache line of the arena.
        assert_eq!(new.as_bytes().as_ptr() as usize % 64, 0);
        for m in [1usize, 3, 17] {
            let x: Vec<f32> = (0..m * orig.k())
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            let bias: Vec<f32> = (0..orig.n()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let opts = LinearOptions::default();
            let a = linear(&x, m, orig, Some(&bias), &opts).unwrap();
            let b = linear(&x, m, new, Some(&bias), &opts).unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "n={} k={} m={m}",
                orig.n(),
                orig.k()
            );
        }
    }
}

#[test]
fn colocated_layers_outlive_the_originals_and_each_other() {
    let mut rng = StdRng::seed_from_u64(12);
    let a = random_layer(&mut rng, 40, 70, WeightGranularity::PerTensor);
    let b = random_layer(&mut rng, 9, 33, WeightGranularity::PerTensor);
    let (a_bytes, b_bytes) = (a.as_bytes().to_vec(), b.as_bytes().to_vec());
    let mut placed = colocate(&[&a, &b]).unwrap();
    drop((a, b));
    let b2 = placed.pop().unwrap();
    drop(placed); // the arena stays alive through b2
    assert_eq!(b2.as_bytes(), &b_bytes[..]);
    let x = vec![0.5f32; 33];
    let y = linear(&x, 1, &b2, None, &LinearOptions::default()).unwrap();
    assert_eq!(y.len(), 9);
    assert_ne!(a_bytes.len(), 0);
}

#[test]
fn large_arena_starts_on_a_huge_page() {
    let mut rng = StdRng::seed_from_u64(13);
    // 4 layers of 1024×1024 = 4 × 262 KB ≥ HUGE_ARENA_MIN_BYTES.
    let base = random_layer(&mut rng, 1024, 1024, WeightGranularity::PerTensor);
    let refs = vec![&base; 4];
    assert!(4 * base.as_bytes().len() >= HUGE_ARENA_MIN_BYTES);
    let placed = colocate(&refs).unwrap();
    assert_eq!(placed[0].as_bytes().as_ptr() as usize % HUGE_PAGE_BYTES, 0);
    // Consecutive layers follow each other in the arena.
    let gap = placed[1].as_bytes().as_ptr() as usize - placed[0].as_bytes().as_ptr() as usize;
    assert_eq!(gap, base.as_bytes().len());
    for p in &placed {
        assert_eq!(p, &base);
    }
}

#[test]
fn no_layers_give_no_arena() {
    assert!(colocate(&[]).unwrap().is_empty());
}
