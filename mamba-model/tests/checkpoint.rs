//! Saving and loading: configurations as JSON, blocks and stacks to safetensors and back,
//! foreign layer names, and an optimizer's state that resumes a run bit for bit (on the
//! host backends; the device moments are checked in mamba-cuda/tests/gpu_block_train.rs).

use std::path::PathBuf;

use mamba_model::backend::build;
use mamba_model::{
    bf16, f16, BackendKind, DType, Mamba2Block, Mamba2Config, Mamba2Stack, Mamba2Weights,
    ModelError, SplitMix64, StackAdamW, Tensor,
};

fn cfg() -> Mamba2Config {
    Mamba2Config {
        d_model: 16,
        d_state: 8,
        headdim: 8,
        chunk_size: 4,
        ..Mamba2Config::default()
    }
}

/// A fresh folder for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mamba-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random_weights(cfg: &Mamba2Config, seed: u64) -> Mamba2Weights {
    let mut w = Mamba2Weights::init(cfg, seed).unwrap();
    let mut rng = SplitMix64(seed + 100);
    w.d.iter_mut().for_each(|v| *v = rng.normal());
    w.norm_weight
        .iter_mut()
        .for_each(|v| *v = 1.0 + 0.3 * rng.normal());
    w
}

fn stack_of(cfgs: &[Mamba2Config], seed: u64) -> Mamba2Stack {
    let sel = build(BackendKind::CpuSimd).unwrap();
    let blocks = cfgs
        .iter()
        .enumerate()
        .map(|(k, c)| {
            Mamba2Block::with_selection(c.clone(), random_weights(c, seed + k as u64), &sel)
                .unwrap()
        })
        .collect();
    Mamba2Stack::new(blocks).unwrap()
}

fn bits(w: &Mamba2Weights) -> Vec<Vec<u32>> {
    w.tensors()
        .iter()
        .map(|t| t.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn configurations_round_trip_through_json() {
    let odd = Mamba2Config {
        d_model: 24,
        d_state: 12,
        d_conv: 3,
        expand: 3,
        headdim: 9,
        ngroups: 2,
        chunk_size: 7,
        rmsnorm_eps: 1.2345678e-6,
        norm_before_gate: true,
        dt_limit: Some((0.0, f32::INFINITY)),
        conv_bias: false,
        bias: true,
        d_has_hdim: true,
        dt_min: 3.3e-4,
        dt_max: 0.123_456_79,
        dt_init_floor: 1.0e-5,
        a_init_range: (0.5, 7.25),
    };
    for c in [Mamba2Config::default(), Mamba2Config::bsmamba2(), odd] {
        let json = c.to_json();
        assert_eq!(Mamba2Config::from_json(&json).unwrap(), c, "{json}");
    }
    // Missing keys take their defaults; unknown keys are ignored.
    let c =
        Mamba2Config::from_json(r#"{"d_model": 64, "d_state": 16, "vocab_size": 50277}"#).unwrap();
    assert_eq!(c, Mamba2Config::new(64, 16));
    // Refusals, each saying what is wrong.
    let err = |text: &str| Mamba2Config::from_json(text).unwrap_err().to_string();
    assert!(err(r#"{"d_state": 16}"#).contains("d_model"));
    assert!(err(r#"{"d_model": 64, "d_state": -1}"#).contains("d_state"));
    assert!(err(r#"{"d_model": 64, "d_state": 16, "bias": 1}"#).contains("bias"));
    assert!(err(r#"{"d_model": 64, "d_state": 16, "dt_limit": [1]}"#).contains("dt_limit"));
    assert!(err(r#"{"d_model": 65, "d_state": 16}"#).contains("headdim"));
    assert!(err("[1, 2]").contains("object"));
    assert!(err("d_model = 64").contains("JSON"));
}

#[test]
fn a_block_saved_in_f32_loads_back_exactly() {
    let dir = scratch("block");
    let c = Mamba2Config {
        conv_bias: false,
        ..cfg()
    };
    let block = Mamba2Block::new(c.clone(), random_weights(&c, 3)).unwrap();
    let path = dir.join("block.safetensors");
    block.save_safetensors(&path, DType::F32).unwrap();
    let back = Mamba2Block::load_safetensors(&path).unwrap();
    assert_eq!(back.config(), &c);
    assert_eq!(bits(back.weights()), bits(block.weights()));
    // The file is a plain one-block checkpoint: the loader for foreign files reads it too.
    let again = Mamba2Block::from_safetensors(&path, c.clone(), None).unwrap();
    assert_eq!(bits(again.weights()), bits(block.weights()));
    // The same outputs, bit for bit.
    let mut rng = SplitMix64(9);
    let x: Vec<f32> = (0..2 * 5 * c.d_model).map(|_| rng.normal()).collect();
    let shape = [2, 5, c.d_model];
    let (y0, _) = block.forward(Tensor::new(&x, shape)).unwrap();
    let (y1, _) = back.forward(Tensor::new(&x, shape)).unwrap();
    assert_eq!(
        y0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["block.safetensors"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sixteen_bit_files_hold_the_rounded_weights() {
    let dir = scratch("half");
    let block = Mamba2Block::new(cfg(), random_weights(&cfg(), 4)).unwrap();
    for (dtype, round) in [
        (
            DType::BF16,
            (|v: f32| bf16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        (DType::F16, |v: f32| f16::from_f32(v).to_f32()),
    ] {
        let path = dir.join(format!("{dtype:?}.safetensors"));
        block.save_safetensors(&path, dtype).unwrap();
        let f32_size = 4 * block
            .weights()
            .tensors()
            .iter()
            .map(|t| t.len())
            .sum::<usize>();
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(size < f32_size / 2 + 4096, "{dtype:?}: {size} bytes");
        let back = Mamba2Block::load_safetensors(&path).unwrap();
        let want: Vec<Vec<u32>> = block
            .weights()
            .tensors()
            .iter()
            .map(|t| t.iter().map(|&v| round(v).to_bits()).collect())
            .collect();
        assert_eq!(bits(back.weights()), want, "{dtype:?}");
    }
    let err = block
        .save_safetensors(dir.join("x.safetensors"), DType::F64)
        .unwrap_err();
    assert!(err.to_string().contains("F64"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stack_of_different_blocks_round_trips() {
    let dir = scratch("stack");
    let c1 = Mamba2Config {
        d_state: 4,
        ngroups: 2,
        ..cfg()
    };
    let c2 = Mamba2Config {
        d_conv: 3,
        headdim: 16,
        rmsnorm_eps: 1e-6,
        ..cfg()
    };
    let stack = stack_of(&[cfg(), c1.clone(), c2], 20);
    let path = dir.join("stack.safetensors");
    stack.save_safetensors(&path, DType::F32).unwrap();
    let back = Mamba2Stack::load_safetensors(&path).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in stack.blocks().iter().zip(back.blocks()) {
        assert_eq!(a.config(), b.config());
        assert_eq!(bits(a.weights()), bits(b.weights()));
    }
    // A single block's file loads as a stack of one.
    let one = dir.join("one.safetensors");
    stack.blocks()[1]
        .save_safetensors(&one, DType::F32)
        .unwrap();
    let s1 = Mamba2Stack::load_safetensors(&one).unwrap();
    assert_eq!(s1.len(), 1);
    assert_eq!(s1.blocks()[0].config(), &c1);
    // Saving over an existing file replaces it.
    s1.save_safetensors(&path, DType::F32).unwrap();
    assert_eq!(Mamba2Stack::load_safetensors(&path).unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes tensors under the given names (f32) with no metadata, as another program would.
fn write_foreign(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

fn foreign_tensors(
    stack: &Mamba2Stack,
    name: impl Fn(usize) -> String,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for (k, b) in stack.blocks().iter().enumerate() {
        let w = b.weights();
        let fields = [
            Some(&w.in_proj),
            w.in_proj_bias.as_ref(),
            Some(&w.conv_weight),
            w.conv_bias.as_ref(),
            Some(&w.dt_bias),
            Some(&w.a_log),
            Some(&w.d),
            Some(&w.norm_weight),
            Some(&w.out_proj),
            w.out_proj_bias.as_ref(),
        ];
        for ((n, shape, _), v) in mamba_model::expected_tensors(b.config())
            .into_iter()
            .zip(fields)
        {
            if let Some(v) = v {
                out.push((format!("{}{n}", name(k)), shape, v.clone()));
            }
        }
    }
    out
}

#[test]
fn foreign_files_load_by_their_layer_numbers() {
    let dir = scratch("foreign");
    let c = cfg();
    // Eleven blocks: "layers.10" sorts before "layers.2" as text; the loader orders by
    // number.
    let stack = stack_of(&vec![c.clone(); 11], 40);
    let path = dir.join("lm.safetensors");
    let mut tensors = foreign_tensors(&stack, |k| format!("backbone.layers.{k}.mixer."));
    // Other tensors of a language model are left alone.
    tensors.push((
        "backbone.embeddings.weight".into(),
        vec![4, 16],
        vec![0.5; 64],
    ));
    tensors.push((
        "backbone.layers.0.norm.weight".into(),
        vec![16],
        vec![1.0; 16],
    ));
    write_foreign(&path, &tensors);
    let back = Mamba2Stack::from_safetensors(&path, c.clone()).unwrap();
    assert_eq!(back.len(), 11);
    for (a, b) in stack.blocks().iter().zip(back.blocks()) {
        assert_eq!(bits(a.weights()), bits(b.weights()));
    }
    // load_safetensors wants the configuration in the file.
    let err = Mamba2Stack::load_safetensors(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("from_safetensors"), "{err}");

    // A missing layer, two numbered places and a non-number are refused with the names.
    let gap = dir.join("gap.safetensors");
    write_foreign(
        &gap,
        &foreign_tensors(&stack_of(&vec![c.clone(); 3], 1), |k| {
            format!("layers.{}.mixer.", [0, 1, 3][k])
        }),
    );
    let err = Mamba2Stack::from_safetensors(&gap, c.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not 0..3") && err.contains("layers.3.mixer."),
        "{err}"
    );
    let two = dir.join("two.safetensors");
    write_foreign(
        &two,
        &foreign_tensors(&stack_of(&vec![c.clone(); 2], 1), |k| {
            format!("m{k}.layers.{k}.")
        }),
    );
    let err = Mamba2Stack::from_safetensors(&two, c.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than one place"), "{err}");
    let word = dir.join("word.safetensors");
    write_foreign(
        &word,
        &foreign_tensors(&stack_of(&vec![c.clone(); 2], 1), |k| {
            format!("layers.{}.", ["a", "b"][k])
        }),
    );
    let err = Mamba2Stack::from_safetensors(&word, c.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a layer number"), "{err}");
    // A wrong configuration names the tensor whose shape disagrees.
    let wrong = Mamba2Config {
        d_state: 4,
        ..c.clone()
    };
    let err = Mamba2Stack::from_safetensors(&path, wrong.clone()).unwrap_err();
    assert!(matches!(err, ModelError::WeightShape { .. }), "{err}");
    // Nothing to read where the folder is missing; nothing written there either.
    let nowhere = dir.join("missing").join("x.safetensors");
    assert!(matches!(
        stack.save_safetensors(&nowhere, DType::F32),
        Err(ModelError::Io { .. })
    ));
    assert!(!dir.join("missing").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `steps` training steps of `stack` on fixed data (a loss of sum(y^2) / 2).
fn train(stack: &mut Mamba2Stack, opt: &mut StackAdamW, steps: usize, from: usize) {
    let d = stack.d_model();
    for s in from..from + steps {
        let mut rng = SplitMix64(1000 + s as u64);
        let x: Vec<f32> = (0..2 * 9 * d).map(|_| rng.normal()).collect();
        let tape = stack.forward_train(Tensor::new(&x, [2, 9, d])).unwrap();
        let dout = tape.output().to_vec();
        stack.backward_update_into(&tape, &dout, opt, None).unwrap();
    }
}

#[test]
fn training_resumes_from_saved_files_bit_for_bit() {
    let dir = scratch("resume");
    let c1 = Mamba2Config {
        conv_bias: false,
        ..cfg()
    };
    let cfgs = [cfg(), c1, cfg()];
    let new_opt = || {
        let mut o = StackAdamW::new(3e-3);
        o.adamw.weight_decay = 0.05;
        o.adamw.beta2 = 0.99;
        o.max_grad_norm = Some(0.5);
        o
    };

    // Five steps in one go.
    let mut whole = stack_of(&cfgs, 60);
    let mut opt = new_opt();
    train(&mut whole, &mut opt, 5, 0);
    assert!(opt.grad_norm().unwrap() > 0.5, "clipping is exercised");

    // Saved before any update: loads as a fresh optimizer.
    let mut first = stack_of(&cfgs, 60);
    let (wpath, opath) = (dir.join("w.safetensors"), dir.join("opt.safetensors"));
    let fresh = new_opt();
    fresh.save_safetensors(&first, &opath).unwrap();
    let mut opt1 = StackAdamW::load_safetensors(&opath, &first).unwrap();
    assert_eq!(opt1.adamw.steps(), 0);
    // Three steps, saved, loaded into a new stack and optimizer, two more.
    train(&mut first, &mut opt1, 3, 0);
    first.save_safetensors(&wpath, DType::F32).unwrap();
    opt1.save_safetensors(&first, &opath).unwrap();
    drop((first, opt1));
    let mut resumed = Mamba2Stack::load_safetensors(&wpath).unwrap();
    let mut opt2 = StackAdamW::load_safetensors(&opath, &resumed).unwrap();
    assert_eq!(opt2.adamw.steps(), 3);
    assert_eq!(opt2.max_grad_norm, Some(0.5));
    assert_eq!((opt2.adamw.lr, opt2.adamw.beta2), (3e-3, 0.99));
    assert_eq!(opt2.adamw.weight_decay, 0.05);
    train(&mut resumed, &mut opt2, 2, 3);
    assert_eq!(opt2.adamw.steps(), 5);
    for (k, (a, b)) in whole.blocks().iter().zip(resumed.blocks()).enumerate() {
        assert_eq!(bits(a.weights()), bits(b.weights()), "block {k}");
    }

    // The moments are PyTorch's names, per block and parameter.
    let file = mamba_model::io::TensorFile::read(&opath).unwrap();
    assert!(file
        .tensors
        .contains_key("layers.2.exp_avg_sq.in_proj.weight"));
    assert!(file.tensors.contains_key("layers.0.exp_avg.conv1d.bias"));
    assert!(!file.tensors.contains_key("layers.1.exp_avg.conv1d.bias"));

    // An optimizer for another stack is refused.
    let other = stack_of(&[cfg(), cfg()], 1);
    let err = StackAdamW::load_safetensors(&opath, &other).unwrap_err();
    assert!(err.to_string().contains("3 blocks"), "{err}");
    let biased = stack_of(&[cfg(), cfg(), cfg()], 1);
    let err = StackAdamW::load_safetensors(&opath, &biased).unwrap_err();
    assert!(
        err.to_string().contains("layers.1.exp_avg.conv1d.bias"),
        "{err}"
    );
    let err = StackAdamW::load_safetensors(&wpath, &resumed).unwrap_err();
    assert!(err.to_string().contains("mamba_rs.adamw"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
