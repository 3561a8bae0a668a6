//! Packed ternary GEMM on int8 tensor cores (`cmma` i8×i8→i32, 16×16×16), CUDA sm ≥ 72.
//!
//! Cube = 4 planes of 32 units (`CubeDim::new_2d(32, 4)`), 64×64 output tile; plane `p` owns the
//! 32×32 quadrant `(p / 2, p % 2)` as 2×2 accumulators. Each step covers `kbs` k-blocks of 16:
//! units decode activation bytes and 2-bit weight codes straight into i8 shared tiles (the
//! decode is fused into the shared-memory load), then each plane issues `4·kbs` MMAs.
//! Shared tiles are stored per k-block (`[kb][64][16]`) so every fragment pointer is 256-byte
//! aligned as WMMA requires. The epilogue stages accumulators through shared memory.

use cubecl::prelude::*;

use super::common::{signed_byte, ternary_at, GRAN_CHANNEL, GRAN_GROUP};

/// Bytes of one 64×16 i8 sub-tile.
const SUB: usize = 64 * 16;

/// Stores the four accumulators of this plane into the 64×64 i32 staging tile.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_accumulators(
    c_s: &mut SharedMemory<i32>,
    c00: &cmma::Matrix<i32>,
    c01: &cmma::Matrix<i32>,
    c10: &cmma::Matrix<i32>,
    c11: &cmma::Matrix<i32>,
    pm: usize,
    pn: usize,
) {
    let o00 = pm * 64 + pn;
    let o01 = o00 + 16;
    let o10 = o00 + 16 * 64;
    let o11 = o10 + 16;
    let span = 15 * 64 + 16;
    cmma::store(
        &mut c_s.slice_mut(o00, o00 + span),
        c00,
        64u32,
        cmma::MatrixLayout::RowMajor,
    );
    cmma::store(
        &mut c_s.slice_mut(o01, o01 + span),
        c01,
        64u32,
        cmma::MatrixLayout::RowMajor,
    );
    cmma::store(
        &mut c_s.slice_mut(o10, o10 + span),
        c10,
        64u32,
        cmma::MatrixLayout::RowMajor,
    );
    cmma::store(
        &mut c_s.slice_mut(o11, o11 + span),
        c11,
        64u32,
        cmma::MatrixLayout::RowMajor,
    );
}

/// Tensor-core GEMM kernel; same arguments and epilogue as the tiled kernel. Launch with
/// `CubeDim::new_2d(32, 4)` and `CubeCount::Static(ceil(N/64), ceil(M/64), 1)`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_cmma_kernel<O: Float>(
    codes: &Array<u32>,
    packed: &Array<u32>,
    x_scales: &Array<f32>,
    w_scales: &Array<f32>,
    bias: &Array<O>,
    out: &mut Array<O>,
    out_raw: &mut Array<i32>,
    m: usize,
    n: usize,
    blocks_k: usize,
    groups_per_row: usize,
    blocks_per_group: usize,
    #[comptime] kbs: usize,
    #[comptime] gran: u32,
    #[comptime] has_bias: bool,
    #[comptime] raw: bool,
) {
    let per_group = comptime!(gran == GRAN_GROUP && !raw);
    let unit = UNIT_POS_Y as usize * 32 + UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let pm = (plane / 2) * 32;
    let pn = (plane % 2) * 32;
    let m0 = CUBE_POS_Y as usize * 64;
    let n0 = CUBE_POS_X as usize * 64;
    let words_per_row = blocks_k * 4;

    let mut a_s = SharedMemory::<i8>::new_aligned(comptime!(SUB * kbs), 128usize);
    let mut b_s = SharedMemory::<i8>::new_aligned(comptime!(SUB * kbs), 128usize);
    let mut c_s = SharedMemory::<i32>::new_aligned(64usize * 64, 128usize);

    let c00 = cmma::Matrix::<i32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0i32,
    );
    let c01 = cmma::Matrix::<i32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0i32,
    );
    let c10 = cmma::Matrix::<i32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0i32,
    );
    let c11 = cmma::Matrix::<i32>::from_value(
        cmma::MatrixIdent::Accumulator,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::Undefined,
        0i32,
    );
    let a0 = cmma::Matrix::<i8>::from_value(
        cmma::MatrixIdent::A,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::RowMajor,
        0i8,
    );
    let a1 = cmma::Matrix::<i8>::from_value(
        cmma::MatrixIdent::A,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::RowMajor,
        0i8,
    );
    let b0 = cmma::Matrix::<i8>::from_value(
        cmma::MatrixIdent::B,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::ColMajor,
        0i8,
    );
    let b1 = cmma::Matrix::<i8>::from_value(
        cmma::MatrixIdent::B,
        16usize,
        16usize,
        16usize,
        cmma::MatrixLayout::ColMajor,
        0i8,
    );

    // Per-group float accumulators: each unit owns 32 of the 64×64 outputs (idx = unit + 128e).
    let mut acc_f = Array::<f32>::new(32usize);
    #[unroll]
    for e in 0..32usize {
        acc_f[e] = 0.0;
    }

    let mut kb0 = 0usize;
    while kb0 < blocks_k {
        // A: kbs × 64 rows × 4 words; B: kbs × 64 rows × 4 parts; 128 units.
        #[unroll]
        for e in 0usize..comptime!(2 * kbs) {
            let idx = unit + e * 128;
            let sub = idx / 256;
            let rest = idx % 256;
            let row = rest / 4;
            let part = rest % 4;
            let kb = kb0 + sub;

            let mm = m0 + row;
            let mut xw = 0u32;
            if mm < m && kb < blocks_k {
                xw = codes[mm * words_per_row + kb * 4 + part];
            }
            let nn = n0 + row;
            let mut ww = 0x5555_5555u32;
            if nn < n && kb < blocks_k {
                ww = packed[((nn / 16) * blocks_k + kb) * 16 + nn % 16];
            }
            let base = sub * SUB + row * 16 + part * 4;
            #[unroll]
            for j in 0..4usize {
                a_s[base + j] = i8::cast_from(signed_byte(xw, j as u32));
                b_s[base + j] = i8::cast_from(ternary_at(ww, 8 * j as u32 + 2 * part as u32));
            }
        }
        sync_cube();

        #[unroll]
        for sub in 0..kbs {
            let oa0 = sub * SUB + pm * 16;
            let oa1 = oa0 + 256;
            let ob0 = sub * SUB + pn * 16;
            let ob1 = ob0 + 256;
            cmma::load(&a0, &a_s.slice(oa0, oa0 + 256), 16u32);
            cmma::load(&a1, &a_s.slice(oa1, oa1 + 256), 16u32);
            cmma::load(&b0, &b_s.slice(ob0, ob0 + 256), 16u32);
            cmma::load(&b1, &b_s.slice(ob1, ob1 + 256), 16u32);
            cmma::execute::<i8, i8, i32, i32>(&a0, &b0, &c00, &c00);
            cmma::execute::<i8, i8, i32, i32>(&a0, &b1, &c01, &c01);
            cmma::execute::<i8, i8, i32, i32>(&a1, &b0, &c10, &c10);
            cmma::execute::<i8, i8, i32, i32>(&a1, &b1, &c11, &c11);
        }
        sync_cube();

        if per_group {
            let next = kb0 + kbs;
            if next % blocks_per_group == 0 || next >= blocks_k {
                let g = kb0 / blocks_per_group;
                stage_accumulators(&mut c_s, &c00, &c01, &c10, &c11, pm, pn);
                sync_cube();
                #[unroll]
                for e in 0..32usize {
                    let idx = unit + e * 128;
                    let nj = n0 + idx % 64;
                    let mut sc = 0.0f32;
                    if nj < n {
                        sc = w_scales[nj * groups_per_row + g];
                    }
                    acc_f[e] += f32::cast_from(c_s[idx]) * sc;
                }
                cmma::fill(&c00, 0i32);
                cmma::fill(&c01, 0i32);
                cmma::fill(&c10, 0i32);
                cmma::fill(&c11, 0i32);
                sync_cube();
            }
        }
        kb0 += kbs;
    }

    if !per_group {
        stage_accumulators(&mut c_s, &c00, &c01, &c10, &c11, pm, pn);
        sync_cube();
    }
    #[unroll]
    for e in 0..32usize {
        let idx = unit + e * 128;
        let mi = m0 + idx / 64;
        let nj = n0 + idx % 64;
        if mi < m && nj < n {
            if raw {
                out_raw[mi * n + nj] = c_s[idx];
            } else {
                let mut y = acc_f[e] * x_scales[mi];
                if !per_group {
                    let mut sw = w_scales[0];
                    if gran == GRAN_CHANNEL {
                        sw = w_scales[nj];
                    }
                    y = (f32::cast_from(c_s[idx]) * x_scales[mi]) * sw;
                }
                if has_bias {
                    y += f32::cast_from(bias[nj]);
                }
                out[mi * n + nj] = O::cast_from(y);
            }
        }
    }
}
