//! Packed ternary GEMM on int8 tensor cores, large-tile variant (CUDA sm ≥ 72).
//!
//! Structure (see `MatmulPath::CmmaTiledGemm`):
//! - Cube = 8 planes of 32 units (`CubeDim::new_2d(32, 8)`), block tile 128×128; plane `p` owns
//!   the 64×32 warp tile `(p / 4, p % 4)` as 4×2 accumulators of 16×16 (i8×i8→i32 `cmma`).
//! - Each stage covers `kbs` k-blocks of 16 (default 4 = K-step 64). Activations are copied
//!   global→shared as 16-byte vectors (one vector = one row × one k-block, 4 consecutive units
//!   read 64 contiguous bytes of a row); packed weights are read as whole u32 words (one word =
//!   one output row × one k-block) and decoded in registers to 16 int8 values (`code − 1`,
//!   byte-parallel, see [`decode_ternary_quad()`]) stored as one 16-byte vector.
//! - Shared tiles are stored per k-block plane, `[kb][row][16 bytes]`, so that every 16×16
//!   fragment is 256 contiguous bytes (aligned as WMMA requires); planes are padded by 32 bytes
//!   so that the 16-byte stores of a quarter-plane hit distinct banks.
//! - Two shared-memory stages (register-staged prefetch): the global loads of stage `s + 1` are
//!   issued before the MMAs of stage `s` and stored to the other buffer after them; one
//!   `sync_cube` per stage.
//! - Epilogue: each plane stages one accumulator at a time through its own 16×16 i32 buffer and
//!   writes `((acc · s_x) · s_w) + b` (per tensor or per channel) or the raw i32.
//!
//! Per-group weight scales are not handled here; the host falls back to the 64×64 kernel.

use cubecl::prelude::*;

use super::common::GRAN_CHANNEL;

/// 16 int8 values as one 16-byte vector.
pub type I8x16 = Vector<i8, Const<16>>;
/// 4 u32 words as one 16-byte vector.
pub type U32x4 = Vector<u32, Const<4>>;

/// Rows (M) of the block tile.
pub const TILE_M: usize = 128;
/// Columns (N) of the block tile.
pub const TILE_N: usize = 128;
/// Units per cube (8 planes of 32).
pub const UNITS: usize = 256;
/// Padded stride of one k-block plane of a shared tile, in 16-byte vectors (128 rows + 32 bytes).
const PLANE: usize = 130;

/// The 4 int8 weights `k = 4s .. 4s+3` of one packed word as the 4 bytes of a u32: byte `j` of
/// the result is `code(k = 4s + j) − 1`, where that code sits at bits `8j + 2s`. Byte-parallel:
/// `(c + 0x7F) ^ 0x80` maps codes 0, 1, 2 to 0xFF, 0x00, 0x01 without carries between bytes.
#[cube]
pub fn decode_ternary_quad(word: u32, s: u32) -> u32 {
    (((word >> (2 * s)) & 0x0303_0303u32) + 0x7F7F_7F7Fu32) ^ 0x8080_8080u32
}

/// The 16 int8 weights of one packed word (one output row × one k-block), in k order.
#[cube]
pub fn decode_ternary_word(word: u32) -> U32x4 {
    let mut v = U32x4::empty();
    #[unroll]
    for s in 0..4u32 {
        v[s as usize] = decode_ternary_quad(word, s);
    }
    v
}

/// Tensor-core GEMM kernel, 128×128 tiles. Same buffers and epilogue as the 64×64 kernel, for
/// per-tensor and per-channel weight scales. Launch with `CubeDim::new_2d(32, 8)` and
/// `CubeCount::Static(ceil(N/128), ceil(M/128), 1)`; `codes` is read as 16-byte vectors (each
/// activation row is a whole number of them), `packed` as u32 words.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
pub fn gemm_cmma_tiled_kernel<O: Float>(
    codes: &Array<I8x16>,
    packed: &Array<u32>,
    x_scales: &Array<f32>,
    w_scales: &Array<f32>,
    bias: &Array<O>,
    out: &mut Array<O>,
    out_raw: &mut Array<i32>,
    m: usize,
    n: usize,
    blocks_k: usize,
    #[comptime] kbs: usize,
    #[comptime] gran: u32,
    #[comptime] has_bias: bool,
    #[comptime] raw: bool,
) {
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let unit = plane * 32usize + lane;
    let pm = (plane / 4usize) * 64usize;
    let pn = (plane % 4usize) * 32usize;
    let m0 = CUBE_POS_Y as usize * TILE_M;
    let n0 = CUBE_POS_X as usize * TILE_N;
    let t0 = n0 / 16usize;
    let tiles_n = (n + 15usize) / 16usize;

    // Vectors (16 B) per stage of one operand, and per thread per stage.
    let stage = comptime!(kbs * PLANE);
    let loads = comptime!(kbs * TILE_M / UNITS);

    let mut a_s = SharedMemory::<I8x16>::new_aligned(comptime!(2 * kbs * PLANE), 128usize);
    let mut b_s = SharedMemory::<I8x16>::new_aligned(comptime!(2 * kbs * PLANE), 128usize);
    // Per-plane 16×16 i32 staging for the epilogue.
    let mut c_s = SharedMemory::<i32>::new_aligned(comptime!(8usize * 256), 128usize);

    let mut accs = Sequence::<cmma::Matrix<i32>>::new();
    #[unroll]
    for _i in 0..8usize {
        accs.push(cmma::Matrix::<i32>::from_value(
            cmma::MatrixIdent::Accumulator,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::Undefined,
            0i32,
        ));
    }
    let mut a_frags = Sequence::<cmma::Matrix<i8>>::new();
    #[unroll]
    for _i in 0..4usize {
        a_frags.push(cmma::Matrix::<i8>::from_value(
            cmma::MatrixIdent::A,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            0i8,
        ));
    }
    let mut b_frags = Sequence::<cmma::Matrix<i8>>::new();
    #[unroll]
    for _i in 0..2usize {
        b_frags.push(cmma::Matrix::<i8>::from_value(
            cmma::MatrixIdent::B,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::ColMajor,
            0i8,
        ));
    }

    // Register staging of one stage: `loads` activation vectors and `loads` weight words.
    let mut a_reg = Array::<I8x16>::new(loads);
    let mut w_reg = Array::<u32>::new(loads);
    let zero = I8x16::new(0i8);
    let vecs_per_row = blocks_k;

    let stages = (blocks_k + kbs - 1usize) / kbs;

    // Prologue: stage 0 → buffer 0.
    #[unroll]
    for e in 0..loads {
        let c = unit + e * UNITS;
        let kb = c % kbs;
        let row = c / kbs;
        let mm = m0 + row;
        a_reg[e] = zero;
        if mm < m && kb < blocks_k {
            a_reg[e] = codes[mm * vecs_per_row + kb];
        }
        let tl = c / comptime!(16 * kbs);
        let rem = c % comptime!(16 * kbs);
        let wkb = rem / 16usize;
        let w = rem % 16usize;
        let t = t0 + tl;
        w_reg[e] = 0x5555_5555u32;
        if t < tiles_n && wkb < blocks_k {
            w_reg[e] = packed[(t * blocks_k + wkb) * 16usize + w];
        }
    }
    #[unroll]
    for e in 0..loads {
        let c = unit + e * UNITS;
        a_s[(c % kbs) * PLANE + c / kbs] = a_reg[e];
        let tl = c / comptime!(16 * kbs);
        let rem = c % comptime!(16 * kbs);
        b_s[(rem / 16usize) * PLANE + tl * 16usize + rem % 16usize] =
            I8x16::reinterpret(decode_ternary_word(w_reg[e]));
    }
    sync_cube();

    let mut s = 0usize;
    while s < stages {
        let cur = (s % 2usize) * stage;
        let nxt = ((s + 1usize) % 2usize) * stage;
        let has_next = s + 1usize < stages;
        let kb0 = (s + 1usize) * kbs;
        // Issue the global loads of the next stage.
        if has_next {
            #[unroll]
            for e in 0..loads {
                let c = unit + e * UNITS;
                let kb = kb0 + c % kbs;
                let mm = m0 + c / kbs;
                a_reg[e] = zero;
                if mm < m && kb < blocks_k {
                    a_reg[e] = codes[mm * vecs_per_row + kb];
                }
                let tl = c / comptime!(16 * kbs);
                let rem = c % comptime!(16 * kbs);
                let wkb = kb0 + rem / 16usize;
                let t = t0 + tl;
                w_reg[e] = 0x5555_5555u32;
                if t < tiles_n && wkb < blocks_k {
                    w_reg[e] = packed[(t * blocks_k + wkb) * 16usize + rem % 16usize];
                }
            }
        }
        // MMAs of the current stage.
        #[unroll]
        for kb in 0..kbs {
            let base = cur + kb * PLANE;
            #[unroll]
            for i in 0..4usize {
                let o = base + (pm + 16usize * i);
                cmma::load(a_frags.index(i), &a_s.slice(o, o + 16usize), 16u32);
            }
            #[unroll]
            for j in 0..2usize {
                let o = base + (pn + 16usize * j);
                cmma::load(b_frags.index(j), &b_s.slice(o, o + 16usize), 16u32);
            }
            #[unroll]
            for i in 0..4usize {
                #[unroll]
                for j in 0..2usize {
                    let acc = accs.index(i * 2usize + j);
                    cmma::execute::<i8, i8, i32, i32>(a_frags.index(i), b_frags.index(j), acc, acc);
                }
            }
        }
        // Store the next stage into the other buffer (last read before the previous sync).
        if has_next {
            #[unroll]
            for e in 0..loads {
                let c = unit + e * UNITS;
                a_s[nxt + (c % kbs) * PLANE + c / kbs] = a_reg[e];
                let tl = c / comptime!(16 * kbs);
                let rem = c % comptime!(16 * kbs);
                b_s[nxt + (rem / 16usize) * PLANE + tl * 16usize + rem % 16usize] =
                    I8x16::reinterpret(decode_ternary_word(w_reg[e]));
            }
        }
        sync_cube();
        s += 1usize;
    }

    // Epilogue, one accumulator at a time through this plane's staging buffer.
    let cbase = plane * 256usize;
    #[unroll]
    for i in 0..4usize {
        #[unroll]
        for j in 0..2usize {
            cmma::store(
                &mut c_s.slice_mut(cbase, cbase + 256usize),
                accs.index(i * 2usize + j),
                16u32,
                cmma::MatrixLayout::RowMajor,
            );
            sync_plane();
            #[unroll]
            for e in 0..8usize {
                let idx = lane + e * 32usize;
                let mi = m0 + pm + 16usize * i + idx / 16usize;
                let nj = n0 + pn + 16usize * j + idx % 16usize;
                if mi < m && nj < n {
                    let v = c_s[cbase + idx];
                    if raw {
                        out_raw[mi * n + nj] = v;
                    } else {
                        let mut sw = w_scales[0];
                        if gran == GRAN_CHANNEL {
                            sw = w_scales[nj];
                        }
                        let mut y = (f32::cast_from(v) * x_scales[mi]) * sw;
                        if has_bias {
                            y += f32::cast_from(bias[nj]);
                        }
                        out[mi * n + nj] = O::cast_from(y);
                    }
                }
            }
            sync_plane();
        }
    }
}
