//! The driver: activation quantization, blocking, rayon splitting, bias correction and the
//! float epilogue, written once for every kernel (`TileKernel`).
//!
//! Work is cut into tasks of (up to 64 rows) × (a run of 16-row weight tiles). Inside a task,
//! rows go through the kernel `MR` at a time over K slices small enough that the `MR` activation
//! rows stay in L1 while the task's weight tiles (≤ a few hundred KiB) stay in L2. At M = 1 the
//! tiles are simply split into contiguous runs, so each core streams its part of the weights.

use rayon::prelude::*;

use crate::error::{BitLinearError, Result};
use crate::kernels::{scalar::Scalar, Kernel, TileKernel};
use crate::packed::{PackedTernary, BLOCK_BYTES, BLOCK_K, TILE_N};
use crate::quant::{
    quantize_activations_into, ActivationGranularity, QuantizedActivations, WeightGranularity,
    DEFAULT_EPS,
};

/// Options of the fused f32 → f32 entry points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearOptions {
    /// Activation scale granularity (default per token).
    pub activations: ActivationGranularity,
    /// Epsilon of the activation scale (default 1e-6).
    pub eps: f32,
    /// Kernel to use; `None` uses [`Kernel::active`].
    pub kernel: Option<Kernel>,
}

impl Default for LinearOptions {
    fn default() -> Self {
        Self {
            activations: ActivationGranularity::PerToken,
            eps: DEFAULT_EPS,
            kernel: None,
        }
    }
}

/// `y = dequant(quant(x) · Wqᵀ) + b` for row-major `x: [m, k]`, returning `[m, n]`.
///
/// `m = 0` returns an empty vector. Rows holding NaN/±Inf give NaN outputs (see
/// [`QuantizedActivations`]).
pub fn linear(
    x: &[f32],
    m: usize,
    w: &PackedTernary,
    bias: Option<&[f32]>,
    opts: &LinearOptions,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; m * w.n()];
    linear_into(x, m, w, bias, opts, &mut out)?;
    Ok(out)
}

/// Like [`linear`], writing into `out: [m, n]`.
pub fn linear_into(
    x: &[f32],
    m: usize,
    w: &PackedTernary,
    bias: Option<&[f32]>,
    opts: &LinearOptions,
    out: &mut [f32],
) -> Result<()> {
    let kernel = resolve(opts.kernel)?;
    if m == 0 {
        return check_out(out.len(), 0);
    }
    if x.len() != m * w.k() {
        return Err(BitLinearError::ShapeMismatch(format!(
            "activations have {} values, expected m × k = {m} × {}",
            x.len(),
            w.k()
        )));
    }
    // Reused per thread: a per-call allocation would cost as much as a small GEMV.
    thread_local! {
        static SCRATCH: std::cell::RefCell<QuantizedActivations> =
            std::cell::RefCell::new(QuantizedActivations::empty());
    }
    SCRATCH.with(|cell| {
        let mut xq = cell.borrow_mut();
        quantize_activations_into(x, m, w.k(), opts.activations, opts.eps, &mut xq)?;
        run(kernel, &xq, w, Output::Float { bias, out })
    })
}

/// The output for pre-quantized int8 activations: `y = (xq · Wqᵀ) · s_x · s_w + b`.
pub fn linear_quantized_into(
    xq: &QuantizedActivations,
    w: &PackedTernary,
    bias: Option<&[f32]>,
    kernel: Option<Kernel>,
    out: &mut [f32],
) -> Result<()> {
    let kernel = resolve(kernel)?;
    run(kernel, xq, w, Output::Float { bias, out })
}

/// The exact integer products `xq · Wqᵀ` (`[m, n]` i32, over all K, scales ignored).
pub fn int_matmul(
    xq: &QuantizedActivations,
    w: &PackedTernary,
    kernel: Option<Kernel>,
) -> Result<Vec<i32>> {
    let kernel = resolve(kernel)?;
    let mut out = vec![0i32; xq.m() * w.n()];
    run(kernel, xq, w, Output::Int { out: &mut out })?;
    Ok(out)
}

fn resolve(kernel: Option<Kernel>) -> Result<Kernel> {
    match kernel {
        Some(k) => k.check_supported().map(|_| k),
        None => Kernel::active(),
    }
}

fn check_out(actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(BitLinearError::LengthMismatch {
            name: "output",
            expected,
            actual,
        });
    }
    Ok(())
}

enum Output<'a> {
    Float {
        bias: Option<&'a [f32]>,
        out: &'a mut [f32],
    },
    Int {
        out: &'a mut [i32],
    },
}

fn run(kernel: Kernel, xq: &QuantizedActivations, w: &PackedTernary, output: Output) -> Result<()> {
    let (m, n) = (xq.m(), w.n());
    if xq.k() != w.k() && m > 0 {
        return Err(BitLinearError::ShapeMismatch(format!(
            "activations have k = {}, weights have k = {}",
            xq.k(),
            w.k()
        )));
    }
    match &output {
        Output::Float { bias, out } => {
            check_out(out.len(), m * n)?;
            if let Some(b) = bias {
                if b.len() != n {
                    return Err(BitLinearError::LengthMismatch {
                        name: "bias",
                        expected: n,
                        actual: b.len(),
                    });
                }
            }
        }
        Output::Int { out } => check_out(out.len(), m * n)?,
    }
    if m == 0 {
        return Ok(());
    }
    match kernel {
        Kernel::Scalar => drive::<Scalar>(xq, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => drive::<crate::kernels::x86::avx2::Avx2>(xq, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::AvxVnni => drive::<crate::kernels::x86::avxvnni::AvxVnni>(xq, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => drive::<crate::kernels::x86::avx512vnni::Avx512Vnni>(xq, w, output),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => drive::<crate::kernels::aarch64::neon::Neon>(xq, w, output),
        #[cfg(target_arch = "aarch64")]
        Kernel::NeonDotprod => drive::<crate::kernels::aarch64::neon_dot::NeonDot>(xq, w, output),
        #[allow(unreachable_patterns)]
        other => return Err(BitLinearError::UnsupportedKernel(other.name().to_string())),
    }
    Ok(())
}

/// A K range handed to the kernel in one call; never crosses a scale-group boundary.
#[derive(Clone, Copy)]
struct Slice {
    kb0: usize,
    nkb: usize,
    group: usize,
    ends_group: bool,
}

/// Raw output pointer shared by tasks that write disjoint `[rows × tiles]` regions.
#[derive(Clone, Copy)]
struct SharedOut<T>(*mut T);
// SAFETY: tasks write disjoint regions (different rows or different columns), see `drive`.
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

/// Everything a task needs, read-only.
struct Plan<'a> {
    xq: &'a QuantizedActivations,
    w: &'a PackedTernary,
    slices: Vec<Slice>,
    groups: usize,
    /// Σ_k xq[row, k] per row and group: the bias of the unsigned-code products.
    row_sums: Vec<i32>,
    grouped: bool,
}

fn drive<K: TileKernel>(xq: &QuantizedActivations, w: &PackedTernary, output: Output) {
    let (m, n) = (xq.m(), w.n());
    let grouped = matches!(output, Output::Float { .. })
        && matches!(w.granularity(), WeightGranularity::PerGroup(_));
    let (groups, group_blocks) = match w.granularity() {
        WeightGranularity::PerGroup(g) if grouped => (w.k().div_ceil(g), g / BLOCK_K),
        _ => (1, w.blocks_k()),
    };
    let mr_max = K::MAX_ROWS.min(m.next_power_of_two());
    // Keep the MR activation rows of one slice within ~16 KiB of L1.
    let kc = if mr_max >= 4 {
        (16384 / (mr_max * BLOCK_K)).max(16)
    } else {
        usize::MAX
    };
    let mut slices = Vec::new();
    for g in 0..groups {
        let g0 = g * group_blocks;
        let g1 = ((g + 1) * group_blocks).min(w.blocks_k());
        let mut kb = g0;
        while kb < g1 {
            let nkb = kc.min(g1 - kb);
            slices.push(Slice {
                kb0: kb,
                nkb,
                group: g,
                ends_group: kb + nkb == g1,
            });
            kb += nkb;
        }
    }
    let (kp, stride) = (xq.k_padded(), xq.row_stride());
    let mut row_sums = vec![0i32; m * groups];
    for r in 0..m {
        let codes = &xq.codes_padded()[r * stride..r * stride + kp];
        for g in 0..groups {
            let lo = g * group_blocks * BLOCK_K;
            let hi = ((g + 1) * group_blocks * BLOCK_K).min(kp);
            row_sums[r * groups + g] = codes[lo..hi].iter().map(|&c| c as i32).sum();
        }
    }
    let plan = Plan {
        xq,
        w,
        slices,
        groups,
        row_sums,
        grouped,
    };

    // Task grid: row groups of ≤ 64 × runs of tiles, about 4 tasks per thread.
    let tiles = w.tiles_n();
    let row_group = m.min(64);
    let row_groups = m.div_ceil(row_group);
    let threads = rayon::current_num_threads().max(1);
    let work = m as u64 * n as u64 * w.k() as u64;
    // A few rows stream the weights once: one contiguous run per thread keeps each core's
    // hardware prefetcher on a single long stream. More rows: 4 tasks per thread balance load.
    let want = if work < (1 << 16) {
        1
    } else if m <= 4 {
        threads
    } else {
        4 * threads
    };
    let tile_runs = want.div_ceil(row_groups).clamp(1, tiles);
    let run_len = tiles.div_ceil(tile_runs);
    let tile_runs = tiles.div_ceil(run_len);
    let tasks = row_groups * tile_runs;

    let (f_out, i_out, bias) = match output {
        Output::Float { bias, out } => (
            SharedOut(out.as_mut_ptr()),
            SharedOut(std::ptr::null_mut()),
            bias,
        ),
        Output::Int { out } => (
            SharedOut(std::ptr::null_mut()),
            SharedOut(out.as_mut_ptr()),
            None,
        ),
    };
    let task = |t: usize| {
        let (rg, tr) = (t / tile_runs, t % tile_runs);
        let rows = rg * row_group..((rg + 1) * row_group).min(m);
        let tiles = tr * run_len..((tr + 1) * run_len).min(tiles);
        // SAFETY: (rows, tiles) regions of different tasks are disjoint, the pointers
        // address m × n outputs, and the plan's buffers match the kernel contract.
        unsafe { run_task::<K>(&plan, rows, tiles, mr_max, bias, f_out, i_out) };
    };
    if tasks == 1 {
        task(0);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// # Safety
/// `f_out` (float mode) or `i_out` (int mode) addresses `m × n` outputs and no other task
/// writes the `rows × tiles` region.
unsafe fn run_task<K: TileKernel>(
    plan: &Plan,
    rows: std::ops::Range<usize>,
    tiles: std::ops::Range<usize>,
    mr_max: usize,
    bias: Option<&[f32]>,
    f_out: SharedOut<f32>,
    i_out: SharedOut<i32>,
) {
    let mut acc = vec![0i32; tiles.len() * mr_max * TILE_N];
    let mut accf = vec![0f32; if plan.grouped { acc.len() } else { 0 }];
    let mut r = rows.start;
    while r < rows.end {
        // The kernel's maximum if that many rows are left, else the largest power of two.
        let left = rows.end - r;
        let mr = if left >= mr_max {
            mr_max
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        // SAFETY: forwarded; mr is K::MAX_ROWS or a power of two below it.
        unsafe {
            match mr {
                1 => chunk::<K, 1>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
                2 => chunk::<K, 2>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
                4 => chunk::<K, 4>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
                8 => chunk::<K, 8>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
                16 => chunk::<K, 16>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
                _ => chunk::<K, 24>(plan, r, &tiles, &mut acc, &mut accf, bias, f_out, i_out),
            }
        }
        r += mr;
    }
}

/// Rows `r0..r0 + MR` against `tiles`, over all K, then the epilogue.
///
/// # Safety
/// As [`run_task`]; `MR ≤ K::MAX_ROWS` and rows `r0..r0 + MR` exist.
#[allow(clippy::too_many_arguments)]
unsafe fn chunk<K: TileKernel, const MR: usize>(
    plan: &Plan,
    r0: usize,
    tiles: &std::ops::Range<usize>,
    acc: &mut [i32],
    accf: &mut [f32],
    bias: Option<&[f32]>,
    f_out: SharedOut<f32>,
    i_out: SharedOut<i32>,
) {
    let w = plan.w;
    let (n, bk, stride) = (w.n(), w.blocks_k(), plan.xq.row_stride());
    let acc = &mut acc[..tiles.len() * MR * TILE_N];
    acc.fill(0);
    if plan.grouped {
        accf[..acc.len()].fill(0.0);
    }
    let x0 = plan.xq.codes_padded().as_ptr();
    let blocks = w.as_bytes().as_ptr();
    for s in &plan.slices {
        for (ti, t) in tiles.clone().enumerate() {
            // SAFETY: tile t < tiles_n and kb0 + nkb ≤ blocks_k, so the blocks exist; rows
            // r0..r0+MR of the padded activations hold k_padded ≥ 16 (kb0 + nkb) bytes each; the
            // accumulator slice holds MR × 16 i32.
            unsafe {
                K::dot_tile::<MR>(
                    blocks.add((t * bk + s.kb0) * BLOCK_BYTES),
                    s.nkb,
                    x0.add(r0 * stride + s.kb0 * BLOCK_K),
                    stride,
                    acc.as_mut_ptr().add(ti * MR * TILE_N),
                );
            }
        }
        if plan.grouped && s.ends_group {
            let scales = w.scales();
            for (ti, t) in tiles.clone().enumerate() {
                for r in 0..MR {
                    let bias_sum = plan.row_sums[(r0 + r) * plan.groups + s.group];
                    for j in 0..TILE_N.min(n.saturating_sub(t * TILE_N)) {
                        let i = (ti * MR + r) * TILE_N + j;
                        let col = t * TILE_N + j;
                        accf[i] += (acc[i] - bias_sum) as f32 * scales[col * plan.groups + s.group];
                        acc[i] = 0;
                    }
                }
            }
        }
    }
    // Epilogue, 16 columns at a time in fixed-size arrays so it vectorizes.
    let s_x = plan.xq.scales();
    let scales = w.scales();
    for (ti, t) in tiles.clone().enumerate() {
        let cols = TILE_N.min(n - t * TILE_N);
        let col0 = t * TILE_N;
        let mut s_w = [0f32; TILE_N];
        let mut b = [0f32; TILE_N];
        for j in 0..cols {
            s_w[j] = match w.granularity() {
                WeightGranularity::PerTensor => scales[0],
                _ => scales[col0 + j],
            };
            b[j] = bias.map_or(0.0, |b| b[col0 + j]);
        }
        for r in 0..MR {
            let row = r0 + r;
            let i0 = (ti * MR + r) * TILE_N;
            let a: &[i32; TILE_N] = acc[i0..i0 + TILE_N].try_into().expect("16 accumulators");
            let row_sum = plan.row_sums[row * plan.groups];
            if !i_out.0.is_null() {
                let mut y = [0i32; TILE_N];
                for j in 0..TILE_N {
                    y[j] = a[j] - row_sum;
                }
                // SAFETY: row < m and col0 + cols ≤ n; this region belongs to this task.
                unsafe {
                    std::ptr::copy_nonoverlapping(y.as_ptr(), i_out.0.add(row * n + col0), cols)
                };
                continue;
            }
            let mut y = [0f32; TILE_N];
            if plan.grouped {
                let f: &[f32; TILE_N] = accf[i0..i0 + TILE_N].try_into().expect("16 sums");
                for j in 0..TILE_N {
                    y[j] = f[j] * s_x[row];
                }
            } else {
                for j in 0..TILE_N {
                    y[j] = ((a[j] - row_sum) as f32 * s_x[row]) * s_w[j];
                }
            }
            // Without a bias nothing is added (adding 0.0 would turn -0.0 into +0.0).
            if bias.is_some() {
                for j in 0..TILE_N {
                    y[j] += b[j];
                }
            }
            // SAFETY: as above.
            unsafe { std::ptr::copy_nonoverlapping(y.as_ptr(), f_out.0.add(row * n + col0), cols) };
        }
    }
}
