//! Host API for on-device ternary weight quantization, packing and unpacking.

use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::device::grid_for_elements;
use crate::error::Result;
use crate::kernels::dequant::unpack_weights_kernel;
use crate::kernels::weight_pack::{
    absmean_segments_kernel, mean_reduce_kernel, pack_weights_kernel,
};
use crate::types::{packed_word_count, PackedWeights, WeightGranularity, WeightLayout};
use crate::validate;

/// Quantizes an f32 weight on the device to ternary by absmean and packs it.
///
/// `w` is row-major `[K, N]` for [`WeightLayout::InputMajor`] (Burn's `Linear`) or `[N, K]` for
/// [`WeightLayout::OutputMajor`]. Scales: `s = max(mean|W|, eps)` over the tensor, each output
/// channel, or each group of `G` inputs of an output; codes `clamp(round_ties_even(W / s), -1, 1)`.
/// Per-channel and per-group sums run sequentially in ascending `k` (bit-identical to a naive CPU
/// loop); the per-tensor sum adds per-channel sums in a tree (equal to float rounding).
/// Non-finite weights give a non-finite scale (outputs NaN); a NaN weight gets code 0.
pub fn pack_weights<R: Runtime>(
    client: &ComputeClient<R>,
    w: &Handle,
    k: usize,
    n: usize,
    layout: WeightLayout,
    granularity: WeightGranularity,
    eps: f32,
) -> Result<PackedWeights> {
    validate::positive("k", k)?;
    validate::positive("n", n)?;
    granularity.validate()?;
    let elems = validate::mul(k, n, "K·N")?;
    validate::bytes("w", w, elems * 4)?;
    let input_major = layout == WeightLayout::InputMajor;
    let words = packed_word_count(k, n);
    let blocks_k = k.div_ceil(16);
    let scales = client.empty(granularity.scale_count(k, n) * 4);
    let packed = client.empty(words * 4);

    let (group_size, groups_per_row) = granularity.groups(k);
    let segments = n * groups_per_row;
    let per_tensor = granularity == WeightGranularity::PerTensor;
    let segment_out = if per_tensor {
        client.empty(n * 4)
    } else {
        scales.clone()
    };
    unsafe {
        absmean_segments_kernel::launch_unchecked::<R>(
            client,
            grid_for_elements(segments, 256),
            CubeDim::new_1d(256),
            ArrayArg::from_raw_parts(w.clone(), elems),
            ArrayArg::from_raw_parts(segment_out.clone(), segments),
            k,
            n,
            group_size,
            groups_per_row,
            eps,
            input_major,
            !per_tensor,
        );
        if per_tensor {
            mean_reduce_kernel::launch_unchecked::<R>(
                client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(256),
                ArrayArg::from_raw_parts(segment_out, n),
                ArrayArg::from_raw_parts(scales.clone(), 1),
                n,
                elems as f32,
                eps,
                256usize,
            );
        }
        pack_weights_kernel::launch_unchecked::<R>(
            client,
            grid_for_elements(words, 256),
            CubeDim::new_1d(256),
            ArrayArg::from_raw_parts(w.clone(), elems),
            ArrayArg::from_raw_parts(scales.clone(), granularity.scale_count(k, n)),
            ArrayArg::from_raw_parts(packed.clone(), words),
            k,
            n,
            blocks_k,
            words,
            group_size,
            groups_per_row,
            granularity.tag(),
            input_major,
        );
    }
    Ok(PackedWeights {
        packed,
        scales,
        k,
        n,
        granularity,
    })
}

/// Dequantizes packed weights to a dense f32 `s_w ⊙ Wq` in the given layout (`[K, N]` or
/// `[N, K]`). For tests and float fallbacks; the matmul kernels never need it.
pub fn unpack_weights<R: Runtime>(
    client: &ComputeClient<R>,
    weights: &PackedWeights,
    layout: WeightLayout,
) -> Result<Handle> {
    weights.validate()?;
    let (k, n) = (weights.k, weights.n);
    let elems = validate::mul(k, n, "K·N")?;
    let (group_size, groups_per_row) = weights.granularity.groups(k);
    let out = client.empty(elems * 4);
    unsafe {
        unpack_weights_kernel::launch_unchecked::<R>(
            client,
            grid_for_elements(elems, 256),
            CubeDim::new_1d(256),
            ArrayArg::from_raw_parts(weights.packed.clone(), weights.word_count()),
            ArrayArg::from_raw_parts(
                weights.scales.clone(),
                weights.granularity.scale_count(k, n),
            ),
            ArrayArg::from_raw_parts(out.clone(), elems),
            k,
            n,
            k.div_ceil(16),
            group_size,
            groups_per_row,
            weights.granularity.tag(),
            layout == WeightLayout::InputMajor,
        );
    }
    Ok(out)
}
