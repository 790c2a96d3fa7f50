//! `MAMBA_DECODE_PACK=0`: the cpu-simd decode step on the plain weights (no packed copy)
//! against the packed default and the forward. Its own test binary, with one test, because
//! it sets the variable for the process.

use mamba_model::backend::build;
use mamba_model::golden::rel_l2;
use mamba_model::{BackendKind, Mamba2Block, Mamba2Config, Mamba2Weights, SplitMix64, Tensor};

#[test]
fn the_step_without_packed_weights_matches_the_packed_one_and_forward() {
    let cfg = Mamba2Config {
        d_model: 64,
        d_state: 16,
        headdim: 16,
        chunk_size: 8,
        ..Mamba2Config::default()
    };
    let w = Mamba2Weights::init(&cfg, 3).unwrap();
    let sel = build(BackendKind::CpuSimd).unwrap();
    let (b, l, dm) = (3, 5, cfg.d_model);
    let mut rng = SplitMix64(9);
    let x: Vec<f32> = (0..b * l * dm).map(|_| rng.normal()).collect();
    let decode = |pack: &str| {
        // The variable is read when a block's first step makes its decode constants.
        std::env::set_var("MAMBA_DECODE_PACK", pack);
        let blk = Mamba2Block::with_selection(cfg.clone(), w.clone(), &sel).unwrap();
        let mut st = blk.zero_state(b);
        let mut y = Vec::new();
        for t in 0..l {
            let xt: Vec<f32> = (0..b)
                .flat_map(|i| x[(i * l + t) * dm..(i * l + t + 1) * dm].to_vec())
                .collect();
            y = blk.step(Tensor::new(&xt, [b, dm]), &mut st).unwrap();
        }
        (y, st)
    };
    let (plain, plain_st) = decode("0");
    let (packed, packed_st) = decode("1");
    std::env::remove_var("MAMBA_DECODE_PACK");
    let blk = Mamba2Block::with_selection(cfg.clone(), w.clone(), &sel).unwrap();
    let (full, _) = blk.forward(Tensor::new(&x, [b, l, dm])).unwrap();
    let want: Vec<f64> = (0..b)
        .flat_map(|i| full[(i * l + l - 1) * dm..(i * l + l) * dm].to_vec())
        .map(f64::from)
        .collect();
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    for (what, y) in [("plain", &plain), ("packed", &packed)] {
        let err = rel_l2(&wide(y), &want);
        assert!(err < 1e-5, "{what}: rel-L2 {err:e} against forward");
    }
    // The two sum in different orders: equal to rounding, not to the bit (the same bits
    // would mean the variable switched nothing).
    assert_ne!(plain, packed, "MAMBA_DECODE_PACK=0 changed nothing");
    assert!(rel_l2(&wide(&plain), &wide(&packed)) < 1e-6);
    assert!(rel_l2(&wide(&plain_st.ssm), &wide(&packed_st.ssm)) < 1e-6);
    assert!(rel_l2(&wide(&plain_st.conv), &wide(&packed_st.conv)) < 1e-6);
}
