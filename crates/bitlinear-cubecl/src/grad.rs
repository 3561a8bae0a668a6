//! Host API for the training backward through a ternary layer.

use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::error::Result;
use crate::kernels::backward::grad_input_kernel;
use crate::types::PackedWeights;
use crate::validate;

/// Input gradient `dx = dy · (s_w ⊙ Wq)`: `dy` is row-major f32 `[M, N]`, the result f32
/// `[M, K]`, computed straight from the packed codes (no dense weight is materialized).
/// The weight gradient `dW = dyᵀ · (s_x·xq)` is left to the caller's float matmul, with
/// [`crate::dequantize_activations`] providing `s_x·xq`.
pub fn ternary_grad_input<R: Runtime>(
    client: &ComputeClient<R>,
    dy: &Handle,
    m: usize,
    weights: &PackedWeights,
) -> Result<Handle> {
    weights.validate()?;
    let (k, n) = (weights.k, weights.n);
    let dy_elems = validate::mul(m, n, "M·N")?;
    validate::bytes("dy", dy, dy_elems * 4)?;
    let dx_elems = validate::mul(m, k, "M·K")?;
    if m == 0 {
        return Ok(client.empty(0));
    }
    let dx = client.empty(dx_elems * 4);
    let (group_size, groups_per_row) = weights.granularity.groups(k);
    unsafe {
        grad_input_kernel::launch_unchecked::<R>(
            client,
            CubeCount::Static(k.div_ceil(64) as u32, m.div_ceil(64) as u32, 1),
            CubeDim::new_2d(16, 16),
            ArrayArg::from_raw_parts(dy.clone(), dy_elems),
            ArrayArg::from_raw_parts(weights.packed.clone(), weights.word_count()),
            ArrayArg::from_raw_parts(
                weights.scales.clone(),
                weights.granularity.scale_count(k, n),
            ),
            ArrayArg::from_raw_parts(dx.clone(), dx_elems),
            m,
            n,
            k,
            k.div_ceil(16),
            group_size,
            groups_per_row,
            weights.granularity.tag(),
        );
    }
    Ok(dx)
}
