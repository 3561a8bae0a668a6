//! BitLinear on NdArray with bitlinear-core's CPU kernels (SIMD, rayon).
//!
//! Contiguous f32 inputs are read in place (zero-copy); other layouts (a transposed view, a
//! slice) are first copied to row-major, so results never depend on strides. Tensors of
//! another dtype go through the generic fallback.

use std::sync::{Arc, Mutex};

use bitlinear_core::{
    linear, linear_quantized_into, quantize_activations, BitLinearError, LinearOptions,
    PackedTernary, SharedWords,
};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{TensorData, TensorMetadata};
use burn_ndarray::{NdArray, NdArrayTensor};

use super::fallback::primitive as fallback;
use crate::ops::{BitLinearBackend, BitLinearGrads, PackedShape, QuantSpec, SavedQuant};

/// Concrete backend: `burn::backend::NdArray` (f32 floats, i64 ints).
type Nd = NdArray;

/// Row-major `f32` values of a 2-D NdArray tensor, or `None` for another dtype.
fn with_f32<T>(t: &NdArrayTensor, f: impl FnOnce(&[f32], &[usize]) -> T) -> Option<T> {
    let NdArrayTensor::F32(storage) = t else {
        return None;
    };
    let view = storage.view();
    // Borrows when already row-major, copies otherwise (transposed or strided views).
    let standard = view.as_standard_layout();
    let slice = standard.as_slice().expect("standard layout is contiguous");
    Some(f(slice, view.shape()))
}

fn from_vec<E: burn::tensor::Element>(values: Vec<E>, shape: [usize; 2]) -> NdArrayTensor {
    NdArrayTensor::from_data(TensorData::new(values, shape))
}

fn core_error(what: &str, e: BitLinearError) -> ! {
    panic!("BitLinear (NdArray): {what}: {e}")
}

/// Training forward with core: ternarize and pack W straight from Burn's `[K, N]` layout
/// (parallel, no transpose copy), quantize x once, run the integer kernel.
fn forward_core(
    x: &NdArrayTensor,
    weight: &NdArrayTensor,
    bias: Option<&NdArrayTensor>,
    spec: QuantSpec,
    save: bool,
) -> Option<(FloatTensor<Nd>, Option<SavedQuant<Nd>>)> {
    let bias_values = match bias {
        Some(b) => Some(with_f32(b, |v, _| v.to_vec())?),
        None => None,
    };
    let (packed, w_codes) = with_f32(weight, |w_kn, shape| {
        let (k, n) = (shape[0], shape[1]);
        let mut codes = if save { vec![0i8; n * k] } else { Vec::new() };
        let packed = PackedTernary::quantize_input_major(
            w_kn,
            k,
            n,
            spec.quant.weights,
            spec.eps,
            save.then_some(codes.as_mut_slice()),
        )
        .unwrap_or_else(|e| core_error("cannot quantize the weight", e));
        (packed, codes)
    })?;
    let (n, k) = (packed.n(), packed.k());
    with_f32(x, |xs, shape| {
        let m = shape[0];
        let xq = quantize_activations(xs, m, k, spec.quant.activations, spec.eps)
            .unwrap_or_else(|e| core_error("cannot quantize the input", e));
        let mut out = vec![0f32; m * n];
        linear_quantized_into(&xq, &packed, bias_values.as_deref(), None, &mut out)
            .unwrap_or_else(|e| core_error("kernel failed", e));
        let saved = save.then(|| {
            let x_codes: Vec<i8> = (0..m).flat_map(|r| xq.row(r).iter().copied()).collect();
            SavedQuant {
                x_codes: from_vec(x_codes, [m, k]),
                x_scales: from_vec(xq.scales().to_vec(), [m, 1]),
                w_codes: from_vec(w_codes, [n, k]),
                w_scales: from_vec(packed.scales().to_vec(), spec.weight_scale_shape(n, k)),
            }
        });
        (from_vec(out, [m, n]), saved)
    })
}

/// Row-major `i8` values of a 2-D NdArray tensor, or `None` for another dtype.
fn with_i8<T>(t: &NdArrayTensor, f: impl FnOnce(&[i8], &[usize]) -> T) -> Option<T> {
    let NdArrayTensor::I8(storage) = t else {
        return None;
    };
    let view = storage.view();
    let standard = view.as_standard_layout();
    let slice = standard.as_slice().expect("standard layout is contiguous");
    Some(f(slice, view.shape()))
}

/// `codes[r, c] · scale(r, c)` as row-major f32 values, rows in parallel.
fn dequantize(
    codes: &[i8],
    rows: usize,
    cols: usize,
    scale: impl Fn(usize, usize) -> f32 + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(cols.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            for (c, (o, &q)) in row
                .iter_mut()
                .zip(&codes[r * cols..(r + 1) * cols])
                .enumerate()
            {
                *o = q as f32 * scale(r, c);
            }
        });
    out
}

/// Straight-through backward from the saved int8 codes: `dx = dy · (s_w·Wq)`,
/// `dW = (s_x·xq)ᵀ · dy`. `None` when the saved tensors are not the expected dtypes.
fn backward_core(
    grad: &NdArrayTensor,
    saved: &SavedQuant<Nd>,
    spec: QuantSpec,
    need_x: bool,
    need_weight: bool,
) -> Option<BitLinearGrads<Nd>> {
    let x_scales = with_f32(&saved.x_scales, |v, _| v.to_vec())?;
    let w_scales = with_f32(&saved.w_scales, |v, _| v.to_vec())?;
    let x_dq = if need_weight {
        Some(with_i8(&saved.x_codes, |c, shape| {
            dequantize(c, shape[0], shape[1], |r, _| x_scales[r])
        })?)
    } else {
        None
    };
    let w_dq = if need_x {
        Some(with_i8(&saved.w_codes, |c, shape| {
            let (n, k) = (shape[0], shape[1]);
            let gran = spec.quant.weights;
            dequantize(c, n, k, |r, col| w_scales[gran.scale_index(r, col, k)])
        })?)
    } else {
        None
    };
    let (weight, x) = with_f32(grad, |dy, shape| {
        let (m, n) = (shape[0], shape[1]);
        // dW [K, N] = (s_x·xq)ᵀ [K, M] · dy [M, N]
        let weight = x_dq.map(|x| {
            let k = x.len() / m.max(1);
            from_vec(matmul(k, n, m, &x, (k, 1), dy, (1, n)), [k, n])
        });
        // dx [M, K] = dy [M, N] · (s_w·Wq) [N, K]
        let x = w_dq.map(|w| {
            let k = w.len() / n.max(1);
            from_vec(matmul(m, k, n, dy, (1, n), &w, (1, k)), [m, k])
        });
        (weight, x)
    })?;
    Some(BitLinearGrads { x, weight })
}

/// `lhs [rows × inner] · rhs [inner × cols]` into a new row-major `[rows, cols]` buffer, with the
/// `gemm` crate (faer's kernels) on the current rayon pool. Operands are given by slice and
/// `(column stride, row stride)`, so transposed views cost nothing.
///
/// burn-ndarray's own matmul runs on matrixmultiply's separate thread pool; on a small machine
/// its threads and rayon's (which run the rest of the layer) compete for the same cores, and the
/// step time became bimodal. Keeping the whole backward on rayon avoids that.
fn matmul(
    rows: usize,
    cols: usize,
    inner: usize,
    lhs: &[f32],
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: &[f32],
    (rhs_cs, rhs_rs): (usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 || inner == 0 {
        return out;
    }
    // The last element each operand is read at, so the strides stay inside the slices.
    assert!(
        (rows - 1) * lhs_rs + (inner - 1) * lhs_cs < lhs.len(),
        "matmul: lhs too short"
    );
    assert!(
        (inner - 1) * rhs_rs + (cols - 1) * rhs_cs < rhs.len(),
        "matmul: rhs too short"
    );
    // SAFETY: dst is rows × cols row-major (column stride 1, row stride cols) and owned; the
    // asserts above keep every lhs/rhs element the strides address inside its slice.
    unsafe {
        gemm::gemm(
            rows,
            cols,
            inner,
            out.as_mut_ptr(),
            1,
            cols as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    out
}

impl BitLinearBackend for Nd {
    fn bitlinear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        match forward_core(&x, &weight, bias.as_ref(), spec, false) {
            Some((y, _)) => y,
            None => fallback::forward::<Self>(x, weight, bias, spec),
        }
    }

    fn bitlinear_forward_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> (FloatTensor<Self>, SavedQuant<Self>) {
        match forward_core(&x, &weight, bias.as_ref(), spec, true) {
            Some((y, saved)) => (y, saved.expect("saving forward")),
            None => fallback::forward_saving::<Self>(x, weight, bias, spec),
        }
    }

    fn bitlinear_backward(
        grad: FloatTensor<Self>,
        saved: SavedQuant<Self>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<Self> {
        // Dequantize the int8 codes in parallel here (burn-ndarray's element-wise cast is
        // single-threaded), then the two f32 GEMMs with the `gemm` crate on the same rayon pool.
        match backward_core(&grad, &saved, spec, need_x, need_weight) {
            Some(grads) => grads,
            None => fallback::backward::<Self>(grad, saved, spec, need_x, need_weight),
        }
    }

    fn bitlinear_pack(
        weight: FloatTensor<Self>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<Self>, FloatTensor<Self>), BitLinearError> {
        let shape = weight.shape();
        let shape = PackedShape {
            k: shape[0],
            n: shape[1],
        };
        let (words, scales) = fallback::pack::<Self>(weight, spec)?;
        // Register the new words with the kernels now (validated once, shared without a
        // copy), so the first deployed forward finds them ready.
        let _ = cached_packed(&words, &scales, shape, spec);
        Ok((words, scales))
    }

    fn bitlinear_deployed_forward(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        let Some(weights) = cached_packed(&packed, &scales, shape, spec) else {
            return fallback::deployed_forward::<Self>(x, packed, scales, bias, shape, spec);
        };
        let opts = LinearOptions {
            activations: spec.quant.activations,
            eps: spec.eps,
            kernel: None,
        };
        let run = |b: Option<&[f32]>| {
            with_f32(&x, |xs, dims| {
                let out = linear(xs, dims[0], &weights, b, &opts)
                    .unwrap_or_else(|e| core_error("kernel failed", e));
                from_vec(out, [dims[0], shape.n])
            })
        };
        // The bias is read in place (no per-call copy); a non-f32 bias takes the fallback.
        let y = match bias.as_ref() {
            None => run(None),
            Some(b) => with_f32(b, |bs, _| run(Some(bs))).flatten(),
        };
        match y {
            Some(y) => y,
            None => fallback::deployed_forward::<Self>(x, packed, scales, bias, shape, spec),
        }
    }

    fn bitlinear_deployed_input_grad(
        grad: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        fallback::deployed_input_grad::<Self>(grad, packed, scales, shape, spec)
    }
}

/// A contiguous u32 word tensor lent to bitlinear-core's kernels (see
/// [`PackedTernary::from_shared_words`]); the clone keeps its buffer alive and unchanged
/// (NdArray never mutates shared storage in place).
struct TensorWords(NdArrayTensor);

impl SharedWords for TensorWords {
    fn words(&self) -> &[u32] {
        match &self.0 {
            NdArrayTensor::U32(storage) => storage
                .view()
                .to_slice()
                .expect("shared words are contiguous (checked before sharing)"),
            _ => unreachable!("only u32 word tensors are shared"),
        }
    }
}

/// A validated [`PackedTernary`] running on a packed word tensor's own buffer.
///
/// Validating the words on every call would read all the weights twice (far slower than the
/// kernel at M = 1), so the result is cached per word buffer. The entry's holder keeps one clone
/// of the tensor: that keeps the buffer alive (its address cannot be reused by other data) and
/// shared (NdArray never mutates shared storage in place), so address + length identify the
/// same words; once that clone is the only one left, the layer is gone and the entry is dropped.
struct CacheEntry {
    holder: Arc<TensorWords>,
    address: usize,
    len: usize,
    weights: Arc<PackedTernary>,
}

/// Entries are dropped once their tensor is owned by the cache alone; the bound only matters
/// for borrowed (memory-mapped) storage, whose sharing cannot be observed. It is far above the
/// layer count of real models: a smaller bound would make a deep model rebuild every layer's
/// weights on every forward.
const CACHE_CAPACITY: usize = 1 << 14;

static CACHE: Mutex<Vec<CacheEntry>> = Mutex::new(Vec::new());

/// The packed weights for `words` and `scales`, or `None` when they are not u32 / f32.
///
/// Panics with the validation error when the words are corrupt (invalid code, nonzero padding)
/// or the scales are not positive and finite.
fn cached_packed(
    words: &NdArrayTensor,
    scales: &NdArrayTensor,
    shape: PackedShape,
    spec: QuantSpec,
) -> Option<Arc<PackedTernary>> {
    let NdArrayTensor::U32(storage) = words else {
        return None;
    };
    let view = storage.view();
    let contiguous = view.is_standard_layout();
    let (address, len) = (view.as_ptr() as usize, view.len());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // The scales are compared in place: a hit (every forward but the first) copies nothing.
    let (hit, scale_values) = with_f32(scales, |scale_values, _| {
        let matches = |e: &CacheEntry| {
            e.address == address
                && e.len == len
                && e.weights.n() == shape.n
                && e.weights.k() == shape.k
                && e.weights.granularity() == spec.quant.weights
                && e.weights.scales() == scale_values
        };
        match cache.iter().find(|e| contiguous && matches(e)) {
            Some(e) => (Some(e.weights.clone()), Vec::new()),
            None => (None, scale_values.to_vec()),
        }
    })?;
    if hit.is_some() {
        return hit;
    }
    if !contiguous {
        // A strided view (rare: the module keeps contiguous words): copy, do not cache.
        let standard = view.as_standard_layout();
        let values = standard.as_slice().expect("standard layout is contiguous");
        let weights = PackedTernary::from_u32_words(
            shape.n,
            shape.k,
            spec.quant.weights,
            scale_values,
            values,
        )
        .unwrap_or_else(|e| core_error("invalid deployed weights", e));
        return Some(Arc::new(weights));
    }
    // Run on the tensor's own buffer: no second copy of the weights in memory.
    let holder = Arc::new(TensorWords(words.clone()));
    let shared: Arc<dyn SharedWords> = holder.clone();
    let weights = PackedTernary::from_shared_words(
        shape.n,
        shape.k,
        spec.quant.weights,
        scale_values,
        shared,
    )
    .unwrap_or_else(|e| core_error("invalid deployed weights", e));
    let weights = Arc::new(weights);
    insert(&mut cache, holder, address, len, weights.clone());
    Some(weights)
}

/// Adds an entry after dropping those whose tensor is gone (owned by the cache alone).
fn insert(
    cache: &mut Vec<CacheEntry>,
    holder: Arc<TensorWords>,
    address: usize,
    len: usize,
    weights: Arc<PackedTernary>,
) {
    cache.retain(|e| match &e.holder.0 {
        NdArrayTensor::U32(s) => !s.is_unique(),
        _ => false,
    });
    if cache.len() >= CACHE_CAPACITY {
        cache.remove(0);
    }
    cache.push(CacheEntry {
        holder,
        address,
        len,
        weights,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deploying on NdArray keeps one copy of the packed weights: the kernels read the word
    /// tensor the module holds, in place, and the cache entry goes away with the tensor.
    #[test]
    fn deployed_weights_are_not_copied() {
        let (k, n) = (70, 33);
        let values: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let weight = from_vec(values, [k, n]);
        let spec = QuantSpec::default();
        let (words, scales) = Nd::bitlinear_pack(weight, spec).expect("pack");
        let NdArrayTensor::U32(storage) = &words else {
            panic!("packed words are u32");
        };
        let address = storage.view().as_ptr() as usize;
        let packed = cached_packed(&words, &scales, PackedShape { n, k }, spec).expect("cached");
        assert_eq!(packed.as_bytes().as_ptr() as usize, address);
        let count = |a: usize| {
            CACHE
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.address == a)
                .count()
        };
        assert_eq!(count(address), 1);
        drop((packed, words, scales));
        // The next insertion sweeps entries whose tensor is gone.
        let other = from_vec(vec![0.5f32; 16 * 16], [16, 16]);
        let (w2, s2) = Nd::bitlinear_pack(other, spec).expect("pack");
        // (A different size class, so the allocator cannot hand it the old address.)
        assert_eq!(count(address), 0);
        drop((w2, s2));
    }
}
