//! The driver: activation quantization, blocking, rayon splitting, bias correction and the
//! float epilogue, written once for every kernel (`TileKernel`).
//!
//! Work is cut into tasks of (up to 64 rows) × (a run of 16-row weight tiles). Inside a task,
//! rows go through the kernel `MR` at a time over K slices small enough that the `MR` activation
//! rows stay in L1 while the task's weight tiles (≤ a few hundred KiB) stay in L2.
//!
//! A few rows (the GEMV case, M ≤ 4) from `linear_into` take another route: the work is split
//! before anything else, one task per thread, and every task quantizes the rows itself, then
//! claims chunks of tiles, first from the front of its own contiguous run, then from the back of
//! the others' (`WorkRuns`). Each core thus starts streaming its weights without waiting for a
//! serial prologue, streams one long ascending run, and the core that starts late or streams
//! slower is relieved by the other instead of holding the call back.

use rayon::prelude::*;

use crate::error::{BitLinearError, Result};
use crate::kernels::{scalar::Scalar, Kernel, TileKernel};
use crate::packed::{PackedTernary, BLOCK_BYTES, BLOCK_K, TILE_N};
use crate::quant::{
    check_eps, quantize_activations_into, quantizes_in_parallel, ActivationGranularity,
    QuantizedActivations, WeightGranularity, DEFAULT_EPS,
};
use crate::work_runs::WorkRuns;

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
    if split_first(m, w) {
        // Each task quantizes the rows itself (see `drive`): check up front what the
        // quantization would reject, so that the tasks do not fail.
        check_eps(opts.eps)?;
        let input = FloatInput {
            x,
            m,
            granularity: opts.activations,
            eps: opts.eps,
        };
        return run(kernel, Input::Float(input), w, Output::Float { bias, out });
    }
    with_scratch(|xq| {
        quantize_activations_into(x, m, w.k(), opts.activations, opts.eps, xq)?;
        run(kernel, Input::Quantized(xq), w, Output::Float { bias, out })
    })
}

/// Runs `f` on this thread's reusable activation buffer (a per-call allocation would cost as
/// much as a small GEMV).
///
/// The buffer is taken out of the thread-local for the call and put back after: a nested call
/// on the same thread (a rayon thread waiting inside `f` may run another `linear_into`) then
/// gets an empty buffer of its own instead of a `RefCell` borrow panic.
fn with_scratch<R>(f: impl FnOnce(&mut QuantizedActivations) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::Cell<Option<QuantizedActivations>> =
            const { std::cell::Cell::new(None) };
    }
    let mut xq = SCRATCH.take().unwrap_or_else(QuantizedActivations::empty);
    let r = f(&mut xq);
    SCRATCH.set(Some(xq));
    r
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
    run(kernel, Input::Quantized(xq), w, Output::Float { bias, out })
}

/// The exact integer products `xq · Wqᵀ` (`[m, n]` i32, over all K, scales ignored).
pub fn int_matmul(
    xq: &QuantizedActivations,
    w: &PackedTernary,
    kernel: Option<Kernel>,
) -> Result<Vec<i32>> {
    let kernel = resolve(kernel)?;
    let mut out = vec![0i32; xq.m() * w.n()];
    run(
        kernel,
        Input::Quantized(xq),
        w,
        Output::Int { out: &mut out },
    )?;
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

/// The activations a call starts from.
enum Input<'a> {
    /// Already quantized (`m` and `k` from the buffer).
    Quantized(&'a QuantizedActivations),
    /// f32 rows that every task quantizes itself ([`split_first`] holds).
    Float(FloatInput<'a>),
}

/// Row-major `[m, k]` f32 activations and how to quantize them (`k` is the weights' K).
#[derive(Clone, Copy)]
struct FloatInput<'a> {
    x: &'a [f32],
    m: usize,
    granularity: ActivationGranularity,
    eps: f32,
}

fn run(kernel: Kernel, input: Input, w: &PackedTernary, output: Output) -> Result<()> {
    let (m, k) = match &input {
        Input::Quantized(xq) => (xq.m(), xq.k()),
        Input::Float(f) => (f.m, w.k()),
    };
    let n = w.n();
    if k != w.k() && m > 0 {
        return Err(BitLinearError::ShapeMismatch(format!(
            "activations have k = {k}, weights have k = {}",
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
        Kernel::Scalar => drive::<Scalar>(input, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => drive::<crate::kernels::x86::avx2::Avx2>(input, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::AvxVnni => drive::<crate::kernels::x86::avxvnni::AvxVnni>(input, w, output),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => {
            drive::<crate::kernels::x86::avx512vnni::Avx512Vnni>(input, w, output)
        }
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => drive::<crate::kernels::aarch64::neon::Neon>(input, w, output),
        #[cfg(target_arch = "aarch64")]
        Kernel::NeonDotprod => {
            drive::<crate::kernels::aarch64::neon_dot::NeonDot>(input, w, output)
        }
        #[allow(unreachable_patterns)]
        other => Err(BitLinearError::UnsupportedKernel(other.name().to_string())),
    }
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

/// Weight bytes per chunk that the tasks of a few-row call claim at a time, rounded to whole
/// tiles (one tile at K ≥ 1024). Small, so the tasks finish within a chunk of each other;
/// measured at 1024→1024 against 8 and 16 KiB: as fast or faster.
const CHUNK_BYTES: usize = 4096;

/// Everything a task needs, read-only.
struct Plan<'a> {
    xq: &'a QuantizedActivations,
    w: &'a PackedTernary,
    slices: Vec<Slice>,
    groups: usize,
    /// Σ_k xq[row, k] per row and group: the bias of the unsigned-code products.
    row_sums: Vec<i32>,
    grouped: bool,
    /// Rows per kernel call at most.
    mr_max: usize,
}

impl<'a> Plan<'a> {
    /// K slices and row sums of `xq` against `w` for kernel `K`; `grouped` applies per-group
    /// weight scales inside the K loop (float output with per-group weights).
    fn new<K: TileKernel>(
        xq: &'a QuantizedActivations,
        w: &'a PackedTernary,
        grouped: bool,
    ) -> Self {
        let m = xq.m();
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
                row_sums[r * groups + g] = crate::simd_quant::sum_codes(&codes[lo..hi]);
            }
        }
        Plan {
            xq,
            w,
            slices,
            groups,
            row_sums,
            grouped,
            mr_max,
        }
    }
}

/// The task grid: row groups of ≤ 64 rows × runs of consecutive weight tiles.
#[derive(Clone, Copy)]
struct Grid {
    m: usize,
    tiles: usize,
    row_group: usize,
    tile_runs: usize,
    run_len: usize,
}

impl Grid {
    fn new(m: usize, w: &PackedTernary, threads: usize) -> Self {
        let tiles = w.tiles_n();
        let row_group = m.min(64);
        let row_groups = m.div_ceil(row_group);
        let work = m as u64 * w.n() as u64 * w.k() as u64;
        // A few rows stream the weights once: one contiguous run per thread keeps each core's
        // hardware prefetcher on a single long stream. More rows: 4 tasks per thread balance
        // load.
        let want = if work < (1 << 16) {
            1
        } else if m <= 4 {
            threads
        } else {
            4 * threads
        };
        let tile_runs = want.div_ceil(row_groups).clamp(1, tiles.max(1));
        let run_len = tiles.div_ceil(tile_runs).max(1);
        let tile_runs = tiles.div_ceil(run_len).max(1);
        Grid {
            m,
            tiles,
            row_group,
            tile_runs,
            run_len,
        }
    }

    fn tasks(&self) -> usize {
        self.m.div_ceil(self.row_group) * self.tile_runs
    }

    /// The rows and tiles of task `t`.
    fn task(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (rg, tr) = (t / self.tile_runs, t % self.tile_runs);
        let rows = rg * self.row_group..((rg + 1) * self.row_group).min(self.m);
        let tiles = tr * self.run_len..((tr + 1) * self.run_len).min(self.tiles);
        (rows, tiles)
    }
}

/// Whether `linear_into` splits the work across threads before quantizing, every task
/// quantizing the (few) activation rows itself: the quantization then leaves the serial
/// prologue, the other cores start streaming weights as soon as they pick their task up, and
/// no quantized row moves between cores. Only where the split puts all rows in every task (a
/// few rows, several tile runs) and the quantization of those rows runs serially (else every
/// task would fork-join inside).
fn split_first(m: usize, w: &PackedTernary) -> bool {
    let threads = rayon::current_num_threads();
    m <= 4
        && threads > 1
        && !quantizes_in_parallel(m, w.k())
        && Grid::new(m, w, threads).tasks() > 1
}

/// Float or int output as raw pointers for the tasks, and the bias.
fn raw_output<'a>(output: Output<'a>) -> (SharedOut<f32>, SharedOut<i32>, Option<&'a [f32]>) {
    match output {
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
    }
}

fn drive<K: TileKernel>(input: Input, w: &PackedTernary, output: Output) -> Result<()> {
    let grouped = matches!(output, Output::Float { .. })
        && matches!(w.granularity(), WeightGranularity::PerGroup(_));
    let m = match &input {
        Input::Quantized(xq) => xq.m(),
        Input::Float(f) => f.m,
    };
    let grid = Grid::new(m, w, rayon::current_num_threads().max(1));
    let (f_out, i_out, bias) = raw_output(output);
    // SAFETY (both paths): the (rows, tiles) regions of different tasks are disjoint, the
    // pointers address m × n outputs (checked by `run`), and the plan's buffers match the
    // kernel contract.
    match input {
        Input::Quantized(xq) => {
            let plan = Plan::new::<K>(xq, w, grouped);
            let task = |t: usize| {
                let (rows, tiles) = grid.task(t);
                // SAFETY: see above.
                unsafe {
                    run_task::<K>(
                        &plan,
                        rows,
                        tiles,
                        &mut Accumulators::default(),
                        bias,
                        f_out,
                        i_out,
                    )
                };
            };
            if grid.tasks() == 1 {
                task(0);
            } else {
                (0..grid.tasks()).into_par_iter().for_each(task);
            }
            Ok(())
        }
        Input::Float(f) => {
            // One task per thread, each claiming chunks of whole tiles (see `WorkRuns`).
            let chunk_tiles = (CHUNK_BYTES / (w.blocks_k() * BLOCK_BYTES)).max(1);
            let runs = WorkRuns::new(grid.tiles.div_ceil(chunk_tiles), grid.tasks());
            (0..grid.tasks()).into_par_iter().try_for_each(|t| {
                // A task picked up after the others took every chunk (its thread was busy, or
                // the caller runs it itself after its own) need not quantize.
                if runs.all_claimed() {
                    return Ok(());
                }
                with_scratch(|xq| {
                    quantize_activations_into(f.x, f.m, w.k(), f.granularity, f.eps, xq)?;
                    let plan = Plan::new::<K>(xq, w, grouped);
                    let mut acc = Accumulators::default();
                    runs.begin(t);
                    while let Some(c) = runs.next(t) {
                        let tiles = c * chunk_tiles..((c + 1) * chunk_tiles).min(grid.tiles);
                        // SAFETY: see above; `WorkRuns` hands every chunk to one task.
                        unsafe {
                            run_task::<K>(&plan, 0..f.m, tiles, &mut acc, bias, f_out, i_out)
                        };
                    }
                    runs.end();
                    // Task 0 runs on the thread that called `try_for_each` (rayon runs the
                    // leftmost part of a split itself), which joins the others next.
                    if t == 0 {
                        runs.settle();
                    }
                    Ok(())
                })
            })
        }
    }
}

/// A task's accumulators, kept across the chunks it runs (an allocation per chunk would cost
/// more than a small chunk's compute).
#[derive(Default)]
struct Accumulators {
    int: Vec<i32>,
    float: Vec<f32>,
}

/// # Safety
/// `f_out` (float mode) or `i_out` (int mode) addresses `m × n` outputs and no other task
/// writes the `rows × tiles` region.
unsafe fn run_task<K: TileKernel>(
    plan: &Plan,
    rows: std::ops::Range<usize>,
    tiles: std::ops::Range<usize>,
    scratch: &mut Accumulators,
    bias: Option<&[f32]>,
    f_out: SharedOut<f32>,
    i_out: SharedOut<i32>,
) {
    let mr_max = plan.mr_max;
    let len = tiles.len() * mr_max * TILE_N;
    // `chunk` zeroes what it uses: only grow.
    if scratch.int.len() < len {
        scratch.int.resize(len, 0);
    }
    if plan.grouped && scratch.float.len() < len {
        scratch.float.resize(len, 0.0);
    }
    let (acc, accf) = (&mut scratch.int, &mut scratch.float);
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
                1 => chunk::<K, 1>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
                2 => chunk::<K, 2>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
                4 => chunk::<K, 4>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
                8 => chunk::<K, 8>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
                16 => chunk::<K, 16>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
                _ => chunk::<K, 24>(plan, r, &tiles, acc, accf, bias, f_out, i_out),
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
