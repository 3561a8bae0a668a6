//! Static memory of each layer form (`--impl memory`): the bytes of every tensor a layer holds,
//! summed from the module's parameters on NdArray, for each `--k` × `--n` shape.
//!
//! Forms (JSON `form` field): `burn-linear-f32` (Burn's `Linear`), `bitlinear-train` (a
//! trainable `BitLinear`: f32 weight and bias), `bitlinear-deployed` (2-bit packed words, weight
//! scale(s) and bias). One line each:
//! `{"op":"memory","form":"bitlinear-deployed","k":4096,"n":4096,"bytes":4210692}`.

use bitlinear_burn::{BitLinear, QuantSpec};
use burn::backend::NdArray;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

use crate::cli::Args;

/// Sums `numel × dtype size` over every parameter tensor a module visits.
struct ParamBytes(usize);

impl<B: Backend> ModuleVisitor<B> for ParamBytes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        self.0 += t.shape().num_elements() * t.dtype().size();
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        let t = param.val();
        self.0 += t.shape().num_elements() * t.dtype().size();
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        let t = param.val();
        self.0 += t.shape().num_elements() * t.dtype().size();
    }
}

fn bytes_of<M: Module<NdArray>>(module: &M) -> usize {
    let mut v = ParamBytes(0);
    module.visit(&mut v);
    v.0
}

fn emit(form: &str, k: usize, n: usize, bytes: usize) {
    println!("{{\"op\":\"memory\",\"form\":\"{form}\",\"k\":{k},\"n\":{n},\"bytes\":{bytes}}}");
}

/// Prints the memory lines for every requested shape.
pub fn memory(args: &Args) {
    let device = Default::default();
    for &k in &args.k {
        for &n in &args.n {
            let linear = LinearConfig::new(k, n).init::<NdArray>(&device);
            emit("burn-linear-f32", k, n, bytes_of(&linear));
            let trainable = BitLinear::from_linear(&linear, QuantSpec::default());
            emit("bitlinear-train", k, n, bytes_of(&trainable));
            emit("bitlinear-deployed", k, n, bytes_of(&trainable.deploy()));
        }
    }
}
