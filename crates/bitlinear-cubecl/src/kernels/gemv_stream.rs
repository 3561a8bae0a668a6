//! Streaming packed-ternary GEMV for tiny batches (M ≤ 4), built to run at memory bandwidth.
//!
//! One cube per tile of 16 output rows; the tile's blocks (64 bytes each, contiguous along K) are
//! split over the cube's units (split-K inside the cube). With `lpb` units per block, a unit reads
//! `4 / lpb` 16-byte vectors per block (`16 / lpb` rows × 16 inputs) and walks the blocks
//! `kb ≡ slot (mod units / lpb)`, so each step of the cube reads `units / lpb` consecutive blocks.
//!
//! Decode costs two integer ops per weight and no per-weight shift: for the 2-bit field at bit
//! `2p` (`p < 8`) of a word, `word & (3 << 2p) = code · 4^p`, and the activation of that field is
//! pre-scaled by `4^(7-p)` once per block (shared by all the unit's rows), so one `and` plus one
//! multiply-add adds `x · code · 2^14` to a single accumulator per row. The upper half of a word
//! is shifted down once (one op per 8 weights). Accumulators are flushed (`>> 14`, exact) every
//! [`CHUNK`] blocks, before they can overflow: per block, `|Σ x · code| ≤ 16 · 256 = 2^12`, so 16
//! blocks stay under `2^16 · 2^14 = 2^30`. `Σ x · (code − 1) = Σ x · code − Σ x`.
//!
//! The split-K partial sums are reduced through shared memory (a tree over the k slots, padded
//! rows against bank conflicts), so the kernel needs no plane operations and runs everywhere.

use cubecl::prelude::*;

use super::common::{linear_cube_pos, GRAN_CHANNEL, GRAN_GROUP};

/// Blocks between accumulator flushes (see the module docs for the overflow bound).
pub const CHUNK: u32 = 16;

/// Sums `values[i]` (output `o = mi·16 + part·rows + r`) over the k slots through shared memory;
/// afterwards `smem[o * (slots + 1)]` holds output `o`'s total. Ends with a `sync_cube`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn reduce_slots<E: Numeric>(
    smem: &mut SharedMemory<E>,
    values: &Array<E>,
    part: usize,
    slot: usize,
    unit: usize,
    #[comptime] rows_m: usize,
    #[comptime] rows: usize,
    #[comptime] slots: usize,
    #[comptime] units: usize,
) {
    let pitch = comptime!(slots + 1);
    #[unroll]
    for mi in 0..rows_m {
        #[unroll]
        for r in 0..rows {
            let o = mi * 16 + part * rows + r;
            smem[o * pitch + slot] = values[mi * rows + r];
        }
    }
    sync_cube();
    let outputs = comptime!(rows_m * 16);
    let mut half = (slots / 2).runtime();
    while half > 0 {
        let mut idx = unit;
        while idx < outputs * half {
            let o = idx / half;
            let ks = idx % half;
            smem[o * pitch + ks] = smem[o * pitch + ks] + smem[o * pitch + ks + half];
            idx += units;
        }
        sync_cube();
        half /= 2;
    }
}

/// Streaming GEMV; see the module docs. Same buffers and epilogue as
/// [`super::gemv::gemv_kernel()`]. Launch with `CubeDim::new_1d(units)` and one cube per 16-row
/// tile (`linear_cube_pos`); `units` and `lpb` powers of two, `lpb ∈ {1, 2, 4}`, `units ≥ lpb`,
/// and `rows_m · 16 / lpb ≤ 16` keeps the accumulators in registers. `depth` (1, 2 or 4, and 1
/// for per-group scales, whose flush follows every block) is how many blocks a unit loads
/// before computing on them.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemv_stream_kernel<NV: Size, O: Float>(
    codes: &Array<Vector<u32, NV>>,
    packed: &Array<Vector<u32, NV>>,
    x_scales: &Array<f32>,
    w_scales: &Array<f32>,
    bias: &Array<O>,
    out: &mut Array<O>,
    out_raw: &mut Array<i32>,
    n: usize,
    blocks_k: usize,
    groups_per_row: usize,
    blocks_per_group: usize,
    #[comptime] rows_m: usize,
    #[comptime] lpb: usize,
    #[comptime] units: usize,
    #[comptime] depth: usize,
    #[comptime] gran: u32,
    #[comptime] has_bias: bool,
    #[comptime] raw: bool,
) {
    let tile = linear_cube_pos();
    let unit = UNIT_POS as usize;
    let part = unit % lpb;
    let slot = unit / lpb;
    let slots = comptime!(units / lpb);
    let rows = comptime!(16 / lpb);
    let vecs = comptime!(4 / lpb);
    let nacc = comptime!(rows_m * (16 / lpb));
    let per_group = comptime!(gran == GRAN_GROUP && !raw);
    // Per group, flush after every block so that each flush sees one group.
    let chunk = comptime!(if gran == GRAN_GROUP && !raw {
        1u32
    } else {
        CHUNK
    });

    let mut total = Array::<i32>::new(nacc);
    let mut total_f = Array::<f32>::new(nacc);
    let mut acc = Array::<i32>::new(nacc);
    #[unroll]
    for i in 0..nacc {
        total[i] = 0;
        total_f[i] = 0.0;
        acc[i] = 0;
    }
    let mut xsum = Array::<i32>::new(rows_m);
    let mut xs = Array::<i32>::new(16usize);
    let mut wbuf = Array::<u32>::new(comptime!(rows * depth));

    let tile_base = tile * blocks_k * 4 + part * vecs;
    let mut kb = slot;
    while kb < blocks_k {
        #[unroll]
        for mi in 0..rows_m {
            xsum[mi] = 0;
        }
        let mut last_kb = kb;
        let mut step: u32 = 0u32;
        let chunk_len: u32 = chunk.runtime();
        while step < chunk_len && kb < blocks_k {
            // Issue the loads of all `depth` blocks of this step before any arithmetic, so each
            // unit keeps `depth` blocks of weights in flight (a block past the end re-reads the
            // last one and is skipped below).
            #[unroll]
            for d in 0..depth {
                let mut kbl = kb + d * slots;
                if kbl >= blocks_k {
                    kbl = blocks_k - 1;
                }
                #[unroll]
                for v in 0..vecs {
                    let wv = packed[tile_base + kbl * 4 + v];
                    #[unroll]
                    for e in 0..4usize {
                        wbuf[d * rows + v * 4 + e] = wv[e];
                    }
                }
            }
            #[unroll]
            for d in 0..depth {
                let kbd = kb + d * slots;
                if kbd < blocks_k {
                    #[unroll]
                    for mi in 0..rows_m {
                        let xv = codes[mi * blocks_k + kbd];
                        let mut s_sum = 0i32;
                        #[unroll]
                        for s in 0..4usize {
                            let xw = xv[s];
                            #[unroll]
                            for j in 0..4usize {
                                // Input 4s + j sits at field p = 4j + s; within its half, p' = 4(j%2) + s.
                                let sx = i32::cast_from(xw << (24 - 8 * j as u32)) >> 24;
                                s_sum += sx;
                                let scale =
                                    i32::cast_from(1u32 << (2 * (7 - (4 * (j % 2) + s)) as u32));
                                xs[s * 4 + j] = sx * scale;
                            }
                        }
                        xsum[mi] += s_sum;
                        #[unroll]
                        for r in 0..rows {
                            let w_lo = wbuf[d * rows + r];
                            let w_hi = w_lo >> 16;
                            let mut a = acc[mi * rows + r];
                            #[unroll]
                            for s in 0..4usize {
                                #[unroll]
                                for j in 0..4usize {
                                    let mask = 3u32 << (2 * (4 * (j % 2) + s) as u32);
                                    let mut src = w_hi;
                                    if j < 2 {
                                        src = w_lo;
                                    }
                                    a += xs[s * 4 + j] * i32::cast_from(src & mask);
                                }
                            }
                            acc[mi * rows + r] = a;
                        }
                    }
                }
            }
            last_kb = kb;
            kb += depth * slots;
            step += depth as u32;
        }
        // Flush: exact block sums of x · (code − 1).
        #[unroll]
        for mi in 0..rows_m {
            #[unroll]
            for r in 0..rows {
                let i = mi * rows + r;
                let v = (acc[i] >> 14) - xsum[mi];
                acc[i] = 0;
                if per_group {
                    let nn = tile * 16 + part * rows + r;
                    let mut sc = 0.0f32;
                    if nn < n {
                        sc = w_scales[nn * groups_per_row + last_kb / blocks_per_group];
                    }
                    total_f[i] += f32::cast_from(v) * sc;
                } else {
                    total[i] += v;
                }
            }
        }
    }

    let pitch = comptime!(slots + 1);
    let outputs = comptime!(rows_m * 16);
    if per_group {
        let mut smem = SharedMemory::<f32>::new(comptime!(rows_m * 16 * (units / lpb + 1)));
        reduce_slots::<f32>(
            &mut smem, &total_f, part, slot, unit, rows_m, rows, slots, units,
        );
        if unit < outputs {
            let mi = unit / 16;
            let nn = tile * 16 + unit % 16;
            if nn < n {
                let mut y = smem[unit * pitch] * x_scales[mi];
                if has_bias {
                    y += f32::cast_from(bias[nn]);
                }
                out[mi * n + nn] = O::cast_from(y);
            }
        }
    } else {
        let mut smem = SharedMemory::<i32>::new(comptime!(rows_m * 16 * (units / lpb + 1)));
        reduce_slots::<i32>(
            &mut smem, &total, part, slot, unit, rows_m, rows, slots, units,
        );
        if unit < outputs {
            let mi = unit / 16;
            let nn = tile * 16 + unit % 16;
            if nn < n {
                let t = smem[unit * pitch];
                if raw {
                    out_raw[mi * n + nn] = t;
                } else {
                    let mut sw = w_scales[0];
                    if gran == GRAN_CHANNEL {
                        sw = w_scales[nn];
                    }
                    let mut y = (f32::cast_from(t) * x_scales[mi]) * sw;
                    if has_bias {
                        y += f32::cast_from(bias[nn]);
                    }
                    out[mi * n + nn] = O::cast_from(y);
                }
            }
        }
    }
}
