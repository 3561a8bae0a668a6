//! Human-readable names for implementations, layer forms, backends and shapes.

/// Legend label for a benchmark `impl` name; unknown names are returned unchanged.
pub fn impl_label(name: &str) -> String {
    let known = match name {
        "bitlinear-scalar" => "core scalar kernel",
        "bitlinear-avx2" => "core AVX2 kernel",
        "bitlinear-avxvnni" => "core AVX-VNNI kernel",
        "bitlinear-avx512vnni" => "core AVX512-VNNI kernel",
        "bitlinear-neon" => "core NEON kernel",
        "bitlinear-neon-dot" => "core NEON dotprod kernel",
        "f32-matmul" => "f32 matmul (gemm crate)",
        "burn-linear-f32" => "Burn f32 Linear",
        "burn-bitlinear-deployed" => "BitLinear deployed (Burn)",
        "burn-bitlinear-train-forward" => "BitLinear training mode (Burn)",
        "torch-bf16-linear" => "PyTorch bf16 Linear",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    match name.strip_prefix("bitlinear-cuda-") {
        Some(kernel) => format!("CubeCL {kernel} kernel"),
        None => name.to_string(),
    }
}

/// Label for a layer form of a `memory` record; unknown forms are returned unchanged.
pub fn form_label(form: &str) -> String {
    match form {
        "burn-linear-f32" => "f32 Linear".to_string(),
        "bitlinear-train" => "BitLinear (training)".to_string(),
        "bitlinear-deployed" => "BitLinear (deployed, 2-bit)".to_string(),
        other => other.to_string(),
    }
}

/// Sort key that puts the known layer forms first, largest to smallest, then the rest by name.
pub fn form_order(form: &str) -> (usize, String) {
    let rank = match form {
        "burn-linear-f32" => 0,
        "bitlinear-train" => 1,
        "bitlinear-deployed" => 2,
        _ => 3,
    };
    (rank, form.to_string())
}

/// Display name of a normalized backend (`cpu`, `cuda`, `wgpu`, ...).
pub fn backend_label(backend: &str) -> String {
    match backend {
        "cpu" => "CPU".to_string(),
        "cuda" => "CUDA".to_string(),
        "wgpu" => "Wgpu".to_string(),
        other => other.to_string(),
    }
}

/// A layer shape written as input → output features, e.g. `4096→11008`.
pub fn shape_label(k: u64, n: u64) -> String {
    format!("{k}→{n}")
}

/// A backend name made safe for a file name (letters, digits and `-` only).
pub fn file_component(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
