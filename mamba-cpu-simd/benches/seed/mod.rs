//! The seed's benchmark shapes, shared by the criterion bench and the `ratio` example:
//! batch 2; Mamba-1 with d = 384, N = 64, per-step B and C (b, N, L), softplus, D and
//! z; SSD with 6 heads of 64 channels, N = 64, one group, D, dt_bias and softplus.

#![allow(dead_code)]

use mamba_core::{SelectiveScanArgs, SsdArgs, Tensor};

/// Deterministic inputs: a small linear congruential generator, uniform in [lo, hi).
fn fill(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Mamba-1 at the seed shape.
#[derive(Debug)]
pub struct Scan {
    pub batch: usize,
    pub dim: usize,
    pub seqlen: usize,
    pub dstate: usize,
    pub u: Vec<f32>,
    pub delta: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Vec<f32>,
    pub z: Vec<f32>,
    pub dout: Vec<f32>,
}

impl Scan {
    pub fn new(seqlen: usize) -> Scan {
        let (batch, dim, dstate) = (2, 384, 64);
        let io = batch * dim * seqlen;
        Scan {
            batch,
            dim,
            seqlen,
            dstate,
            u: fill(io, 1, -1.0, 1.0),
            delta: fill(io, 2, -4.0, 0.0),
            // S4D-real: A[c, n] = -(n + 1).
            a: (0..dim * dstate)
                .map(|k| -((k % dstate) as f32 + 1.0))
                .collect(),
            b: fill(batch * dstate * seqlen, 3, -1.0, 1.0),
            c: fill(batch * dstate * seqlen, 4, -1.0, 1.0),
            d: fill(dim, 5, -1.0, 1.0),
            z: fill(io, 6, -2.0, 2.0),
            dout: fill(io, 7, -1.0, 1.0),
        }
    }

    pub fn args(&self) -> SelectiveScanArgs<'_, f32> {
        let io = [self.batch, self.dim, self.seqlen];
        let bc = [self.batch, self.dstate, self.seqlen];
        SelectiveScanArgs::new(
            Tensor::new(&self.u, io),
            Tensor::new(&self.delta, io),
            Tensor::new(&self.a, [self.dim, self.dstate]),
            Tensor::new(&self.b, bc),
            Tensor::new(&self.c, bc),
        )
        .with_d(Tensor::new(&self.d, [self.dim]))
        .with_z(Tensor::new(&self.z, io))
        .with_delta_softplus(true)
    }

    pub fn out_len(&self) -> usize {
        self.batch * self.dim * self.seqlen
    }
}

/// SSD at the seed shape.
#[derive(Debug)]
pub struct Ssd {
    pub batch: usize,
    pub seqlen: usize,
    pub nheads: usize,
    pub headdim: usize,
    pub dstate: usize,
    pub x: Vec<f32>,
    pub dt: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Vec<f32>,
    pub dt_bias: Vec<f32>,
    pub dout: Vec<f32>,
}

impl Ssd {
    pub fn new(seqlen: usize) -> Ssd {
        let (batch, nheads, headdim, dstate) = (2, 6, 64, 64);
        let io = batch * seqlen * nheads * headdim;
        Ssd {
            batch,
            seqlen,
            nheads,
            headdim,
            dstate,
            x: fill(io, 11, -1.0, 1.0),
            dt: fill(batch * seqlen * nheads, 12, -4.0, 0.0),
            a: (0..nheads).map(|j| -(j as f32 + 1.0)).collect(),
            b: fill(batch * seqlen * dstate, 13, -1.0, 1.0),
            c: fill(batch * seqlen * dstate, 14, -1.0, 1.0),
            d: fill(nheads, 15, -1.0, 1.0),
            dt_bias: fill(nheads, 16, -1.0, 0.0),
            dout: fill(io, 17, -1.0, 1.0),
        }
    }

    pub fn args(&self) -> SsdArgs<'_, f32> {
        let bc = [self.batch, self.seqlen, 1, self.dstate];
        SsdArgs::new(
            Tensor::new(
                &self.x,
                [self.batch, self.seqlen, self.nheads, self.headdim],
            ),
            Tensor::new(&self.dt, [self.batch, self.seqlen, self.nheads]),
            Tensor::new(&self.a, [self.nheads]),
            Tensor::new(&self.b, bc),
            Tensor::new(&self.c, bc),
        )
        .with_d(Tensor::new(&self.d, [self.nheads]))
        .with_dt_bias(Tensor::new(&self.dt_bias, [self.nheads]))
        .with_dt_softplus(true)
    }

    pub fn out_len(&self) -> usize {
        self.batch * self.seqlen * self.nheads * self.headdim
    }
}
