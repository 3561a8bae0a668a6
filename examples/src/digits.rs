//! Handwritten digits with BitLinear: the path from an f32 model to a deployed ternary one.
//!
//! 1. Trains an f32 MLP (`burn::nn::Linear`) and the same MLP built from `BitLinear`, with the
//!    same budget, on NdArray + Autodiff (or Wgpu, Cuda: `--backend`), and prints both test
//!    accuracies.
//! 2. Converts the trained f32 MLP layer by layer with `BitLinear::from_linear` (post-training
//!    ternarization) and reports its accuracy before and after a short fine-tune.
//! 3. Deploys the BitLinear MLP (2-bit packed weights, integer kernels), checks that the
//!    deployed predictions equal the eval ones, round-trips it through a safetensors file, and
//!    prints weight memory and per-batch inference time of the f32 and deployed models.
//!
//! Run: `cargo run --release -p bitlinear-examples --bin digits` (CPU). The same code runs on a
//! GPU with only the backend type changed: `-- --backend wgpu` (Vulkan, Metal, DX12; Mesa's
//! software lavapipe too, slowly: add `--epochs 2`), or with `--features cuda`,
//! `-- --backend cuda` (NVIDIA; CUDA loaded at run time).
//! Data: `examples/data/digits.csv.gz` (UCI optical digits, CC BY 4.0; see data/README.md).

use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

use bitlinear_burn::{BitLinear, BitLinearBackend, BitLinearConfig, Deploy, QuantSpec};
use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

const HIDDEN: usize = 256;
const CLASSES: usize = 10;
const PIXELS: usize = 64;
const EPOCHS: usize = 40;
const FINE_TUNE_EPOCHS: usize = 5;
const BATCH: usize = 32;
const LEARNING_RATE: f64 = 2e-3;
const SEED: u64 = 7;

/// An MLP of `Linear` layers: 64 → 256 → 256 → 10.
#[derive(Module, Debug)]
struct FloatMlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
    fc3: Linear<B>,
    act: Relu,
}

/// The same MLP with `BitLinear` layers.
#[derive(Module, Debug)]
struct BitMlp<B: Backend> {
    fc1: BitLinear<B>,
    fc2: BitLinear<B>,
    fc3: BitLinear<B>,
    act: Relu,
}

/// A classifier producing logits `[batch, 10]`.
trait Classifier<B: Backend> {
    fn logits(&self, x: Tensor<B, 2>) -> Tensor<B, 2>;
}

impl<B: Backend> Classifier<B> for FloatMlp<B> {
    fn logits(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = self.act.forward(self.fc1.forward(x));
        let x = self.act.forward(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

impl<B: BitLinearBackend> Classifier<B> for BitMlp<B> {
    fn logits(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = self.act.forward(self.fc1.forward(x));
        let x = self.act.forward(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

/// Deploying a whole model: deploy each BitLinear field (the pattern for nested models).
impl<B: BitLinearBackend> Deploy for BitMlp<B> {
    fn deploy(self) -> Self {
        Self {
            fc1: self.fc1.deploy(),
            fc2: self.fc2.deploy(),
            fc3: self.fc3.deploy(),
            act: self.act,
        }
    }

    fn validate(&self) -> Result<(), bitlinear_burn::BitLinearError> {
        self.fc1.validate()?;
        self.fc2.validate()?;
        self.fc3.validate()
    }
}

impl<B: BitLinearBackend> BitMlp<B> {
    fn new(device: &B::Device) -> Self {
        let layer = |i, o| BitLinearConfig::new(i, o).init(device);
        Self {
            fc1: layer(PIXELS, HIDDEN),
            fc2: layer(HIDDEN, HIDDEN),
            fc3: layer(HIDDEN, CLASSES),
            act: Relu::new(),
        }
    }

    /// Post-training ternarization of a trained f32 model.
    fn from_float(m: &FloatMlp<B>) -> Self {
        let spec = QuantSpec::default();
        Self {
            fc1: BitLinear::from_linear(&m.fc1, spec),
            fc2: BitLinear::from_linear(&m.fc2, spec),
            fc3: BitLinear::from_linear(&m.fc3, spec),
            act: Relu::new(),
        }
    }

    fn weight_bytes(&self) -> usize {
        self.fc1.weight_bytes() + self.fc2.weight_bytes() + self.fc3.weight_bytes()
    }
}

impl<B: Backend> FloatMlp<B> {
    fn new(device: &B::Device) -> Self {
        let layer = |i, o| LinearConfig::new(i, o).init(device);
        Self {
            fc1: layer(PIXELS, HIDDEN),
            fc2: layer(HIDDEN, HIDDEN),
            fc3: layer(HIDDEN, CLASSES),
            act: Relu::new(),
        }
    }

    fn weight_bytes(&self) -> usize {
        4 * self.num_params()
    }
}

/// Pixels scaled to [0, 1] and labels.
struct Dataset {
    x: Vec<f32>,
    y: Vec<i64>,
}

impl Dataset {
    fn len(&self) -> usize {
        self.y.len()
    }

    fn tensors<B: Backend>(
        &self,
        rows: &[usize],
        device: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&r| self.x[r * PIXELS..(r + 1) * PIXELS].iter().copied())
            .collect();
        let y: Vec<i64> = rows.iter().map(|&r| self.y[r]).collect();
        (
            Tensor::from_data(TensorData::new(x, [rows.len(), PIXELS]), device),
            Tensor::from_data(TensorData::new(y, [rows.len()]), device),
        )
    }
}

/// The data file: where this crate was built, else `examples/data/` under the working
/// directory (a binary carried to another machine, run from the repository root).
fn digits_path() -> std::path::PathBuf {
    let built = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz"));
    let relative = std::path::Path::new("examples/data/digits.csv.gz");
    if built.exists() || !relative.exists() {
        built.to_path_buf()
    } else {
        relative.to_path_buf()
    }
}

fn load_digits() -> Dataset {
    let path = digits_path();
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let mut data = Dataset {
        x: Vec::new(),
        y: Vec::new(),
    };
    for (i, line) in BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
    {
        let line = line.expect("readable gzip csv");
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse().expect("numeric field"))
            .collect();
        assert_eq!(
            values.len(),
            PIXELS + 1,
            "row {i}: expected 64 pixels and a label"
        );
        data.x.extend(values[..PIXELS].iter().map(|p| p / 16.0));
        data.y.push(values[PIXELS] as i64);
    }
    data
}

/// A small deterministic generator (SplitMix64) for shuffling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

/// Predicted classes of `rows`, in batches of 256.
fn predict<B: Backend, M: Classifier<B>>(
    model: &M,
    data: &Dataset,
    rows: &[usize],
    device: &B::Device,
) -> Vec<i64> {
    rows.chunks(256)
        .flat_map(|chunk| {
            let (x, _) = data.tensors::<B>(chunk, device);
            model
                .logits(x)
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap()
        })
        .collect()
}

fn accuracy(pred: &[i64], data: &Dataset, rows: &[usize]) -> f64 {
    let hits = pred
        .iter()
        .zip(rows)
        .filter(|(p, &r)| **p == data.y[r])
        .count();
    100.0 * hits as f64 / rows.len() as f64
}

/// Trains `model` with Adam and cross-entropy, printing a progress line per epoch.
fn train<B, M>(
    name: &str,
    mut model: M,
    epochs: usize,
    data: &Dataset,
    split: &Split,
    device: &B::Device,
) -> M
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Classifier<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
{
    let mut optim = AdamConfig::new().init::<B, M>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut rng = SplitMix(SEED);
    let mut order = split.train.clone();
    let start = Instant::now();
    for epoch in 1..=epochs {
        rng.shuffle(&mut order);
        let (mut loss_sum, mut batches) = (0.0, 0);
        for chunk in order.chunks(BATCH) {
            let (x, y) = data.tensors::<B>(chunk, device);
            let loss = loss_fn.forward(model.logits(x), y);
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(LEARNING_RATE, model, grads);
        }
        let valid = model.valid();
        let acc = accuracy(
            &predict(&valid, data, &split.test, device),
            data,
            &split.test,
        );
        let done = epoch * 30 / epochs;
        print!(
            "\r  {name:<28} [{}{}] epoch {epoch:>2}/{epochs}  loss {:.4}  test acc {acc:5.1}%  {:.1}s",
            "#".repeat(done),
            ".".repeat(30 - done),
            loss_sum / batches as f64,
            start.elapsed().as_secs_f64()
        );
        std::io::stdout().flush().ok();
    }
    println!();
    model
}

struct Split {
    train: Vec<usize>,
    test: Vec<usize>,
}

/// Mean time per forward of `rows` in batches of `batch` (after a warm-up).
fn time_per_batch<B: Backend, M: Classifier<B>>(
    model: &M,
    data: &Dataset,
    rows: &[usize],
    batch: usize,
    device: &B::Device,
) -> f64 {
    let batches: Vec<_> = rows
        .chunks(batch)
        .filter(|c| c.len() == batch)
        .map(|c| data.tensors::<B>(c, device).0)
        .collect();
    let run = || {
        for x in &batches {
            let _ = model.logits(x.clone()).into_data();
        }
    };
    run();
    let reps = (2000 / batches.len()).max(1);
    let start = Instant::now();
    for _ in 0..reps {
        run();
    }
    start.elapsed().as_secs_f64() * 1e6 / (reps * batches.len()) as f64
}

/// What the command line asks for: `--backend ndarray|wgpu|cuda` (default ndarray) and
/// `--epochs N` (default [`EPOCHS`]; the fine-tune then takes N / 8 epochs, at least 1).
struct Options {
    backend: String,
    epochs: usize,
    fine_tune_epochs: usize,
}

fn parse_options() -> Options {
    let mut options = Options {
        backend: "ndarray".into(),
        epochs: EPOCHS,
        fine_tune_epochs: FINE_TUNE_EPOCHS,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--backend" => options.backend = value(),
            "--epochs" => {
                let v = value();
                options.epochs = match v.parse() {
                    Ok(n) if n > 0 => n,
                    _ => usage(&format!("--epochs {v}: expected a positive integer")),
                };
                options.fine_tune_epochs = (options.epochs / 8).clamp(1, FINE_TUNE_EPOCHS);
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    options
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("digits: {error}");
    }
    eprintln!("usage: digits [--backend ndarray|wgpu|cuda] [--epochs N]");
    eprintln!("  cuda needs the `cuda` feature: cargo run --release -p bitlinear-examples --features cuda --bin digits -- --backend cuda");
    std::process::exit(if error.is_empty() { 0 } else { 2 });
}

fn main() {
    let options = parse_options();
    // The same model code on every backend: only the backend type changes.
    match options.backend.as_str() {
        "ndarray" => run::<NdArray>(&Default::default(), "NdArray", &options),
        "wgpu" => run::<Wgpu>(&Default::default(), "Wgpu", &options),
        #[cfg(feature = "cuda")]
        "cuda" => run::<burn::backend::Cuda>(&Default::default(), "Cuda", &options),
        #[cfg(not(feature = "cuda"))]
        "cuda" => usage("--backend cuda needs the `cuda` feature (--features cuda)"),
        other => usage(&format!("unknown backend {other}")),
    }
}

/// Steps 1-3 (the module's doc) on backend `B` (trained as `Autodiff<B>`).
fn run<B: BitLinearBackend>(device: &B::Device, backend: &str, options: &Options) {
    let total = Instant::now();
    let (epochs, fine_tune_epochs) = (options.epochs, options.fine_tune_epochs);
    Autodiff::<B>::seed(device, SEED);
    let data = load_digits();
    let mut rows: Vec<usize> = (0..data.len()).collect();
    SplitMix(SEED ^ 0xD161).shuffle(&mut rows);
    let n_test = data.len() / 5;
    let split = Split {
        test: rows[..n_test].to_vec(),
        train: rows[n_test..].to_vec(),
    };
    println!(
        "digits: {} train / {} test images, MLP {PIXELS}-{HIDDEN}-{HIDDEN}-{CLASSES}, {epochs} epochs, batch {BATCH}, Adam lr {LEARNING_RATE}",
        split.train.len(),
        split.test.len()
    );

    println!("1. training from scratch ({backend} + Autodiff)");
    let float_model = train(
        "f32 Linear MLP",
        FloatMlp::<Autodiff<B>>::new(device),
        epochs,
        &data,
        &split,
        device,
    );
    let bit_model = train(
        "BitLinear MLP",
        BitMlp::<Autodiff<B>>::new(device),
        epochs,
        &data,
        &split,
        device,
    );
    let float_eval = float_model.valid();
    let bit_eval = bit_model.valid();
    let float_acc = accuracy(
        &predict(&float_eval, &data, &split.test, device),
        &data,
        &split.test,
    );
    let bit_pred = predict(&bit_eval, &data, &split.test, device);
    let bit_acc = accuracy(&bit_pred, &data, &split.test);
    println!(
        "  test accuracy: f32 {float_acc:.2}%   BitLinear {bit_acc:.2}%   (gap {:+.2} points)",
        bit_acc - float_acc
    );

    println!("2. post-training ternarization of the f32 model (from_linear)");
    let converted = BitMlp::<Autodiff<B>>::from_float(&float_model);
    let ptq_acc = accuracy(
        &predict(&converted.valid(), &data, &split.test, device),
        &data,
        &split.test,
    );
    println!("  converted, before fine-tune: {ptq_acc:.2}%");
    let tuned = train(
        "fine-tune converted",
        converted,
        fine_tune_epochs,
        &data,
        &split,
        device,
    );
    let tuned_acc = accuracy(
        &predict(&tuned.valid(), &data, &split.test, device),
        &data,
        &split.test,
    );
    println!("  converted, after {fine_tune_epochs}-epoch fine-tune: {tuned_acc:.2}%");

    println!("3. deploying the BitLinear MLP (2-bit packed weights, integer kernels)");
    let deployed: BitMlp<B> = bit_eval.clone().deploy();
    let deployed_pred = predict(&deployed, &data, &split.test, device);
    let deployed_acc = accuracy(&deployed_pred, &data, &split.test);
    // The deployed forward computes what the eval forward does (to float rounding): the
    // predictions agree.
    assert_eq!(
        deployed_pred, bit_pred,
        "deployed predictions must equal eval predictions"
    );
    println!("  deployed accuracy {deployed_acc:.2}% == eval accuracy {bit_acc:.2}% (identical predictions)");

    let path = std::env::temp_dir().join(format!(
        "bitlinear-digits-{}.safetensors",
        std::process::id()
    ));
    bitlinear_burn::save_safetensors(&deployed, &path).expect("save deployed model");
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let reloaded = bitlinear_burn::load_safetensors(BitMlp::<B>::new(device).deploy(), &path)
        .expect("load deployed model");
    std::fs::remove_file(&path).ok();
    assert_eq!(
        predict(&reloaded, &data, &split.test, device),
        deployed_pred,
        "reloaded model must agree"
    );
    println!("  saved + reloaded through safetensors ({file_bytes} bytes on disk): identical predictions");

    let (f32_bytes, packed_bytes) = (float_eval.weight_bytes(), deployed.weight_bytes());
    println!(
        "  weight memory (weights + scales + biases): f32 {f32_bytes} B, deployed {packed_bytes} B ({:.1}x smaller)",
        f32_bytes as f64 / packed_bytes as f64
    );
    for batch in [1, 64] {
        let t_f32 = time_per_batch(&float_eval, &data, &split.test, batch, device);
        let t_bit = time_per_batch(&deployed, &data, &split.test, batch, device);
        println!(
            "  inference, batch {batch:>2}: f32 {t_f32:8.1} µs/batch, deployed BitLinear {t_bit:8.1} µs/batch ({:.2}x)",
            t_f32 / t_bit
        );
    }
    println!("total time {:.1}s", total.elapsed().as_secs_f64());
}
