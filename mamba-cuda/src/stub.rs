//! The plugin without the `cuda` feature: the same ABI, and every call says how to get
//! the real one.

use std::ffi::c_void;

use mamba_core::abi::{
    status, AdamWC, BlockBackwardDesc, BlockConfigC, BlockForwardDesc, BlockWeightsC,
    Conv1dBwdDesc, Conv1dDesc, ConvUpdateDesc, DeviceInfoC, SelectiveScanBwdDesc,
    SelectiveScanDesc, SsdBwdDesc, SsdDesc, StateUpdateDesc,
};

use crate::{PErr, PResult};

/// The message of every call.
pub(crate) const NOT_BUILT: &str = "built without the `cuda` feature; run `cargo xtask cuda build`";

fn no<T>() -> PResult<T> {
    Err(PErr::new(status::NOT_BUILT, NOT_BUILT))
}

pub(crate) fn init(_ordinal: i32) -> PResult<()> {
    no()
}
pub(crate) fn device_info() -> PResult<DeviceInfoC> {
    no()
}
pub(crate) fn stream_create() -> PResult<u64> {
    no()
}
pub(crate) fn stream_destroy(_s: u64) -> PResult<()> {
    no()
}
pub(crate) fn stream_synchronize(_s: u64) -> PResult<()> {
    no()
}
pub(crate) fn mem_alloc(_bytes: usize) -> PResult<u64> {
    no()
}
pub(crate) fn mem_free(_p: u64) -> PResult<()> {
    no()
}
pub(crate) unsafe fn memcpy_htod(_d: u64, _s: *const c_void, _n: usize, _st: u64) -> PResult<()> {
    no()
}
pub(crate) unsafe fn memcpy_dtoh(_d: *mut c_void, _s: u64, _n: usize, _st: u64) -> PResult<()> {
    no()
}
pub(crate) fn memcpy_dtod(_d: u64, _s: u64, _n: usize, _st: u64) -> PResult<()> {
    no()
}
pub(crate) fn memset(_d: u64, _v: u8, _n: usize, _st: u64) -> PResult<()> {
    no()
}
pub(crate) fn selective_scan(_d: &SelectiveScanDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn ssd(_d: &SsdDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn causal_conv1d(_d: &Conv1dDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn selective_state_update(_d: &StateUpdateDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn causal_conv1d_update(_d: &ConvUpdateDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn selective_scan_backward(_d: &SelectiveScanBwdDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn selective_scan_saved_bytes(_d: &SelectiveScanDesc) -> PResult<usize> {
    no()
}
pub(crate) fn selective_scan_forward_saving(
    _d: &SelectiveScanDesc,
    _p: u64,
    _n: usize,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) fn selective_scan_backward_saved(
    _d: &SelectiveScanBwdDesc,
    _p: u64,
    _n: usize,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) fn ssd_backward(_d: &SsdBwdDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn causal_conv1d_backward(_d: &Conv1dBwdDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_create(_c: &BlockConfigC, _w: &BlockWeightsC) -> PResult<*mut c_void> {
    no()
}
pub(crate) unsafe fn block_destroy(_b: *mut c_void) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_forward(_b: *mut c_void, _d: &BlockForwardDesc, _s: u64) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_backward(
    _b: *mut c_void,
    _d: &BlockBackwardDesc,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_saved_bytes(_b: *mut c_void, _batch: u32, _l: u32) -> PResult<usize> {
    no()
}
pub(crate) unsafe fn block_forward_saving(
    _b: *mut c_void,
    _d: &BlockForwardDesc,
    _saved: u64,
    _bytes: usize,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_backward_saved(
    _b: *mut c_void,
    _d: &BlockBackwardDesc,
    _saved: u64,
    _bytes: usize,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) fn host_alloc(_bytes: usize) -> PResult<*mut c_void> {
    no()
}
pub(crate) unsafe fn host_free(_p: *mut c_void) -> PResult<()> {
    no()
}
pub(crate) unsafe fn block_set_weights(_b: *mut c_void, _w: &BlockWeightsC) -> PResult<()> {
    no()
}
pub(crate) fn axpy(_t: u32, _n: usize, _a: f32, _x: u64, _y: u64, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn adamw(
    _n: usize,
    _p: u64,
    _g: u64,
    _m: u64,
    _v: u64,
    _h: &AdamWC,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) fn sum_squares(_b: &[(u64, usize)], _s: u64) -> PResult<f64> {
    no()
}
pub(crate) unsafe fn block_set_weights_device(
    _b: *mut c_void,
    _m: u64,
    _n: usize,
    _s: u64,
) -> PResult<()> {
    no()
}
pub(crate) fn event_create() -> PResult<u64> {
    no()
}
pub(crate) fn event_destroy(_e: u64) -> PResult<()> {
    no()
}
pub(crate) fn event_record(_e: u64, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn event_elapsed_ms(_a: u64, _b: u64) -> PResult<f32> {
    no()
}
pub(crate) fn graph_begin(_s: u64) -> PResult<()> {
    no()
}
pub(crate) fn graph_end(_s: u64) -> PResult<u64> {
    no()
}
pub(crate) fn graph_launch(_g: u64, _s: u64) -> PResult<()> {
    no()
}
pub(crate) fn graph_destroy(_g: u64) -> PResult<()> {
    no()
}
