//! The non-tensor-core parts of the large-tile cmma GEMM on Wgpu (lavapipe has no cmma): the
//! byte-parallel 2-bit → int8 weight decode, and the clean refusal of the forced path.

mod support;

use bitlinear_cubecl::kernels::gemm_cmma_tiled::{decode_ternary_quad, decode_ternary_word};
use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type R = WgpuRuntime;

/// Decodes every packed word into 4 u32 (16 int8) with both helpers.
#[cube(launch)]
fn decode_kernel(packed: &Array<u32>, out: &mut Array<u32>, out_quad: &mut Array<u32>) {
    let i = ABSOLUTE_POS;
    if i < packed.len() {
        let v = decode_ternary_word(packed[i]);
        #[unroll]
        for s in 0..4usize {
            out[i * 4usize + s] = v[s];
            out_quad[i * 4usize + s] = decode_ternary_quad(packed[i], s as u32);
        }
    }
}

#[test]
fn weight_words_decode_to_int8_in_k_order() {
    let c = R::client(&WgpuDevice::default());
    let mut rng = StdRng::seed_from_u64(7);
    // Odd N and K: padding rows and columns (code 1) must decode to 0.
    let (n, k) = (37usize, 75usize);
    let t: Vec<i8> = (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect();
    let words = support::pack(&t, n, k);
    let (tiles_n, blocks_k) = (n.div_ceil(16), k.div_ceil(16));
    let h = c.create_from_slice(u32::as_bytes(&words));
    let o = c.empty(words.len() * 16);
    let oq = c.empty(words.len() * 16);
    decode_kernel::launch::<R>(
        &c,
        CubeCount::Static(words.len().div_ceil(64) as u32, 1, 1),
        CubeDim::new_1d(64),
        unsafe { ArrayArg::from_raw_parts(h, words.len()) },
        unsafe { ArrayArg::from_raw_parts(o.clone(), words.len() * 4) },
        unsafe { ArrayArg::from_raw_parts(oq.clone(), words.len() * 4) },
    );
    let got = u32::from_bytes(&c.read_one(o).unwrap()).to_vec();
    let got_q = u32::from_bytes(&c.read_one(oq).unwrap()).to_vec();
    assert_eq!(got, got_q, "word and quad decoders disagree");
    let mut checked = 0;
    for tile in 0..tiles_n {
        for kb in 0..blocks_k {
            for w in 0..16 {
                let i = (tile * blocks_k + kb) * 16 + w;
                let nn = tile * 16 + w;
                for kl in 0..16 {
                    let kk = kb * 16 + kl;
                    let want = if nn < n && kk < k { t[nn * k + kk] } else { 0 };
                    let byte = got[i * 4 + kl / 4].to_le_bytes()[kl % 4] as i8;
                    assert_eq!(byte, want, "tile {tile} kb {kb} row {w} k {kl}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, tiles_n * blocks_k * 256);
}

#[test]
fn forced_cmma_tiled_path_is_refused_without_cmma() {
    let c = R::client(&WgpuDevice::default());
    assert!(!cmma_available(&c));
    let err = resolve_path(&c, 256, MatmulPath::CmmaTiledGemm).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PathUnavailable {
                path: "cmma-tiled-gemm",
                ..
            }
        ),
        "{err}"
    );
    // Auto still resolves to the portable kernel here (Auto never picks the new path).
    assert_eq!(
        resolve_path(&c, 256, MatmulPath::Auto).unwrap(),
        MatmulPath::TiledGemm
    );
}
